"""The running top-k equals a full sort over the data set, whatever the batching."""

import numpy as np

from vizdeconv.explore.topk import RunningTopK


def full_sort(activations: np.ndarray, k: int) -> dict:
    """Per channel: each image's strongest unit, then the k strongest images (ties: smaller id)."""
    n, h, w, c = activations.shape
    flat = activations.reshape(n, h * w, c)
    best, where = flat.max(axis=1), flat.argmax(axis=1)  # [n, c]
    result = {"values": [], "image_ids": [], "positions": []}
    for channel in range(c):
        order = sorted(range(n), key=lambda i: (-best[i, channel], i))[:k]
        result["values"].append(best[order, channel])
        result["image_ids"].append(order)
        result["positions"].append(where[order, channel])
    return {key: np.array(value) for key, value in result.items()}


def test_running_topk_matches_full_sort_for_any_batching_and_merge():
    rng = np.random.default_rng(0)
    activations = rng.standard_normal((37, 3, 4, 5)).astype(np.float32)
    expected = full_sort(activations, 9)
    for batch in (1, 5, 37):
        top = RunningTopK(5, 9)
        for start in range(0, 37, batch):
            top.update(activations[start : start + batch], np.arange(start, min(start + batch, 37)))
        for key, value in top.result().items():
            np.testing.assert_array_equal(value, expected[key], err_msg=f"{key}, batch {batch}")
    first, second = RunningTopK(5, 9), RunningTopK(5, 9)  # two replicas with interleaved images
    first.update(activations[::2], np.arange(0, 37, 2))
    second.update(activations[1::2], np.arange(1, 37, 2))
    second.merge(first)
    for key, value in second.result().items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_ties_keep_the_earlier_image():
    activations = np.ones((6, 1, 1, 1), np.float32)
    top = RunningTopK(1, 3)
    top.update(activations[3:], np.arange(3, 6))
    top.update(activations[:3], np.arange(3))
    assert top.result()["image_ids"].tolist() == [[0, 1, 2]]


def test_reduce_finds_positions_only_where_a_map_may_enter_the_top_k():
    from vizdeconv.explore.topk import reduce

    rng = np.random.default_rng(1)
    activations = rng.standard_normal((8, 5, 6, 4)).astype(np.float32)
    flat = activations.reshape(8, 30, 4)
    best, where = flat.max(axis=1), flat.argmax(axis=1)  # [8, 4]
    values, positions = (t.numpy() for t in reduce(activations))
    assert np.array_equal(values, best.T) and np.array_equal(positions, where.T)
    for threshold in (np.full(4, -np.inf), np.sort(best, axis=0)[5], np.sort(best, axis=0)[2], np.full(4, np.inf)):
        values, positions = (t.numpy() for t in reduce(activations, threshold.astype(np.float32)))
        assert np.array_equal(values, best.T)
        rows = (best >= threshold).any(axis=1)  # images with some map at or above its threshold
        assert np.array_equal(positions[:, rows], where[rows].T)
        # The others are not needed: -1, or found anyway when most images qualify (no gather then).
        others = positions[:, ~rows]
        assert ((others == -1) | (others == where[~rows].T)).all()
        assert (others == -1).all() or rows.sum() * 2 > len(rows)
