"""Display scaling, stitching and grids against hand-computed values."""

import numpy as np

from vizdeconv.viz import pictures


def test_signed_panels_centre_zero_on_mid_grey_and_positive_panels_span_0_to_1():
    signed = np.array([[-2.0, 0.0], [1.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(pictures.to_display(signed)[0, :, :, 0], [[0, 0.5], [0.75, 1]])
    positive = np.array([[1.0, 3.0], [2.0, 5.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(pictures.to_display(positive)[0, :, :, 0], [[0, 0.5], [0.25, 1]])
    flat = pictures.to_display(np.zeros((1, 2, 2, 1)))
    assert np.all(flat == 0)


def test_percentile_clipping_stops_one_outlier_from_washing_out_the_panel():
    panel = np.linspace(0, 1, 100).reshape(1, 10, 10, 1)
    panel[0, 0, 0, 0] = 1000.0
    plain = pictures.to_display(panel)
    clipped = pictures.to_display(panel, clip_percentile=2.0)
    assert np.median(plain) < 0.01 and 0.4 < np.median(clipped) < 0.6


def test_stitch_and_grid_place_panels_with_white_gaps():
    a, b = np.zeros((2, 3, 4, 3)), np.full((2, 3, 4, 3), 0.5)
    strip = pictures.stitch([a, b])
    gap = pictures.GAP
    assert strip.shape == (2, 3, 8 + gap, 3)
    assert np.all(strip[:, :, 4 : 4 + gap] == 1) and np.all(strip[:, :, 4 + gap :] == 0.5)
    tiles = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 2, 2, 1))
    canvas = pictures.grid(tiles, columns=3)
    assert canvas.shape == (2 * 2 + gap, 3 * 2 + 2 * gap, 1)
    assert canvas[2 + gap, 2 + gap, 0] == 4 and canvas[0, 2 + gap, 0] == 1
    assert np.all(canvas[2 + gap :, 2 * (2 + gap) :] == 1)  # the unused sixth cell stays white
    assert pictures.upscale(tiles, 3).shape == (5, 6, 6, 1)
