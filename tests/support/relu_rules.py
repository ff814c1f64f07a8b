"""ReLUs with the deconvnet and guided backward rules: autodiff through them is the independent truth
the projection engine is tested against."""

import tensorflow as tf


@tf.custom_gradient
def deconvnet_relu(x):
    return tf.nn.relu(x), lambda upstream: tf.nn.relu(upstream)


@tf.custom_gradient
def guided_relu(x):
    y = tf.nn.relu(x)
    return y, lambda upstream: tf.nn.relu(upstream) * tf.cast(y > 0, upstream.dtype)


RULES = {"deconvnet": deconvnet_relu, "guided": guided_relu}


def rule(forward, mode: str, lower: float = 0.0, upper=None):
    """An activation that computes `forward` and passes back the mode's rectifier rule: relu(g), and for
    guided backpropagation relu(g) * 1[lower < x < upper]."""

    @tf.custom_gradient
    def activation(x):
        def backward(upstream, variables=()):
            g = tf.nn.relu(upstream)
            if mode == "guided":
                active = x > lower
                if upper is not None:
                    active &= x < upper
                g *= tf.cast(active, g.dtype)
            # A parametric activation's own weights (PReLU's alpha) get no gradient: only pixels matter.
            return (g, [tf.zeros_like(v) for v in variables]) if variables else g

        return forward(x), backward

    return activation


def modified_keras_model(model, mode: str, rectify: str = "relu"):
    """The Keras model itself (cloned, nested models too, same weights) with the backward rule of its
    rectifiers replaced: every ReLU (also ReLU6, thresholds) and, with rectify="all", every other
    activation. Written without vizdeconv: the independent truth for any Keras CNN."""
    import keras

    def replaced(function):
        name = getattr(function, "__name__", "")
        if name == "relu":
            return rule(tf.nn.relu, mode)
        if name == "relu6":
            return rule(tf.nn.relu6, mode, upper=6.0)
        if rectify == "all" and name not in ("linear", "softmax"):
            return rule(function, mode)
        return None

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.ReLU) and float(layer.negative_slope) == 0:
            threshold, top = float(layer.threshold), layer.max_value
            return keras.layers.Activation(rule(lambda x: keras.activations.relu(x, max_value=top, threshold=threshold),
                                                mode, threshold, top), name=layer.name)  # fmt: skip
        if rectify == "all" and isinstance(
            layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU)
        ):
            return keras.layers.Activation(rule(layer.call, mode), name=layer.name)
        try:
            new = layer.__class__.from_config(config)
        except ValueError:  # a Lambda of a Python lambda: shared, the same computation
            return layer
        function = getattr(layer, "activation", None)
        if function is not None and replaced(function) is not None:
            new.activation = replaced(function)
        return new

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in zip(_all_layers(model), _all_layers(twin)):
        if new is not old and new.weights:
            new.set_weights(old.get_weights())
    return twin


def _all_layers(model):
    import keras

    for layer in model.layers:
        yield from _all_layers(layer) if isinstance(layer, keras.Model) else [layer]
