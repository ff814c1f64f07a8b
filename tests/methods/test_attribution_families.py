"""Attribution on every keras.applications family against a Keras sub-model and a GradientTape: Grad-CAM at
the family's last spatial layer and the plain gradient through the whole network (every op kind it has)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import FAMILIES
from vizdeconv.methods.attribution import Attribution

# One family runs in the default suite (ReLUs, hard_silu, squeeze-and-excitation); `python -m pytest -m
# families` runs them all (20 s to minutes each on 2 cores).
IN_SUITE = ("MobileNetV3Small",)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [name if name in IN_SUITE else pytest.param(name, marks=pytest.mark.families) for name in sorted(FAMILIES)]
)
def test_every_family_attributes_as_the_tape_says(name):
    build, size = FAMILIES[name]
    size = max(size, 64)  # a last spatial layer of more than one position
    keras.utils.set_random_seed(0)  # the random weights, whatever ran before in this process
    model = build(weights=None, input_shape=(size, size, 3), classes=5, classifier_activation=None)
    images = tf.random.stateless_normal([2, size, size, 3], [3, 4]).numpy()
    targets = np.array([1, 3])
    gradcam = Attribution(model, "gradcam")
    names = {layer.name for layer in model.layers}
    layer = gradcam.layer
    if layer not in names:  # an operation (x + y) a Keras sub-model cannot end at: the last layer that can
        layer = next(n for n in reversed(gradcam.graph.feature_layers) if n in names
                     and np.prod(gradcam.graph.shapes[gradcam.graph.resolve(n)][:2]) > 1)  # fmt: skip
        gradcam = Attribution(model, "gradcam", layer)
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    with tf.GradientTape(persistent=True) as tape:
        x = tf.constant(images)
        tape.watch(x)
        features, logits = sub(x)
        scores = tf.gather(logits, targets, batch_dims=1)
    gradients = tape.gradient(scores, features).numpy()
    expected = np.maximum((features.numpy() * gradients.mean(axis=(1, 2))[:, None, None, :]).sum(-1), 0)
    result = gradcam.explain(images, targets)
    assert np.abs(expected).max() > 0, f"{name}: the reference map is all zero"
    assert np.abs(result.raw - expected).max() <= 2e-4 * np.abs(expected).max(), (name, layer)
    np.testing.assert_allclose(result.scores, scores.numpy(), rtol=1e-3, atol=1e-4)
    pixels = tape.gradient(scores, x).numpy()
    saliency = Attribution(model, "saliency").explain(images, targets).raw
    assert np.abs(saliency - pixels).max() <= 2e-4 * np.abs(pixels).max(), name
