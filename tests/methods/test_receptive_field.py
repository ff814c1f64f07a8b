"""Receptive-field arithmetic against brute force: perturb one input pixel, see which units change."""

import numpy as np
import pytest
import tensorflow as tf

from configs import atrous, default
from vizdeconv.methods import receptive_field
from vizdeconv.nn.convnet import ConvNet, LayerSpec, build_model, layer_specs


def brute_force_footprints(model: ConvNet, layer: str) -> np.ndarray:
    """[h, w, H, W] bool: which input pixels reach each unit, found by perturbing pixels one at a time.

    A linear twin of the model's geometry (all-ones kernels, average instead of max pooling, no ReLU)
    makes every pixel inside a unit's field change that unit.
    """
    size = model.image_size
    images = tf.reshape(tf.eye(size * size), [size * size, size, size, 1])
    x = images
    for spec in model.specs:
        kernel = tf.ones([spec.kernel, spec.kernel, 1, 1])
        x = tf.nn.conv2d(x, kernel, spec.stride, spec.padding, dilations=spec.dilation)
        if spec.name == layer:
            break
        if spec.pool:
            x = tf.nn.avg_pool2d(x, spec.pool, spec.effective_pool_stride, spec.pool_padding)
            if spec.pool_name == layer:
                break
    changed = x.numpy()[..., 0] != 0  # [H*W, h, w]
    return np.transpose(changed, (1, 2, 0)).reshape(*changed.shape[1:], size, size)


NETS = {
    "reference": layer_specs(default.reference_layers()),
    "atrous": layer_specs(atrous.get_config().model.layers),
    "strided_valid": (
        LayerSpec("conv1", 3, 2, stride=2, padding="VALID", pool=3, pool_stride=2),
        LayerSpec("conv2", 2, 2, dilation=2, pool=2, pool_padding="VALID"),
        LayerSpec("conv3", 3, 2),
    ),
}


@pytest.mark.parametrize("net", sorted(NETS))
def test_boxes_bound_exactly_the_pixels_that_reach_each_unit(net):
    model = ConvNet(NETS[net], image_size=24 if net != "strided_valid" else 23)
    for layer in [n for n in model.shapes if n not in ("input", "logits") and "/" not in n]:
        footprints = brute_force_footprints(model, layer)
        height, width = footprints.shape[:2]
        for row in range(height):
            for col in range(width):
                rows, cols = np.nonzero(footprints[row, col])
                expected = (rows.min(), cols.min(), rows.max(), cols.max())
                assert receptive_field.box(model, layer, row, col) == expected, (layer, row, col)


def test_reference_field_sizes():
    fields = receptive_field.fields(build_model(default.get_config()))
    assert [fields[n].size for n in ("conv1", "pool1", "conv2", "pool2", "conv3")] == [5, 6, 14, 16, 32]
    assert [fields[n].jump for n in ("conv1", "conv2", "conv3")] == [1, 2, 4]
