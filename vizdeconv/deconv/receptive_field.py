"""Receptive fields: which input pixels a unit of any layer can see, read from the Graph alone.

Rows and columns are independent through every supported op, so each axis is walked on its own: from
the unit's position, back through every op to the input, keeping the set of positions reached. Taps that
land on padding or between dilated taps are dropped, so boxes are exact for any graph (strides, padding,
dilation, merges). Ops without spatial dimensions below them (Flatten, Dense, global pooling) see the
whole image.
"""

import dataclasses
import functools

from vizdeconv.nn import ops, shapes

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
        from vizdeconv.deconv.deconvnet import as_graph

        self.graph = as_graph(model)
        self._reached = functools.lru_cache(maxsize=None)(self._reach)

    def reached(self, layer: str, axis: int, unit: int, clip: bool = True) -> list[int]:
        """Input positions along `axis` (0 rows, 1 cols) that position `unit` of `layer` reads."""
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
                below = _below(op, here, axis, graph.shapes[source], clip)
                if source in positions and positions[source] is not ALL and below is not ALL:
                    positions[source] |= below
                elif source in positions:
                    positions[source] = ALL
                else:
                    positions[source] = below
        reached = positions[graph.input]
        return frozenset(range(graph.input_shape[axis]) if reached is ALL else reached)

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
        """Like `box`, before clipping to the image: may start above or left of it."""
        rows, cols = self.reached(layer, 0, row, False), self.reached(layer, 1, col, False)
        return rows[0], cols[0], rows[-1], cols[-1]


def _below(op, here, axis: int, source_shape, clip: bool):
    """Positions of an op's input along `axis` that the positions `here` of its output read."""
    if len(source_shape) != 3:
        return ALL
    length = source_shape[axis]
    kind, p = op.kind, op.params
    if here is ALL or kind in ("global_avg_pool", "global_max_pool", "flatten", "dense"):
        return ALL
    if kind in ("conv", "max_pool", "avg_pool"):
        kernel = int(p["kernel"].shape[axis]) if kind == "conv" else ops.pair(p["pool"])[axis]
        stride = ops.pair(p["stride"])[axis]
        dilation = ops.pair(p.get("dilation", 1))[axis]
        pad = shapes.padding_before(length, kernel, stride, p["padding"], dilation)
        reached = {u * stride - pad + tap * dilation for u in here for tap in range(kernel)}
    elif kind == "zero_pad":
        before = p["padding"][0] if axis == 0 else p["padding"][2]
        reached = {u - before for u in here}
    elif kind == "concat" and p["axis"] % 4 in (1, 2):
        raise ValueError(f"receptive fields through a spatial Concatenate ({op.source}) are not supported")
    else:
        reached = set(here)
    return {u for u in reached if 0 <= u < length} if clip else reached


def fields(model) -> dict[str, Field]:
    """The nominal Field of every feature layer (square layers: one Field serves both axes)."""
    rf = ReceptiveFields(model)
    return {name: rf.field(name) for name in rf.graph.layer_names if len(rf.graph.shapes[rf.graph.resolve(name)]) == 3}


def box(model, layer: str, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of unit (row, col) of `layer` (see ReceptiveFields.box)."""
    return ReceptiveFields(model).box(layer, row, col)
