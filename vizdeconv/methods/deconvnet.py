"""`Deconvnet`: the one entry point for projections, over a Keras model, a reference net or a Graph."""

import numpy as np
import tensorflow as tf

from vizdeconv.methods import reconstruct
from vizdeconv.nn import ops
from vizdeconv.nn.graph import Graph


def as_graph(model) -> Graph:
    """The Graph of a Keras model, of the reference convnet (anything with `.graph()`), or a Graph."""
    if isinstance(model, Graph):
        return model
    if hasattr(model, "graph") and callable(model.graph):
        return model.graph()
    import keras

    if isinstance(model, keras.Model):
        from vizdeconv.nn import keras_adapter

        return keras_adapter.describe(model)
    raise ValueError(
        f"cannot read a network from {type(model).__name__}; pass a keras.Model, a "
        "vizdeconv run's model (vizdeconv.load_model) or a vizdeconv Graph"
    )


def channel_signal(activations, channels, strongest_unit: bool = False):
    """Keeps one feature map (or one unit of a vector) per example and zeroes the rest.

    Args:
      activations: [N, h, w, c] or [N, c] float.
      channels: [N] int, the feature map to keep for each example.
      strongest_unit: keep only that map's single largest activation.
    Returns:
      the shape of `activations`.
    """
    channels = tf.cast(channels, tf.int32)
    rank = len(activations.shape)
    mask = tf.one_hot(channels, tf.shape(activations)[-1], dtype=activations.dtype)
    signal = activations * tf.reshape(mask, [-1] + [1] * (rank - 2) + [tf.shape(activations)[-1]])
    if strongest_unit:
        flat = tf.reshape(signal, [tf.shape(signal)[0], -1])
        keep = tf.one_hot(tf.argmax(flat, axis=1), tf.shape(flat)[1], dtype=signal.dtype)
        signal = tf.reshape(flat * keep, tf.shape(signal))
    return signal


def strongest_unit(activations):
    """Each example's strongest unit over all its feature maps.

    Args:
      activations: [N, h, w, c] float.
    Returns:
      channels [N] int32 and flat positions [N] int32 (row * w + col), as `unit_signal` takes them.
    """
    depth = tf.shape(activations)[-1]
    flat = tf.reshape(tf.cast(activations, tf.float32), [tf.shape(activations)[0], -1])
    strongest = tf.argmax(flat, axis=1, output_type=tf.int32)
    return strongest % depth, strongest // depth


def unit_signal(activations, channels, positions, impulse: bool = False):
    """Keeps one unit per example: channel `channels[i]` at flat position `positions[i]` (row * w + col).

    Args:
      activations: [N, h, w, c] (or [N, c], positions 0) float.
      channels, positions: [N] int.
      impulse: put 1.0 there instead of the activation (compares networks whose activations differ).
    Returns:
      the shape of `activations`, one non-zero entry per example (unless that activation is 0).
    """
    shape = tf.shape(activations)
    depth = shape[-1]
    flat_index = tf.cast(positions, tf.int32) * depth + tf.cast(channels, tf.int32)
    size = tf.reduce_prod(shape[1:])
    mask = tf.reshape(tf.one_hot(flat_index, size, dtype=activations.dtype), shape)
    return mask if impulse else activations * mask


class Deconvnet:
    """Deconvnet projections (Zeiler & Fergus 2014) of any supported network, compiled per call shape.

    Args:
      model: a keras.Model, the reference convnet, or a Graph.
      mode: "deconvnet" | "guided" | "bias_subtract".
      rectify: "relu" (default: the mode's rule at ReLUs; other activations such as silu pass their own
        gradient, as Xplique and Captum do) or "all" (the ReLU rule at every activation).
      compute_dtype: tf.float32 (exact) or tf.bfloat16.
    """

    def __init__(self, model, mode: str = "deconvnet", compute_dtype=tf.float32, rectify: str = "relu"):
        self.graph = as_graph(model)
        self.mode = reconstruct.check_mode(mode)
        self.rectify = reconstruct.check_rectify(rectify)
        self.dtype = tf.as_dtype(compute_dtype)
        self._functions = {}

    def _compiled(self, method: str, *static):
        """One tf.function per method and static arguments (layer names, flags), so a call for another
        layer traces its own function instead of retracing a shared one. Held by the instance, unlike
        method decorators, which hold it only weakly and break on a temporary (`ops.compiled`: no false
        retracing warning when a trainer projects six layers)."""
        key = (method, *static)
        if key not in self._functions:
            self._functions[key] = ops.compiled(getattr(self, method), *static, reduce_retracing=True)
        return self._functions[key]

    @property
    def layer_names(self) -> list[str]:
        """Every layer's name, input first, as `project` takes them."""
        return self.graph.layer_names

    def forward(self, images, record_switches: bool = True, until=None) -> dict:
        """Every tensor of the network for images [N, H, W, C] (see Graph.forward), with the max pools' switches
        where `record_switches`, computed only as far as the layers named in `until` when given."""
        return self.graph.forward(images, self.dtype, record_switches, until)

    def _check(self, images, layer: str, channels=None):
        name = self.graph.resolve(layer)
        images = tf.convert_to_tensor(images, tf.float32)
        if tuple(images.shape[1:]) != self.graph.input_shape:
            raise ValueError(f"images have shape {tuple(images.shape[1:])}, the model takes {self.graph.input_shape}")
        if self.mode == "bias_subtract":
            reconstruct.check_bias_subtract(self.graph, [name])
        if channels is not None:
            depth = self.graph.shapes[name][-1]
            values = np.asarray(channels).reshape(-1)
            if values.size and (values.min() < 0 or values.max() >= depth):
                raise ValueError(
                    f"channel {int(values.max() if values.max() >= depth else values.min())}"
                    f" is out of range: layer {layer!r} has {depth} channels (0..{depth - 1})"
                )
        return images, name

    def project(self, images, layer, channel=None, unit=None, *, impulse: bool = False, image_ids=None):
        """Projects layers, feature maps or units down to the pixels: the one projection call.

        Args:
          images: [N, H, W, C] float, preprocessed as the model expects ([M, H, W, C] with `image_ids`).
          layer: a layer name (e.g. "conv2", "logits"), or a list of names: each whole layer, stacked in
            one pass (then `channel` and `unit` stay None).
          channel: None (the whole layer), an int, or [N] ints (one feature map per image).
          unit: None (the whole feature map), "max" (only its strongest unit), or an int / [N] flat
            positions row * w + col of the unit to keep.
          impulse: with flat positions: a unit signal of 1 instead of the unit's activation.
          image_ids: [N] ints into `images`: projection i is of images[image_ids[i]]; each distinct image
            runs forward once however many units come from it (needs channel and flat positions).
        Returns:
          [N, H, W, C] float32; for a list of layers, {layer: [N, H, W, C] float32}.
        """
        if not isinstance(layer, str):
            if channel is not None or unit is not None or image_ids is not None:
                raise ValueError("several layers are projected whole: leave channel, unit and image_ids out")
            images, _ = self._check(images, layer[0])
            names = {name: self.graph.resolve(name) for name in layer}
            result = self._compiled("_layers", tuple(names.values()))(images)
            return {name: result[resolved] for name, resolved in names.items()}
        if unit is not None and channel is None:
            raise ValueError("a unit needs a channel: pass channel= as well")
        if isinstance(unit, str) and unit != "max":
            raise ValueError(f"unit must be 'max' or flat positions, got {unit!r}")
        if image_ids is not None and (unit is None or isinstance(unit, str)):
            raise ValueError("image_ids needs a channel and flat unit positions")
        images, name = self._check(images, layer, channel)
        if channel is None:
            return self._compiled("_layers", (name,))(images)[name]
        count = images.shape[0] if image_ids is None else len(np.asarray(image_ids).reshape(-1))
        channels = tf.broadcast_to(tf.cast(channel, tf.int32), [count])
        if unit is None or isinstance(unit, str):
            return self._compiled("_channels", name, unit is not None)(images, channels)
        positions = tf.broadcast_to(tf.cast(unit, tf.int32), [count])
        if image_ids is not None:
            which = tf.cast(image_ids, tf.int32)
            return self._compiled("_units_of", name, bool(impulse))(images, which, channels, positions)
        return self._compiled("_units", name, bool(impulse))(images, channels, positions)

    # Thin aliases of `project`, kept for one release (0.2 -> 0.3) for code written against them.
    def layers(self, images, layers) -> dict:
        """Deprecated: `project(images, list(layers))`."""
        return self.project(images, list(layers))

    def channels(self, images, layer: str, channels, strongest_unit: bool = False):
        """Deprecated: `project(images, layer, channels, unit="max" if strongest_unit else None)`."""
        return self.project(images, layer, channels, "max" if strongest_unit else None)

    def units(self, images, layer: str, channels, positions, impulse: bool = False):
        """Deprecated: `project(images, layer, channels, positions, impulse=impulse)`."""
        return self.project(images, layer, channels, positions, impulse=impulse)

    def units_of(self, images, which, layer: str, channels, positions, impulse: bool = False):
        """Deprecated: `project(images, layer, channels, positions, impulse=impulse, image_ids=which)`."""
        return self.project(images, layer, channels, positions, impulse=impulse, image_ids=which)

    def top_channels(self, image, layer: str, k: int):
        """The k strongest feature maps of `layer` for one image [1, H, W, C], each projected alone.

        Returns:
          projections [k, H, W, C] float32 and channels [k] int32, strongest first.
        """
        image, name = self._check(image, layer)
        return self._compiled("_top_channels", name, int(k))(image)

    def activations(self, images, layer: str):
        """A layer's activations for `images` [N, H, W, C] and the network's output, compiled once per layer.

        Returns:
          [N, *shape of layer] float32 and [N, outputs] float32.
        """
        images, name = self._check(images, layer)
        return self._compiled("_activations", name)(images)

    def feature_maps(self, images, layer: str):
        """A layer's activations alone for `images` [N, H, W, C], the network run only as far as it:
        [N, *shape of layer] float32."""
        images, name = self._check(images, layer)
        return self._compiled("_feature_maps", name)(images)

    def _feature_maps(self, name, images):
        return tf.cast(self.forward(images, record_switches=False, until=(name,))[name], tf.float32)

    def _activations(self, name, images):
        tensors = self.forward(images, record_switches=False, until=(name, self.graph.output))
        return tf.cast(tensors[name], tf.float32), tensors[self.graph.output]

    def _signals(self, tensors, names):
        return {name: tensors[name] for name in names}

    def _project(self, tensors, signals):
        return reconstruct.project_signals(self.graph, tensors, signals, self.mode, self.dtype, self.rectify)

    def _layers(self, names, images):
        tensors = self.forward(images, until=names)
        return self._project(tensors, self._signals(tensors, names))

    def _channels(self, name, strongest_unit, images, channels):
        tensors = self.forward(images, until=(name,))
        return self._project(tensors, {name: channel_signal(tensors[name], channels, strongest_unit)})[name]

    def _units_of(self, name, impulse, images, which, channels, positions):
        # Every recorded tensor (activations, switches, rectifier masks) is per image: each unit takes its
        # image's.
        tensors = tf.nest.map_structure(lambda t: tf.gather(t, which), self.forward(images, until=(name,)))
        return self._project(tensors, {name: unit_signal(tensors[name], channels, positions, impulse)})[name]

    def _units(self, name, impulse, images, channels, positions):
        tensors = self.forward(images, until=(name,))
        return self._project(tensors, {name: unit_signal(tensors[name], channels, positions, impulse)})[name]

    def _top_channels(self, name, k, image):
        tensors = self.forward(tf.repeat(image[:1], k, axis=0), until=(name,))
        activations = tensors[name][0]
        strength = tf.reduce_max(tf.reshape(activations, [-1, tf.shape(activations)[-1]]), axis=0)
        channels = tf.math.top_k(tf.cast(strength, tf.float32), k=k).indices
        signal = channel_signal(tensors[name], channels)
        return self._project(tensors, {name: signal})[name], channels
