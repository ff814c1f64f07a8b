"""Similarity measures of the sanity checks against known values and independent formulas."""

import numpy as np
import pytest

from vizdeconv.methods import similarity


def test_pearson_equals_numpy_corrcoef_row_by_row():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4, 4, 3)), rng.normal(size=(5, 4, 4, 3))
    b[1] = 2 * a[1] + 1  # an exact positive relation
    expected = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(similarity.pearson(a, b), expected, rtol=1e-12)
    assert similarity.pearson(a, b)[1] == pytest.approx(1.0)
    assert np.isnan(similarity.pearson(np.ones((1, 3)), np.arange(3.0)[None]))[0]


def test_spearman_known_values_ties_and_the_textbook_formula():
    assert similarity.spearman([[1, 2, 3, 4]], [[10, 20, 30, 40]])[0] == pytest.approx(1.0)
    assert similarity.spearman([[1, 2, 3, 4]], [[4, 3, 2, 1]])[0] == pytest.approx(-1.0)
    # Ties share their mean rank: ranks (0, 1.5, 1.5, 3) against (0, 2, 1, 3) give 4.5 / sqrt(22.5).
    assert similarity.spearman([[1, 2, 2, 3]], [[1, 3, 2, 4]])[0] == pytest.approx(4.5 / np.sqrt(22.5))
    # Absolute values by default (as saliency comparisons use): the signs do not matter.
    assert similarity.spearman([[-3, 1, 2]], [[3, 1, 2]])[0] == pytest.approx(1.0)
    assert similarity.spearman([[-3, 1, 2]], [[3, 1, 2]], absolute=False)[0] == pytest.approx(-0.5)
    rng = np.random.default_rng(1)
    a, b = rng.permutation(50)[None].astype(float), rng.permutation(50)[None].astype(float)
    d = a - b  # distinct values: 1 - 6 sum(d^2) / (n (n^2 - 1))
    assert similarity.spearman(a, b)[0] == pytest.approx(1 - 6 * (d**2).sum() / (50 * (50**2 - 1)))


def numpy_ssim(a, b, size=7, sigma=1.5, c1=1e-4, c2=9e-4) -> float:
    """SSIM of one [H, W, C] pair in float64 (Wang et al. 2004, Gaussian window, valid positions),
    averaged over positions and channels."""
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def local_mean(x):
        rows, cols = x.shape[0] - size + 1, x.shape[1] - size + 1
        return np.array([[(x[i : i + size, j : j + size] * window).sum() for j in range(cols)] for i in range(rows)])

    values = []
    for c in range(a.shape[-1]):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        mx, my = local_mean(x), local_mean(y)
        vx, vy, cov = local_mean(x * x) - mx**2, local_mean(y * y) - my**2, local_mean(x * y) - mx * my
        values.append((2 * mx * my + c1) / (mx**2 + my**2 + c1) * (2 * cov + c2) / (vx + vy + c2))
    return float(np.mean(values))


def test_ssim_against_a_float64_numpy_ssim():
    rng = np.random.default_rng(3)
    a = rng.random((3, 16, 16, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    np.testing.assert_allclose(similarity.ssim(a, b), [numpy_ssim(x, y) for x, y in zip(a, b)], rtol=1e-4)


def test_ssim_of_identical_and_of_constant_pictures():
    rng = np.random.default_rng(2)
    pictures = rng.random((3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(similarity.ssim(pictures, pictures), 1.0, rtol=1e-5)
    a, b = np.full((1, 12, 12, 1), 0.2, np.float32), np.full((1, 12, 12, 1), 0.6, np.float32)
    c1 = (0.01 * 1.0) ** 2  # constant pictures: the contrast term is 1, the luminance term remains
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert similarity.ssim(a, b)[0] == pytest.approx(expected, rel=1e-3)  # float32 cancellation
    assert similarity.ssim(pictures, rng.random((3, 16, 16, 3)).astype(np.float32)).max() < 0.2


def test_batches_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        similarity.pearson(np.zeros((2, 3)), np.zeros((2, 4)))
