"""How alike two sets of projections are: the measures of sanity checks (Adebayo et al. 2018).

Pure NumPy / TensorFlow functions over batches of pictures, one similarity per pair.
"""

import numpy as np
import tensorflow as tf


def _rows(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two batches differ in shape: {a.shape} and {b.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def pearson(a, b) -> np.ndarray:
    """Pearson correlation of each pair: a, b [N, ...] -> [N]; NaN where a picture is constant."""
    a, b = _rows(a, b)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (a * b).sum(1) / norms, np.nan)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of each row, ties sharing their mean rank."""
    ranks = np.empty_like(values)
    for i, row in enumerate(values):
        order = np.argsort(row, kind="stable")
        sorted_row = row[order]
        rank = np.arange(len(row), dtype=np.float64)
        starts = np.flatnonzero(np.r_[True, sorted_row[1:] != sorted_row[:-1]])
        ends = np.r_[starts[1:], len(row)]
        for start, end in zip(starts, ends):
            rank[start:end] = (start + end - 1) / 2
        ranks[i, order] = rank
    return ranks


def spearman(a, b, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation of each pair (of absolute values by default, as Adebayo et al.
    compare saliency maps): a, b [N, ...] -> [N]."""
    a, b = _rows(a, b)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    return pearson(_ranks(a), _ranks(b))


def ssim(a, b, filter_size: int = 7) -> np.ndarray:
    """Structural similarity of each pair of pictures in [0, 1]: a, b [N, H, W, C] -> [N]
    (Gaussian window of `filter_size`, TensorFlow's `tf.image.ssim`)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"the two batches differ in shape: {a.shape} and {b.shape}")
    size = min(filter_size, a.shape[1], a.shape[2])
    return tf.image.ssim(a, b, max_val=1.0, filter_size=size).numpy()
