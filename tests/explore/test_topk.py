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
        may_enter = (best > threshold).T  # [4, 8] (map, image) pairs above the map's threshold (a tie stays out)
        assert np.array_equal(positions[may_enter], where.T[may_enter])
        # The others are not needed: -1, or found anyway when more than a quarter qualify (one pass then).
        others = positions[~may_enter]
        assert (others == -1).all() or (may_enter.mean() > 0.25 and np.array_equal(others, where.T[~may_enter]))
        if 0 < may_enter.mean() <= 0.25:
            assert (others == -1).all()  # the gathering path ran


def test_the_scans_fold_of_batches_in_order_matches_full_sort_with_many_ties():
    import tensorflow as tf

    from vizdeconv.explore.topk import fold_layers

    rng = np.random.default_rng(3)
    # Few distinct values: most entries tie, and which tied image is kept depends on the fold's order.
    layers = {"a": rng.integers(0, 4, (45, 2, 3, 6)).astype(np.float32),
              "b": rng.integers(0, 3, (45, 4, 4, 3)).astype(np.float32)}  # fmt: skip
    for batch in (1, 4, 45):
        held = {}
        for name, x in layers.items():
            top = RunningTopK(x.shape[-1], 5)
            held[name] = (top.values, top.image_ids, top.positions)
        fold = tf.function(lambda held, batch, ids: fold_layers(held, batch, ids))  # both layers in one fold
        for start in range(0, 45, batch):
            ids = np.arange(start, min(start + batch, 45))
            held = fold(held, {name: x[ids] for name, x in layers.items()}, ids)
        for name, x in layers.items():
            expected = full_sort(x, 5)
            for key, value in RunningTopK.from_state(*held[name]).result().items():
                np.testing.assert_array_equal(value, expected[key], err_msg=f"{name} {key}, batch {batch}")


def order_keeping_model():
    """Every op kind with a `maximum` rule, each reading a scanned map: batch normalizations with negative
    scales, silu and gelu with maps below 0, a clipped ReLU, gates >= 0 and gates of both signs."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(5)
    inputs = keras.Input((10, 10, 3))
    x = L.Rescaling(1 / 127.5, offset=-1, name="scaled")(inputs)
    x = L.Conv2D(32, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="b1")(x)
    x = L.Activation("silu", name="a1")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="d1")(x)
    x = L.BatchNormalization(name="b2")(x)
    r2 = L.ReLU(max_value=6.0, name="r2")(x)
    pooled = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(r2)
    gate = L.Conv2D(32, 1, activation="sigmoid", name="gate")(pooled)
    signed = L.Conv2D(32, 1, activation="tanh", name="signed_gate")(pooled)
    x = L.Multiply(name="excited")([r2, gate])
    x = L.Multiply(name="signed")([signed, x])
    x = L.Conv2D(32, 3, name="c3")(x)
    x = L.Activation("gelu", name="a3")(x)
    x = L.Activation("sigmoid", name="a4")(x)
    x = L.Dropout(0.5, name="drop")(x)
    model = keras.Model(inputs, L.Dense(4, name="logits")(L.GlobalAveragePooling2D(name="gap")(x)))
    rng = np.random.default_rng(0)
    for name in ("b1", "b2"):  # scales of both signs (and 0); offsets that push some maps below 0 everywhere
        gamma, beta = rng.uniform(0.3, 2, 32), rng.normal(0, 0.3, 32)
        gamma[[0, 9]], gamma[17], beta[[1, 20]] = -1.5, 0.0, -4.0
        model.get_layer(name).set_weights([gamma.astype(np.float32), beta.astype(np.float32),
                                           rng.normal(0, 0.3, 32).astype(np.float32),
                                           rng.uniform(0.5, 2, 32).astype(np.float32)])  # fmt: skip
    kernel, bias = model.get_layer("signed_gate").get_weights()
    model.get_layer("signed_gate").set_weights([kernel, np.where(np.arange(32) == 3, -3.0, 2.0).astype(np.float32)])
    return model


def test_bounds_of_maxima_equal_them_where_the_order_is_kept_and_bound_them_elsewhere():
    import tensorflow as tf

    from vizdeconv.explore.topk import maxima
    from vizdeconv.nn import keras_adapter

    graph = keras_adapter.describe(order_keeping_model())
    names = [graph.resolve(name) for name in graph.feature_layers] + ["drop"]  # (dropout: asked for by name)
    images = tf.random.stateless_uniform([6, 10, 10, 3], (1, 2), 0, 255)
    tensors = graph.forward(images, record_switches=False)
    bounds = {name: bound.numpy()[:, 0, 0] for name, bound in maxima(graph, tensors, names).items()}
    true = {name: tensors[name].numpy().max(axis=(1, 2)) for name in names}
    for name in names:
        assert (bounds[name] >= true[name] - 1e-6 * np.abs(true[name])).all(), name
    # Where each bound is the maximum itself: the op keeps the order and its input's bound is exact.
    scale = {name: graph.by_name[name].value("scale").numpy() >= 0 for name in ("b1", "b2")}
    exact = {"b1": np.broadcast_to(scale["b1"], true["b1"].shape), "b2": np.broadcast_to(scale["b2"], true["b2"].shape)}
    exact["a1"] = exact["b1"] & (bounds["b1"] >= 0)  # silu keeps the order from 0 on
    exact["r2"] = exact["excited"] = exact["b2"]  # a clipped ReLU; gates of a sigmoid
    exact["signed"] = exact["excited"] & (tensors["signed_gate"].numpy()[:, 0, 0] >= 0)
    exact["a3"] = true["c3"] >= 0  # gelu
    exact["a4"] = exact["drop"] = exact["a3"]
    for name, where in exact.items():
        np.testing.assert_allclose(bounds[name][where], true[name][where], rtol=1e-6, err_msg=name)
    assert np.isinf(bounds["b1"][~exact["b1"]]).all() and (~exact["b1"]).any()  # a negative scale: no bound
    below = exact["b1"] & ~exact["a1"]  # silu of a map below 0: bounded by 0
    assert below.any() and (bounds["a1"][below] == 0).all() and (true["a1"][below] < 0).all()
    assert np.isinf(bounds["signed"][exact["excited"] & ~exact["signed"]]).all() and (~exact["signed"]).any()


def test_a_scan_of_every_layer_through_bounds_matches_full_sort_of_the_forward_tensors():
    import tensorflow as tf

    from vizdeconv.data.sources import ArraySource
    from vizdeconv.explore.scanning import scan_source
    from vizdeconv.nn import keras_adapter

    graph = keras_adapter.describe(order_keeping_model())
    # Batches of 40, k = 2: late in the scan few maps may enter (under a quarter, with the few maps of
    # each layer whose bound is not their maximum), and those are read by gathering them.
    images = np.random.default_rng(1).integers(0, 256, (400, 10, 10, 3), dtype=np.uint8)
    layers = graph.feature_layers
    assert {"b1", "a1", "r2", "excited", "signed", "a3", "a4"} <= set(layers)
    state = scan_source(graph, ArraySource(images, np.zeros(400), "random"), layers, k=2, batch_size=40,
                        progress=False, log=lambda *_: None)  # fmt: skip
    forward = tf.function(lambda x: graph.forward(x, record_switches=False))
    batches = [forward(tf.cast(images[i : i + 40], tf.float32)) for i in range(0, 400, 40)]
    for layer in layers:
        name = graph.resolve(layer)
        expected = full_sort(np.concatenate([t[name].numpy() for t in batches]), 2)
        result = state.tops[layer]
        np.testing.assert_array_equal(result["image_ids"], expected["image_ids"], err_msg=layer)
        np.testing.assert_array_equal(result["positions"], expected["positions"], err_msg=layer)
        np.testing.assert_allclose(result["values"], expected["values"], rtol=1e-6, err_msg=layer)


def test_a_scan_traces_the_network_once_whatever_the_size_of_its_last_batch():
    from vizdeconv.data.sources import ArraySource
    from vizdeconv.explore.scanning import scan_source
    from vizdeconv.nn import keras_adapter

    graph = keras_adapter.describe(order_keeping_model())
    traces, forward = [], graph.forward
    graph.forward = lambda *args, **kwargs: traces.append(1) or forward(*args, **kwargs)  # runs only when traced
    images = np.random.default_rng(2).integers(0, 256, (20, 10, 10, 3), dtype=np.uint8)
    scan_source(graph, ArraySource(images, np.zeros(20), "random"), ["c1", "a3"], k=2, batch_size=8,
                progress=False, log=lambda *_: None)  # fmt: skip
    assert len(traces) == 1  # batches of 8, 8 and 4


def test_scan_after_scan_gives_no_retracing_warning(caplog):
    # A notebook scans one layer after another (`vizdeconv.scan` per layer): each scan compiles its own step,
    # which TensorFlow must not count as one function retracing.
    from vizdeconv.data.sources import ArraySource
    from vizdeconv.explore.scanning import scan_source
    from vizdeconv.nn import keras_adapter

    graph = keras_adapter.describe(order_keeping_model())
    images = np.random.default_rng(3).integers(0, 256, (8, 10, 10, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for layer in ["c1", "a3"] * 3:
            scan_source(graph, ArraySource(images, np.zeros(8), "random"), [layer], k=2, batch_size=8,
                        progress=False, log=lambda *_: None)  # fmt: skip
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
