"""NumPy references against TensorFlow and the project's ops, plus the worked examples of the docs."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from vizdeconv.nn import numpy_reference as reference
from vizdeconv.nn import ops, shapes

geometry = st.fixed_dictionaries(
    dict(
        size=st.integers(3, 9),
        kernel=st.integers(1, 4),
        stride=st.integers(1, 3),
        dilation=st.integers(1, 3),
        padding=st.sampled_from(["SAME", "VALID"]),
        channels_in=st.integers(1, 3),
        channels_out=st.integers(1, 3),
        seed=st.integers(0, 10**6),
    )
)


def _random_case(g):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((2, g["size"], g["size"] + 1, g["channels_in"])).astype(np.float32)
    kernel = rng.standard_normal((g["kernel"], g["kernel"], g["channels_in"], g["channels_out"])).astype(np.float32)
    return rng, x, kernel


def _possible(g):
    return g["padding"] == "SAME" or g["size"] >= shapes.effective_kernel(g["kernel"], g["dilation"])


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_conv2d_and_transpose_agree_with_tensorflow_and_are_adjoint(g):
    _, x, kernel = _random_case(g)
    geo = (g["stride"], g["padding"], g["dilation"])
    if not _possible(g):
        with pytest.raises(ValueError, match="impossible"):
            ops.conv2d(tf.constant(x), tf.constant(kernel), *geo)
        return
    ours = reference.conv2d(x, kernel, *geo)
    np.testing.assert_allclose(ops.conv2d(tf.constant(x), tf.constant(kernel), *geo), ours, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        tf.nn.conv2d(x, kernel, g["stride"], g["padding"], dilations=g["dilation"]), ours, rtol=1e-4, atol=1e-4
    )
    y = np.random.default_rng(g["seed"] + 1).standard_normal(ours.shape).astype(np.float32)
    back = reference.conv2d_transpose(y, kernel, x.shape, *geo)
    np.testing.assert_allclose(
        ops.conv2d_transpose(tf.constant(y), tf.constant(kernel), x.shape, *geo), back, rtol=1e-4, atol=1e-4
    )
    # <conv(x), y> = <x, conv_transpose(y)>
    np.testing.assert_allclose(np.vdot(ours, y), np.vdot(x, back), rtol=1e-4, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 7), st.integers(1, 3), st.integers(2, 4), st.integers(1, 3), st.integers(0, 10**6))
def test_atrous_conv2d_matches_reference(size, channels, kernel, rate, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, size, size, channels)).astype(np.float32)
    k = rng.standard_normal((kernel, kernel, channels, 2)).astype(np.float32)
    np.testing.assert_allclose(
        tf.nn.atrous_conv2d(x, k, rate, "SAME"), reference.conv2d(x, k, 1, "SAME", rate), rtol=1e-4, atol=1e-4
    )


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 7),
    st.integers(1, 7),
    st.integers(1, 3),
    st.integers(2, 3),
    st.sampled_from(["SAME", "VALID"]),
    st.booleans(),
    st.integers(0, 10**6),
)
def test_argmax_pool_and_unpool_match_reference(height, width, channels, pool, padding, ties, seed):
    if padding == "VALID" and min(height, width) < pool:
        return
    rng = np.random.default_rng(seed)
    x = (
        rng.integers(0, 3, (2, height, width, channels)) if ties else rng.standard_normal((2, height, width, channels))
    ).astype(np.float32)
    pooled, switches = ops.max_pool_with_argmax(tf.constant(x), pool, pool, padding)
    ref_pooled, ref_switches = reference.max_pool_with_argmax(x, pool, pool, padding)
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(switches, ref_switches)
    np.testing.assert_array_equal(pooled, tf.nn.max_pool2d(x, pool, pool, padding))
    values = rng.standard_normal(pooled.shape).astype(np.float32)
    unpooled = ops.unpool(tf.constant(values), switches, x.shape, pool, pool, padding).numpy()
    np.testing.assert_allclose(unpooled, reference.unpool(values, ref_switches, x.shape), rtol=1e-6)
    np.testing.assert_allclose(ops.unpool_scatter_nd(tf.constant(values), switches, x.shape), unpooled, rtol=1e-6)


def _from_channel_major(listing):
    """[c][h][w] nested lists -> [h, w, c] array."""
    return np.transpose(np.array(listing, np.float32), (1, 2, 0))


def test_known_transposed_conv_stride2_same():
    x = _from_channel_major(
        [
            [[1, 0, 1], [0, 2, 1], [1, 1, 0]],
            [[2, 0, 2], [0, 1, 0], [1, 0, 0]],
            [[1, 1, 1], [2, 2, 0], [1, 1, 1]],
            [[1, 1, 2], [1, 0, 1], [0, 2, 2]],
        ]
    )[None]
    listed = np.array(
        [  # [out][in] 3x3, as the worked example lists them
            [
                [[1, 0, 1], [-1, 1, 0], [0, -1, 0]],
                [[-1, 0, 1], [0, 0, 1], [1, 1, 1]],
                [[0, 1, 1], [2, 0, 1], [1, 2, 1]],
                [[1, 1, 1], [0, 2, 1], [1, 0, 1]],
            ],
            [
                [[1, 0, 2], [-2, 1, 1], [1, -1, 0]],
                [[-1, 0, 1], [-1, 2, 1], [1, 1, 1]],
                [[0, 0, 0], [2, 2, 1], [1, -1, 1]],
                [[2, 1, 1], [0, -1, 1], [1, 1, 1]],
            ],
        ],
        np.float32,
    )
    # Rotate each 3x3 by 180 degrees and lay out as [h, w, out, in]; TensorFlow rotates them back.
    kernel = np.transpose(listed[:, :, ::-1, ::-1], (2, 3, 0, 1))
    expected = np.array(
        [
            [[4, 4], [3, 1], [6, 7], [2, 0], [7, 7], [3, 2]],
            [[4, 5], [3, 6], [3, 0], [2, 1], [7, 8], [5, 5]],
            [[8, 8], [6, 0], [8, 8], [5, -2], [11, 14], [2, 2]],
            [[3, 3], [2, 3], [7, 9], [2, 8], [3, 1], [3, 0]],
            [[5, 3], [5, 0], [11, 13], [3, 0], [9, 11], [3, 2]],
            [[2, 3], [1, 5], [4, 3], [5, 1], [4, 3], [4, 0]],
        ],
        np.float32,
    )[None]
    np.testing.assert_array_equal(reference.conv2d_transpose(x, kernel, (1, 6, 6, 2), 2, "SAME"), expected)
    np.testing.assert_array_equal(tf.nn.conv2d_transpose(x, kernel, (1, 6, 6, 2), 2, "SAME"), expected)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_transposed_conv_is_not_an_inverse_ones_come_back_as_minus_two_and_four(padding):
    """4x4 ones, filter [[1,0],[-1,-2]], stride 2: conv gives all -2; transposing back gives rows
    [-2,0,-2,0] / [2,4,2,4], not the ones it started from."""
    image = np.ones((1, 4, 4, 1), np.float32)
    kernel = np.array([[1, 0], [-1, -2]], np.float32)[:, :, None, None]
    forward = ops.conv2d(tf.constant(image), tf.constant(kernel), 2, padding).numpy()
    np.testing.assert_array_equal(forward, np.full((1, 2, 2, 1), -2.0))
    np.testing.assert_array_equal(reference.conv2d(image, kernel, 2, padding), forward)
    back = ops.conv2d_transpose(tf.constant(forward), tf.constant(kernel), (1, 4, 4, 1), 2, padding)
    expected = np.array([[-2, 0, -2, 0], [2, 4, 2, 4]] * 2, np.float32)
    np.testing.assert_array_equal(back.numpy()[0, :, :, 0], expected)
    np.testing.assert_array_equal(
        reference.conv2d_transpose(forward, kernel, (1, 4, 4, 1), 2, padding)[0, :, :, 0], expected
    )


def test_known_atrous_examples_and_impossible_case_raises():
    image = np.tile(np.array([1, 2, 3, 4], np.float32), (4, 1))
    x = np.stack([image, image], axis=-1)[None]
    kernel = np.ones((3, 3, 2, 5), np.float32)
    same1 = [[12, 24, 36, 28], [18, 36, 54, 42], [18, 36, 54, 42], [12, 24, 36, 28]]
    for result in (
        ops.conv2d(tf.constant(x), tf.constant(kernel), 1, "SAME", 1),
        tf.nn.atrous_conv2d(x, kernel, 1, "SAME"),
        reference.conv2d(x, kernel, 1, "SAME", 1),
    ):
        np.testing.assert_array_equal(np.asarray(result)[0, :, :, 0], same1)
    valid1 = ops.conv2d(tf.constant(x), tf.constant(kernel), 1, "VALID", 1).numpy()
    np.testing.assert_array_equal(valid1[0, :, :, 0], [[36, 54], [36, 54]])
    same2 = ops.conv2d(tf.constant(x), tf.constant(kernel), 1, "SAME", 2).numpy()
    np.testing.assert_array_equal(same2[0, :, :, 0], [[16, 24, 16, 24]] * 4)
    np.testing.assert_array_equal(reference.conv2d(x, kernel, 1, "SAME", 2)[0, :, :, 0], [[16, 24, 16, 24]] * 4)
    with pytest.raises(ValueError, match="dilated kernel spans 5 > 4"):
        ops.conv2d(tf.constant(x), tf.constant(kernel), 1, "VALID", 2)
