"""Receptive fields: which input pixels a unit of any layer can see, read from the Graph alone.

Rows and columns are independent through every op, so each axis is walked on its own: from the unit's
position, back through every op to the input, keeping the set of positions reached, as each op's registry
entry states it (`nn.registry`: windows for convolutions and poolings, shifts for padding and cropping,
blocks for upsampling; a Keras layer run as it is has its reach measured from its Jacobian). Taps that
land on padding or between dilated taps are dropped, so boxes are exact for any graph (strides, padding,
dilation, merges). Ops without spatial dimensions below them (Flatten, Dense, global pooling) see the
whole image.
"""

import dataclasses
import functools

from vizdeconv.nn import registry

ALL = None  # a tensor without spatial axes: every position below it is reached


@dataclasses.dataclass(frozen=True)
class Field:
    """Nominal input footprint of the units of one layer along one axis.

    Unit u spans input positions start + u * jump .. start + u * jump + size - 1 before clipping to the
    image and before dropping padding and dilation holes (`box` gives the exact extent).
    """

    size: int
    jump: int
    start: int


class ReceptiveFields:
    """Exact receptive fields of one network (memoized per layer, axis and unit).

    Args:
      model: a Graph, a Keras model or the reference convnet.
    """

    def __init__(self, model):
        from vizdeconv.methods.deconvnet import as_graph

        self.graph = as_graph(model)
        self._reached = functools.lru_cache(maxsize=None)(self._reach)
        self._measured = {}  # (op name, axis) -> {output position: input positions}

    def reached(self, layer: str, axis: int, unit: int, clip: bool = True) -> list[int]:
        """Input positions along `axis` (0 rows, 1 cols) that position `unit` of `layer` reads; with `clip`, only
        those inside the image (padding reads none)."""
        return sorted(self._reached(self.graph.resolve(layer), axis, unit, clip))

    def _reach(self, name: str, axis: int, unit: int, clip: bool) -> frozenset:
        graph = self.graph
        spatial = len(graph.shapes[name]) == 3
        positions = {name: {unit} if spatial else ALL}
        needed = graph.ancestors([name])
        for op in reversed(graph.ops):
            if op.name not in needed or op.name not in positions or op.kind == "input":
                continue
            here = positions.pop(op.name)
            for source in op.inputs:
                below = _below(op, here, axis, graph.shapes[source], clip, self._measure)
                if source in positions and positions[source] is not ALL and below is not ALL:
                    positions[source] |= below
                elif source in positions:
                    positions[source] = ALL
                else:
                    positions[source] = below
        reached = positions[graph.input]
        return frozenset(range(graph.input_shape[axis]) if reached is ALL else reached)

    def _measure(self, op, source_shape, here, axis: int):
        key = (op.name, axis)
        if key not in self._measured:
            self._measured[key] = _measure(self.graph, op, source_shape, axis)
        table = self._measured[key]
        return ALL if table is None else set().union(*(table[u] for u in here if u in table))

    def field(self, layer: str) -> Field:
        """The nominal field of `layer` along rows (square geometry assumed for the canvas size)."""
        name = self.graph.resolve(layer)
        first = self.reached(name, 0, 0, clip=False)
        length = self.graph.shapes[name][0] if len(self.graph.shapes[name]) == 3 else 1
        jump = (self.reached(name, 0, 1, clip=False)[0] - first[0]) if length > 1 else 1
        cols = self.reached(name, 1, 0, clip=False)
        size = max(first[-1] - first[0] + 1, cols[-1] - cols[0] + 1)
        return Field(size, max(jump, 1), first[0])

    def box(self, layer: str, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive: the bounding box of the input pixels unit (row, col)
        of `layer` reads."""
        rows, cols = self.reached(layer, 0, row), self.reached(layer, 1, col)
        return rows[0], cols[0], rows[-1], cols[-1]

    def nominal_box(self, layer: str, row: int, col: int) -> tuple[int, int, int, int]:
        """Like `box` for unit (`row`, `col`) of `layer`, before clipping to the image: may start above or left of
        it."""
        rows, cols = self.reached(layer, 0, row, False), self.reached(layer, 1, col, False)
        return rows[0], cols[0], rows[-1], cols[-1]


def _below(op, here, axis: int, source_shape, clip: bool, measured):
    """Positions of an op's input along `axis` that the positions `here` of its output read."""
    if len(source_shape) != 3 or here is ALL:
        return ALL
    length = source_shape[axis]
    reach = registry.KINDS[op.kind].reach
    if reach == "all":
        return ALL
    if reach == "measured":
        reached = measured(op, source_shape, here, axis)
        if reached is ALL:
            return ALL
    elif reach == "pointwise":
        # An input broadcast along this axis (a squeeze-and-excitation gate [1, 1, C]) is read whole.
        reached = set(here) if length > 1 or max(here, default=0) == 0 else {0}
    else:
        reached = reach(op, here, axis, length)
    return {u for u in reached if 0 <= u < length} if clip else set(reached)


def _measure(graph, op, source_shape, axis: int) -> dict | None:
    """For an op whose reach no registry entry states (a Keras layer run as it is): output position ->
    the input positions along `axis` its Jacobian depends on, found with random inputs. None (every
    position) when the op reads several inputs or changes the spatial layout beyond recognition."""
    import numpy as np
    import tensorflow as tf

    output_shape = graph.shapes[op.name]
    if len(op.inputs) != 1 or len(output_shape) != 3:
        return None
    dependence = np.zeros((output_shape[axis], source_shape[axis]), bool)
    for seed in range(2):  # two draws, so a unit that happens to be flat in one still shows its reach
        x = tf.random.stateless_normal([1, *source_shape], [seed, 7])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = registry.KINDS[op.kind].forward(op, [x], tf.float32)
            lines = tf.reduce_sum(tf.abs(y), axis=[0, 2, 3] if axis == 0 else [0, 1, 3])  # [output positions]
        jacobian = tape.jacobian(lines, x)  # [output positions, 1, H, W, C]
        dependence |= tf.reduce_any(jacobian != 0, axis=[1, 3, 4] if axis == 0 else [1, 2, 4]).numpy()
    return {u: set(np.nonzero(dependence[u])[0].tolist()) for u in range(output_shape[axis])}


def fields(model) -> dict[str, Field]:
    """The nominal Field of every feature layer (square layers: one Field serves both axes)."""
    rf = ReceptiveFields(model)
    return {name: rf.field(name) for name in rf.graph.layer_names if len(rf.graph.shapes[rf.graph.resolve(name)]) == 3}


def box(model, layer: str, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of unit (row, col) of `layer` (see ReceptiveFields.box)."""
    return ReceptiveFields(model).box(layer, row, col)
