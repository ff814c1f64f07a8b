"""Attribution against independent formulations: each method written here from its paper's equations on a
Keras sub-model and a tf.GradientTape (no vizdeconv code), on a plain CNN, a residual network, a nested
transfer model and a ReLU6/swish network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vizdeconv
from vizdeconv.methods.attribution import METHODS, Attribution

SIZE = 12


def _plain(softmax: bool = False, activation: str = "relu"):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation=activation, name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation=activation, name="c2")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, activation="softmax" if softmax else None, name="logits")(x)
    return keras.Model(inputs, outputs)


def _residual():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    branch = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
    x = keras.layers.Add(name="sum")([x, branch])
    x = keras.layers.ReLU(name="block")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def _relu6_swish():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu6", name="c1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="swish", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def _nested():
    """A transfer model: a backbone model inside, then a new head (Grad-CAM peers' "Graph disconnected")."""
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inner_in)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    features = backbone(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(4, activation="softmax", name="head")(pooled)
    return keras.Model(inputs, outputs), backbone


def _randomize(model, seed: int):
    """Non-zero biases and moving statistics, so no term of a formula is trivially zero."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if w.ndim == 1 else w
                       for w in model.get_weights()])  # fmt: skip
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


def _images(count: int = 3, seed: int = 1):
    return np.random.default_rng(seed).normal(size=(count, SIZE, SIZE, 3)).astype(np.float32)


def _layer_and_gradient(front, back, images, targets):
    """A = front(x), S = back(A)[target]; returns A, dS/dA, S (numpy) with a plain GradientTape."""
    with tf.GradientTape() as tape:
        features = front(images)
        tape.watch(features)
        logits = back(features)
        scores = tf.gather(logits, targets, batch_dims=1)
    return features.numpy(), tape.gradient(scores, features).numpy(), scores.numpy()


def _split(model, layer: str):
    """front: the input to `layer`'s output; back: that output to the logits, as Keras sub-models (the
    back half rebuilt on a new input by calling the later layers, for a sequential stack)."""
    names = [lay.name for lay in model.layers]
    index = names.index(layer)
    front = keras.Model(model.inputs, model.get_layer(layer).output)
    head_in = keras.Input(model.get_layer(layer).output.shape[1:])
    x = head_in
    for lay in model.layers[index + 1 :]:
        x = lay(x)
    return front, keras.Model(head_in, x)


def _paper_gradcam(features, gradients):
    weights = gradients.mean(axis=(1, 2))  # alpha_k^c: global average of dS/dA_k (Eq. 1)
    return np.maximum((features * weights[:, None, None, :]).sum(-1), 0)  # ReLU(sum_k alpha_k A^k) (Eq. 2)


def _paper_gradcam_pp(features, gradients, scores):
    """Chattopadhay et al. Eq. 19 with Y = exp(S): dY/dA = exp(S) g, higher derivatives exp(S) g^n."""
    y = np.exp(scores)[:, None, None, None]
    first, second, third = y * gradients, y * gradients**2, y * gradients**3
    denominator = 2 * second + features.sum(axis=(1, 2), keepdims=True) * third
    alpha = np.where(denominator != 0, second / np.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * np.maximum(first, 0)).sum(axis=(1, 2))
    return np.maximum((features * weights[:, None, None, :]).sum(-1), 0)


def _unit(maps):
    peak = maps.reshape(len(maps), -1).max(1)
    return maps / np.where(peak > 0, peak, 1)[:, None, None]


def _close(actual, expected, rtol=1e-5):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


CASES = {
    "plain": lambda: (_randomize(_plain(), 0), "c2"),
    "residual": lambda: (_randomize(_residual(), 1), "block"),
    "relu6_swish": lambda: (_randomize(_relu6_swish(), 2), "c2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cams_equal_the_papers_equations(case):
    model, layer = CASES[case]()
    images = _images()
    targets = np.array([0, 3, 1])
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    with tf.GradientTape() as tape:
        features, logits = sub(images)
        scores = tf.gather(logits, targets, batch_dims=1)
    gradients = tape.gradient(scores, features).numpy()
    features, scores = features.numpy(), scores.numpy()

    gradcam = Attribution(model, "gradcam", layer).explain(images, targets)
    _close(gradcam.raw, _paper_gradcam(features, gradients))
    np.testing.assert_allclose(gradcam.scores, scores, rtol=1e-5)
    np.testing.assert_array_equal(gradcam.targets, targets)
    plus = Attribution(model, "gradcam++", layer).explain(images, targets)
    _close(_unit(plus.raw), _unit(_paper_gradcam_pp(features, gradients, scores)))
    peaks = gradcam.maps.max(axis=(1, 2))  # 1, or 0 for an image whose map is negative everywhere
    assert gradcam.maps.shape == (3, SIZE, SIZE) and set(np.round(peaks, 6)) <= {0.0, 1.0} and peaks.max() == 1


def _paper_scorecam(model, images, features, targets):
    """Wang et al. Eq. 3-6: each map upsampled and min-max normalized masks the image; its weight is the
    target's softmax probability of the masked image."""
    cams = []
    for image, feature, target in zip(images, features, targets):
        masks = tf.image.resize(np.moveaxis(feature, -1, 0)[..., None], image.shape[:2]).numpy()[..., 0]
        low, high = masks.min(axis=(1, 2), keepdims=True), masks.max(axis=(1, 2), keepdims=True)
        masks = np.where(high > low, (masks - low) / np.where(high > low, high - low, 1), 0)
        probabilities = tf.nn.softmax(model(image[None] * masks[..., None])).numpy()[:, target]
        cams.append(np.maximum((feature * probabilities).sum(-1), 0))
    return np.stack(cams)


def test_scorecam_weighs_a_map_flat_up_to_rounding_as_a_flat_one():
    """A map whose spread is float noise (1e-6 of its value) carries no location: it masks like an exactly
    flat map (to nothing), not as its noise scaled up to [0, 1]."""

    def model(noise: float):
        inputs = keras.Input((SIZE, SIZE, 3))
        conv = keras.layers.Conv2D(2, 1, name="conv")
        x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
        net = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
        kernel = np.zeros((1, 1, 3, 2), np.float32)
        kernel[0, 0, 0] = (noise, 1.0)  # map 0: 1 + noise * red, map 1: red
        conv.set_weights([kernel, np.array([1.0, 0.0], np.float32)])
        net.get_layer("out").set_weights([np.array([[1.0, -1, 0], [2, 0, -2]], np.float32), np.zeros(3, np.float32)])
        return net

    images = np.abs(_images(1))
    flat = Attribution(model(0.0), "scorecam", "conv").explain(images, [0]).raw
    rounded = Attribution(model(1e-6), "scorecam", "conv").explain(images, [0]).raw
    _close(rounded, flat, rtol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scorecam_equals_the_papers_equations(case):
    model, layer = CASES[case]()
    images = _images(2)
    features = keras.Model(model.inputs, model.get_layer(layer).output)(images).numpy()
    targets = np.array([2, 0])
    result = Attribution(model, "scorecam", layer).explain(images, targets)
    _close(result.raw, _paper_scorecam(model, images, features, targets))
    # Faster Score-CAM: only the strongest-variance maps take part
    keep = 3
    variance = features.reshape(2, -1, features.shape[-1]).var(axis=1)
    chosen = [np.sort(np.argsort(-v, kind="stable")[:keep]) for v in variance]
    fast = Attribution(model, "scorecam", layer, max_maps=keep).explain(images, targets)
    for i in range(2):
        expected = _paper_scorecam(model, images[i : i + 1], features[i : i + 1, ..., chosen[i]], targets[i : i + 1])
        _close(fast.raw[i : i + 1], expected)


def test_nested_model_by_the_backbones_layer_name():
    model, backbone = _nested()
    _randomize(model, 3)
    images = _images()
    targets = np.array([1, 2, 3])
    # the head ends in a softmax: the score is the logit before it, a copy of the head without it
    dense = keras.layers.Dense(4)
    logits_head = keras.Sequential([keras.Input((SIZE // 2, SIZE // 2, 8)), model.layers[2], dense])
    dense.set_weights(model.layers[3].get_weights())
    features, gradients, scores = _layer_and_gradient(backbone, logits_head, images, targets)
    gradcam = Attribution(model, "gradcam", layer="c2").explain(images, targets)
    _close(gradcam.raw, _paper_gradcam(features, gradients))
    np.testing.assert_allclose(gradcam.scores, scores, rtol=1e-5)
    plus = Attribution(model, "gradcam++", layer="c2").explain(images, targets)
    _close(_unit(plus.raw), _unit(_paper_gradcam_pp(features, gradients, scores)))
    assert Attribution(model, "gradcam").layer == "c2"  # the last spatial layer, inside the backbone


def test_softmax_ended_model_gives_the_maps_of_its_logits():
    logits_model = _randomize(_plain(softmax=False), 4)
    softmax_model = _plain(softmax=True)
    softmax_model.set_weights(logits_model.get_weights())
    images = _images()
    for method in METHODS:
        a = Attribution(logits_model, method).explain(images)
        b = Attribution(softmax_model, method).explain(images)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-6 * np.abs(a.raw).max(), err_msg=method)


def test_saliency_and_integrated_gradients_against_a_tape():
    model = _randomize(_residual(), 5)
    images = _images()
    targets = np.array([3, 3, 0])
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        scores = tf.gather(model(x), targets, batch_dims=1)
    _close(Attribution(model, "saliency").explain(images, targets).raw, tape.gradient(scores, x).numpy())

    baseline = np.full((SIZE, SIZE, 3), 0.25, np.float32)
    result = Attribution(model, "integrated_gradients", steps=16, baseline=baseline).explain(images, targets)
    # the midpoint sum written out with a tape: (x - x') * mean over k of dS/dx at x' + (k + 1/2)/16 (x - x')
    alphas = (np.arange(16, dtype=np.float32) + 0.5) / 16
    reference = []
    for image, target in zip(images, targets):
        with tf.GradientTape() as tape:
            points = tf.constant(baseline + alphas[:, None, None, None] * (image - baseline))
            tape.watch(points)
            path_scores = model(points)[:, target]
        reference.append((image - baseline) * tape.gradient(path_scores, points).numpy().mean(axis=0))
    _close(result.raw, np.stack(reference))

    # completeness (Sundararajan et al., Prop. 1): attributions sum to S(x) - S(baseline) as the path points
    # grow; the midpoint rule's error at ReLU kinks was at most 0.05% of the largest difference at 512 points
    # over thirty random draws of this network (0.35% at 64, and one draw in CI 1.5%)
    result = Attribution(model, "integrated_gradients", steps=512, baseline=baseline).explain(images, targets)
    start = tf.gather(model(np.repeat(baseline[None], 3, 0)), targets, batch_dims=1).numpy()
    difference = scores.numpy() - start
    np.testing.assert_allclose(result.raw.reshape(3, -1).sum(1), difference, atol=0.005 * np.abs(difference).max())


def test_guided_gradcam_is_the_guided_projection_times_the_upsampled_gradcam():
    model = _randomize(_plain(softmax=True), 6)
    images = _images()
    guided = vizdeconv.Deconvnet(model, mode="guided")
    targets = np.array([4, 0, 2])
    projection = guided.units(images, "logits", targets, np.zeros(3, np.int32), impulse=True).numpy()
    gradcam = Attribution(model, "gradcam", "c2").explain(images, targets).raw
    upsampled = tf.image.resize(gradcam[..., None], (SIZE, SIZE)).numpy()
    result = Attribution(model, "guided_gradcam", "c2").explain(images, targets)
    _close(result.raw, projection * upsampled)

    # the guided projection of a logit is guided backpropagation: the gradient with ReLU's backward rule
    # relu(g) * 1[x > 0]
    _close(projection, _plain_gradient(model, images, targets, tf.nn.relu, GUIDED))


GUIDED = lambda g, x: tf.nn.relu(g) * tf.cast(x > 0, g.dtype)  # noqa: E731  guided backpropagation's rule


def _plain_gradient(model, images, targets, activation, rule=None) -> np.ndarray:
    """d logit[target] / d images of a `_plain` model written out in TF ops, with the activation's backward
    rule replaced by `rule(g, x)` (None: its own gradient)."""

    @tf.custom_gradient
    def replaced(x):
        return activation(x), lambda g: rule(g, x)

    act = activation if rule is None else replaced
    w1, b1, w2, b2, w3, b3 = model.get_weights()
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        h = act(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = act(tf.nn.conv2d(h, w2, 1, "SAME") + b2)
        score = tf.gather(tf.reshape(h, [len(images), -1]) @ w3 + b3, targets, batch_dims=1)
    return tape.gradient(score, x).numpy()


def test_guided_gradcam_on_a_gelu_network_guides_at_every_gelu_with_rectify_all():
    """The speedrun recipe's rectifier: with rectify="all" the guided part is the gradient with GELU's backward
    rule replaced by relu(g) * 1[x > 0] (written out below); with the default "relu" it is GELU's own
    gradient, a different picture."""
    model = _randomize(_plain(activation="gelu"), 8)
    images, targets = _images(), np.array([1, 3, 0])
    gradcam = Attribution(model, "gradcam", "c2").explain(images, targets).raw
    upsampled = tf.image.resize(gradcam[..., None], (SIZE, SIZE)).numpy()

    guided = _plain_gradient(model, images, targets, tf.nn.gelu, GUIDED) * upsampled
    _close(Attribution(model, "guided_gradcam", "c2", rectify="all").explain(images, targets).raw, guided)
    own = _plain_gradient(model, images, targets, tf.nn.gelu) * upsampled
    _close(Attribution(model, "guided_gradcam", "c2").explain(images, targets).raw, own)
    assert not np.allclose(own, guided, atol=1e-4)


def test_targets_of_every_kind():
    model = _randomize(_plain(), 7)
    images = _images()
    logits = model(images).numpy()
    top = Attribution(model, "gradcam").explain(images)
    np.testing.assert_array_equal(top.targets, logits.argmax(1))
    np.testing.assert_allclose(top.scores, logits.max(1), rtol=1e-5)
    one = Attribution(model, "gradcam").explain(images, target=3)
    np.testing.assert_array_equal(one.targets, [3, 3, 3])
    listed = Attribution(model, "gradcam").explain(images, target=[3, 3, 3])
    np.testing.assert_array_equal(listed.raw, one.raw)
    called = Attribution(model, "gradcam").explain(images, target=lambda out: out[:, 3])
    np.testing.assert_allclose(called.raw, one.raw, rtol=1e-6)
    assert (called.targets == -1).all()
    # a callable may combine classes: the difference of two logits
    difference = Attribution(model, "saliency").explain(images, target=lambda out: out[:, 1] - out[:, 2])
    a = Attribution(model, "saliency").explain(images, target=1).raw
    b = Attribution(model, "saliency").explain(images, target=2).raw
    _close(difference.raw, a - b)
    with pytest.raises(ValueError, match="out of range"):
        Attribution(model, "gradcam").explain(images, target=5)
    with pytest.raises(ValueError, match="3 ints"):
        Attribution(model, "gradcam").explain(images, target=[1, 2])


def test_two_output_model_with_a_callable_target():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(pooled)
    box = keras.layers.Dense(2, name="box")(pooled)
    model = _randomize(keras.Model(inputs, [classes, box]), 8)
    images = _images()
    result = Attribution(model, "gradcam", "c1").explain(images, target=lambda outputs: outputs[1][:, 0])
    sub = keras.Model(inputs, [x, box])
    with tf.GradientTape() as tape:
        features, boxes = sub(images)
        scores = boxes[:, 0]
    _close(result.raw, _paper_gradcam(features.numpy(), tape.gradient(scores, features).numpy()))
    np.testing.assert_allclose(result.scores, scores.numpy(), rtol=1e-5)
    # an int target explains the first output's class logit
    assert Attribution(model, "gradcam", "c1").explain(images, target=2).targets.tolist() == [2, 2, 2]


def test_reloaded_sequential(tmp_path):
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(6, 3, activation="relu", name="c1"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="out")])  # fmt: skip
    _randomize(model, 9)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    images = _images()
    for method in ("gradcam", "scorecam", "integrated_gradients"):
        expected = Attribution(model, method).explain(images).raw
        np.testing.assert_allclose(Attribution(loaded, method).explain(images).raw, expected, rtol=1e-6)


def test_mixed_float16_model_computed_in_float32():
    reference = _randomize(_relu6_swish(), 10)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = _relu6_swish()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(reference.get_weights())
    images = _images()
    for method in METHODS:
        expected = Attribution(reference, method).explain(images).maps
        actual = Attribution(half, method).explain(images).maps
        np.testing.assert_allclose(actual, expected, atol=2e-3, err_msg=method)


BATCHED = [
    ("scorecam", {"max_maps": 5}),
    ("integrated_gradients", {"steps": 9}),
    ("saliency", {"smooth": 5}),
    ("guided_gradcam", {"smooth": 3}),
]


@pytest.mark.parametrize("method, settings", BATCHED)
def test_batch_size_does_not_change_results(method, settings):
    model = _randomize(_plain(), 11)
    images = _images()
    big = Attribution(model, method, **settings, batch_size=64).explain(images).raw
    small = Attribution(model, method, **settings, batch_size=2).explain(images).raw
    np.testing.assert_allclose(small, big, rtol=1e-5, atol=1e-6 * np.abs(big).max())


def test_smoothgrad_is_the_mean_over_noisy_copies():
    model = _randomize(_plain(), 12)
    images = _images(2)
    smooth = Attribution(model, "saliency", smooth=4, sigma=0.2, seed=3).explain(images, target=1)
    noise = np.random.default_rng(3).standard_normal((2, 4, SIZE, SIZE, 3), dtype=np.float32)
    span = images.reshape(2, -1).max(1) - images.reshape(2, -1).min(1)
    noisy = images[:, None] + noise * 0.2 * span[:, None, None, None, None]
    gradients = []
    for i in range(2):
        with tf.GradientTape() as tape:
            x = tf.constant(noisy[i])
            tape.watch(x)
            score = tf.reduce_sum(model(x)[:, 1])
        gradients.append(tape.gradient(score, x).numpy().mean(0))
    _close(smooth.raw, np.stack(gradients))


def test_errors_name_the_choice():
    model = _plain()
    with pytest.raises(ValueError, match="one of gradcam"):
        Attribution(model, "lime")
    with pytest.raises(ValueError, match="no spatial feature maps"):
        Attribution(model, "gradcam", layer="logits")
    with pytest.raises(ValueError, match="unknown layer"):
        Attribution(model, "gradcam", layer="nope")
    with pytest.raises(ValueError, match="smooth"):
        Attribution(model, "scorecam", smooth=3)
    with pytest.raises(ValueError, match="guided_gradcam explains a class"):
        Attribution(model, "guided_gradcam").explain(_images(), target=lambda out: out[:, 0])


class Doubled(keras.layers.Layer):
    """A custom layer no op kind claims: the engine runs it as it is, through its own gradient."""

    def call(self, x):
        return 2.0 * x + tf.sin(x)


def test_custom_layer_and_an_applications_family():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = Doubled(name="custom")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    custom = _randomize(keras.Model(inputs, keras.layers.Dense(3, name="logits")(x)), 13)
    mobilenet = keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None, classes=5,
                                               classifier_activation=None)  # fmt: skip
    big = np.random.default_rng(4).normal(size=(2, 64, 64, 3)).astype(np.float32)  # out_relu: 2x2
    for model, layer, images in ((custom, "custom", _images()), (mobilenet, "out_relu", big)):
        sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
        targets = np.arange(len(images)) % 3
        with tf.GradientTape() as tape:
            features, logits = sub(images)
            scores = tf.gather(logits, targets, batch_dims=1)
        expected = _paper_gradcam(features.numpy(), tape.gradient(scores, features).numpy())
        result = Attribution(model, "gradcam").explain(images, targets)
        assert result.layer == layer
        _close(result.raw, expected, rtol=1e-4)


def test_many_targets_trace_each_function_once_without_a_retracing_warning(caplog):
    # A caller explaining with several target functions gets one compiled function each; TensorFlow counts
    # traces per Python function, so they must not look like one function retracing.
    model = _randomize(_plain(), 10)
    images = _images()
    attribution = Attribution(model, "gradcam", "c2")
    targets = [lambda out, k=k: out[:, k] for k in range(5)]
    with caplog.at_level("WARNING", logger="tensorflow"):
        for _ in range(2):
            for target in targets:
                attribution.explain(images, target=target)
            attribution.explain(images, target=1)
    functions = list(attribution._functions.values())
    assert len(functions) == 6
    assert [f.experimental_get_tracing_count() for f in functions] == [1] * 6
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
