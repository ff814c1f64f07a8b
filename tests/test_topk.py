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
    activations[2, 1:3, 2:4, 1] = 9.0  # a tie of strongest units: the first in row-major order wins
    flat = activations.reshape(8, 30, 4)
    best, where = flat.max(axis=1), flat.argmax(axis=1)  # [8, 4]
    values, positions = (t.numpy() for t in reduce(activations))
    assert np.array_equal(values, best.T) and np.array_equal(positions, where.T)
    for threshold in (np.full(4, -np.inf), np.sort(best, axis=0)[5], np.sort(best, axis=0)[2],
                      np.sort(best, axis=0)[7], np.full(4, np.inf)):  # fmt: skip
        values, positions = (t.numpy() for t in reduce(activations, threshold.astype(np.float32)))
        assert np.array_equal(values, best.T)
        may_enter = (best >= threshold).T  # [4, 8] (map, image) pairs at or above the map's threshold
        assert np.array_equal(positions[may_enter], where.T[may_enter])
        # The others are not needed: -1, or found anyway when more than a quarter qualify (one pass then).
        others = positions[~may_enter]
        assert (others == -1).all() or (may_enter.mean() > 0.25 and np.array_equal(others, where.T[~may_enter]))
        if 0 < may_enter.mean() <= 0.25:
            assert (others == -1).all()  # the gathering path ran


def test_the_scans_fold_of_batches_in_order_matches_full_sort_with_many_ties():
    import tensorflow as tf

    from vizdeconv.explore.topk import fold_batch

    rng = np.random.default_rng(3)
    # Few distinct values: most entries tie, and which tied image is kept depends on the fold's order.
    layers = {"a": rng.integers(0, 4, (45, 2, 3, 6)).astype(np.float32),
              "b": rng.integers(0, 3, (45, 4, 4, 3)).astype(np.float32)}  # fmt: skip
    for batch in (1, 4, 45):
        held = {}
        for name, x in layers.items():
            top = RunningTopK(x.shape[-1], 5)
            held[name] = (top.values, top.image_ids, top.positions)
        fold = tf.function(lambda held, batch, ids: {name: fold_batch(held[name], batch[name], ids) for name in held})
        for start in range(0, 45, batch):
            ids = np.arange(start, min(start + batch, 45))
            held = fold(held, {name: x[ids] for name, x in layers.items()}, ids)
        for name, x in layers.items():
            expected = full_sort(x, 5)
            for key, value in RunningTopK.from_state(*held[name]).result().items():
                np.testing.assert_array_equal(value, expected[key], err_msg=f"{name} {key}, batch {batch}")
