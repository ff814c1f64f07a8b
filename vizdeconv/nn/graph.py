"""The one description of a network's operations that shapes, projections and receptive fields read.

A `Graph` is a list of `Op`s in topological order. Each op names the tensor it produces and the tensors
it reads, says what kind of operation it is (a small, closed vocabulary: `KINDS`) and holds its
geometry and its weights (variables, read at every call, so a graph follows training). The reference
convnet and any Keras model are both turned into a Graph (`convnet.ConvNet.graph()`,
`keras_adapter.describe`), and everything downstream works on the Graph alone.

Tensors are NHWC; `Graph.forward` runs the network op by op and returns every tensor by name, with the
switches of every max pooling under `switches_name(op)`.
"""

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from vizdeconv.nn import ops, registry

KINDS = registry.KINDS  # kind -> its registry entry (what it computes, its backward rule, ...)


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation: `name` = kind(inputs; params).

    Args:
      name: the tensor it produces (the Keras layer name where it is a layer's output).
      kind: one of `registry.KINDS`.
      inputs: names of the tensors it reads.
      params: geometry (ints, pairs, strings) and weights (tensors or variables, or zero-argument
        callables returning one, for weights derived from several variables).
      source: what the op came from, for messages (e.g. "Conv2D 'conv2'").
    """

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    params: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    def value(self, key: str, dtype=None) -> Any:
        """A param, called if it is a callable and cast to `dtype` if given."""
        item = self.params[key]
        item = item() if callable(item) and not isinstance(item, tf.Variable) else item
        return tf.cast(item, dtype) if dtype is not None else item


# Tensors inside one layer (its linear part before the activation, a conv before its normalization): not
# offered as layers of their own.
INTERNAL_SUFFIXES = ("/linear", "/prenorm")

# Ops that carry a map on inside its block: a per-channel step that keeps the order of its values (a
# normalization, an activation) or the residual sum a branch ends in. A map read only by them is a step
# inside a block, not one of the network's feature layers in the sense of `Graph.block_outputs`.
WITHIN_BLOCK = ("affine", "relu", "activation", "add")
PIXEL_STEPS = ("affine", "identity", "zero_pad", "crop")


def switches_name(name: str) -> str:
    return f"{name}:switches"


class Graph:
    """A network as a list of Ops, first to last, with the static shape of every tensor.

    Args:
      ops: in topological order; the first is the single `input` op.
      output: the tensor that holds the network's output (logits or probabilities); projections of the
        class scores start there.
      input_shape: [H, W, C] of one image.
      aliases: other names a user may give for a tensor (e.g. 'conv1' inside a nested model).
      outputs: every output of a model with several (`output` first); default: (`output`,).
    """

    def __init__(self, ops_list: list[Op], output: str, input_shape, aliases: dict | None = None, outputs=None):
        self.ops = list(ops_list)
        self.by_name = {op.name: op for op in self.ops}
        if len(self.by_name) != len(self.ops):
            raise ValueError("every operation of a graph must have its own name")
        unknown = [(op.name, i) for op in self.ops for i in op.inputs if i not in self.by_name]
        if unknown:
            raise ValueError(
                f"operation {unknown[0][0]!r} reads {unknown[0][1]!r}, which no earlier operation produces"
            )
        bad = [op for op in self.ops if op.kind not in KINDS]
        if bad:
            raise ValueError(f"operation {bad[0].name!r} has unknown kind {bad[0].kind!r}")
        self.readers = {op.name: [] for op in self.ops}  # the ops that read each tensor (once per input)
        for op in self.ops:
            for name in op.inputs:
                self.readers[name].append(op)
        self.consumers = {name: len(ops) for name, ops in self.readers.items()}  # how many reads of each tensor
        self.input = self.ops[0].name
        self.output = output
        self.outputs = tuple(outputs or (output,))
        self.input_shape = tuple(int(d) for d in input_shape)
        self.aliases = dict(aliases or {})
        self.shapes = {
            name: tuple(t.shape[1:])
            for name, t in self.forward(tf.zeros([1, *self.input_shape]), record_switches=False).items()
        }

    def resolve(self, layer: str) -> str:
        """The tensor a user's layer name means; ValueError naming the choices if there is none."""
        layer = self.aliases.get(layer, layer)
        if layer not in self.by_name or layer == self.input:
            raise ValueError(f"unknown layer {layer!r}; the model has {', '.join(self.layer_names)}")
        op = self.by_name[layer]
        if op.kind == "softmax":  # project the scores the softmax reads
            return op.inputs[0]
        return layer

    @property
    def layer_names(self) -> list[str]:
        """Names a user may project from: every layer output but the input's, nested ones by alias."""
        by_target = {}
        for alias, target in self.aliases.items():
            by_target.setdefault(target, alias)
        names = []
        for op in self.ops:
            if op.kind != "input" and not op.name.endswith(INTERNAL_SUFFIXES):
                name = op.name if "/" not in op.name else by_target.get(op.name, op.name)
                names.append(name)
        return names

    @property
    def feature_layers(self) -> list[str]:
        """Layers with feature maps ([H, W, C]) that a convolution or pooling produced."""
        return [
            name
            for name in self.layer_names
            if len(self.shapes[self.resolve(name)]) == 3
            and self.by_name[self.resolve(name)].kind not in ("input", "identity", "zero_pad", "crop", "softmax")
        ]

    def is_feature_layer(self, layer: str) -> bool:
        """Whether `layer`, by any name `resolve` takes (a nested layer by its alias or its full
        `outer/inner` name), is one of `feature_layers`."""
        try:
            name = self.resolve(layer)
        except ValueError:
            return False
        return name in {self.resolve(feature) for feature in self.feature_layers}

    @property
    def block_outputs(self) -> list[str]:
        """The feature layers a person means by every layer of a network: the maps each block hands on
        (after its activation, its residual sum, its pooling or concatenation), not the steps inside it (a
        convolution read only by its normalization, that by its activation, a branch by its residual sum;
        `WITHIN_BLOCK`) nor the image rescaled. ResNet50: its 49 rectifiers and the first max pooling (of
        172 `feature_layers`); EfficientNetB0: 113 of 206 (activations, squeeze-and-excitation maps and
        gated maps, block outputs). A Keras layer the engine runs as it is (`layer` kind) counts as a block's
        output: what it does inside is not known."""
        pixels = set()  # the image rescaled or normalized (EfficientNet's Rescaling, Normalization): no feature yet
        for op in self.ops:
            if op.kind == "input" or (op.kind in PIXEL_STEPS and all(name in pixels for name in op.inputs)):
                pixels.add(op.name)

        def inside(name: str) -> bool:
            ops = self.readers[name]
            return bool(ops) and all(
                op.kind in WITHIN_BLOCK or (op.kind == "identity" and inside(op.name)) for op in ops
            )

        return [
            name for name in self.feature_layers if not inside(self.resolve(name)) and self.resolve(name) not in pixels
        ]

    def ancestors(self, names) -> set[str]:
        """The given tensors and every tensor they are computed from."""
        seen, stack = set(), list(names)
        while stack:
            name = stack.pop()
            if name not in self.by_name:
                raise ValueError(f"unknown layer {name!r}; the model has {', '.join(self.layer_names)}")
            if name not in seen:
                seen.add(name)
                stack.extend(self.by_name[name].inputs)
        return seen

    # Plain TensorFlow code with Python control flow only: autograph, which would convert it (and every
    # rule it calls) at every trace, has nothing to do in it.
    # 7 parameters: every knob of one forward pass, passed straight into a trace (no object to rebuild per call).
    @tf.autograph.experimental.do_not_convert
    def forward(
        self,
        images,
        compute_dtype=tf.float32,
        record_switches: bool = True,
        until=None,
        relu: Callable = tf.nn.relu,
        training: bool = False,
        fold_affine: bool = False,
    ) -> dict:
        """Runs the graph and returns every tensor by name.

        Args:
          images: [N, H, W, C] float, already preprocessed as the model expects.
          compute_dtype: tf.float32, or tf.bfloat16 for mixed precision.
          record_switches: argmax pooling, returning `switches_name(op)` [N, h, w, c] int64 too.
          until: names of the tensors needed (the ops they do not depend on are skipped), or None.
          relu: the rectifier (tests swap in ones with other backward rules).
          training: ops with a `train` param (batch normalization, GELU) run it instead: (x, dtype) -> y.
          fold_affine: with `until`, an affine op (inference batch normalization) that alone reads a
            convolution not in `until` runs with it as one convolution (kernel and bias scaled), which
            TensorFlow fuses with the rectifier after it: the scan's forward pass, several times fewer
            passes over memory. The convolution's own tensor is then not returned; the results differ
            from the unfolded ones by rounding only.
        Returns:
          name -> tensor; the output op's tensor is float32.
        """
        dtype = tf.as_dtype(compute_dtype)
        tensors = {}
        needed = self.ancestors(until) if until else None
        folded = self._foldable(until) if fold_affine and until and not training else {}
        skipped = {conv.name for conv in folded.values()}
        for op in self.ops:
            if (needed is not None and op.name not in needed) or op.name in skipped:
                continue
            if op.name in folded:
                conv = folded[op.name]
                tensors[op.name] = _folded(conv, op, tensors[conv.inputs[0]], dtype)
                continue
            inputs = [tensors[name] for name in op.inputs]
            if op.kind == "input":
                tensors[op.name] = tf.cast(images, dtype)
            elif op.kind == "max_pool" and record_switches:
                pooled, switches = ops.max_pool_with_argmax(
                    inputs[0], op.params["pool"], op.params["stride"], op.params["padding"]
                )
                tensors[op.name], tensors[switches_name(op.name)] = pooled, switches
            elif training and "train" in op.params:
                tensors[op.name] = op.params["train"](inputs[0], dtype)
            else:
                plain_relu = op.kind == "relu" and not op.params
                tensors[op.name] = relu(inputs[0]) if plain_relu else _apply(op, inputs, dtype)
        for name in self.outputs:
            if name in tensors:
                tensors[name] = tf.cast(tensors[name], tf.float32)
        return tensors

    def _foldable(self, until) -> dict:
        """{affine op name: the convolution op it alone reads} for the convolutions not in `until`."""
        wanted = set(until)
        pairs = {}
        for op in self.ops:
            source = self.by_name[op.inputs[0]] if op.kind == "affine" else None
            if (source is not None and source.kind in ("conv", "depthwise_conv")
                    and self.consumers[source.name] == 1 and source.name not in wanted):  # fmt: skip
                pairs[op.name] = source
        return pairs

    def probabilities(self, outputs) -> tf.Tensor:
        """Class probabilities [N, classes] float32 from the network's outputs: a softmax of them unless
        the network already ends in one."""
        outputs = tf.cast(outputs, tf.float32)
        return outputs if self.by_name[self.output].kind == "softmax" else tf.nn.softmax(outputs)

    def __call__(self, images, compute_dtype=tf.float32):
        """The network's output [N, ...] float32 for images [N, H, W, C]."""
        return self.forward(images, compute_dtype, record_switches=False)[self.output]


def _folded(conv: Op, affine: Op, x, dtype) -> tf.Tensor:
    """conv(x) * scale + offset as one convolution: kernel * scale, bias * scale + offset (float32)."""
    scale, offset = affine.value("scale", tf.float32), affine.value("offset", tf.float32)
    if conv.kind == "depthwise_conv":  # output channel c * multiplier + j is scaled by scale[that channel]
        channels = int(x.shape[-1])
        kernel = registry.depthwise_kernel(conv, channels, tf.float32)
        kernel = kernel * tf.reshape(tf.broadcast_to(scale, [channels * kernel.shape[-1]]), [1, 1, channels, -1])
    else:
        kernel = conv.value("kernel", tf.float32) * scale
    bias = offset if conv.params.get("bias") is None else conv.value("bias", tf.float32) * scale + offset
    merged = Op(affine.name, conv.kind, conv.inputs, dict(conv.params, kernel=kernel, bias=bias), conv.source)
    return registry.KINDS[conv.kind].forward(merged, [x], dtype)


def _apply(op: Op, inputs: list, dtype) -> tf.Tensor:
    """The forward computation of one op (all but input and switch-recording max pooling)."""
    return registry.KINDS[op.kind].forward(op, inputs, dtype)
