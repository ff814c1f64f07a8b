"""Learning-rate schedules against their formulas, every config check, and evaluation batches split
over several replicas with an uneven last batch."""

import math

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from tests.conftest import make_records
from vizdeconv import config as config_lib
from vizdeconv.data import pipeline
from vizdeconv.nn import preprocess
from vizdeconv.training import optim


def optimizer_config(**fields):
    config = default.get_config().optimizer
    config.update(fields)
    return config


def rate_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_constant_cosine_warmup_and_step_schedules_follow_their_formulas():
    assert rate_at(optim.learning_rate(optimizer_config(), 100), 57) == pytest.approx(1e-4)
    cosine = optim.learning_rate(optimizer_config(schedule="cosine", learning_rate=0.1), 100)
    for step in (0, 25, 50, 100):
        assert rate_at(cosine, step) == pytest.approx(0.05 * (1 + math.cos(math.pi * step / 100)), abs=1e-7)
    warm = optim.learning_rate(optimizer_config(schedule="cosine", learning_rate=0.1, warmup_steps=10), 110)
    assert rate_at(warm, 0) == pytest.approx(0.0) and rate_at(warm, 5) == pytest.approx(0.05)
    assert rate_at(warm, 10) == pytest.approx(0.1)
    assert rate_at(warm, 60) == pytest.approx(0.05 * (1 + math.cos(math.pi * 50 / 100)), abs=1e-7)
    stepped = optim.learning_rate(
        optimizer_config(schedule="step", learning_rate=1.0, decay_every=30, decay_factor=0.5), 100
    )
    for step, expected in ((0, 1.0), (30, 1.0), (31, 0.5), (60, 0.5), (61, 0.25), (99, 0.125)):
        assert rate_at(stepped, step) == pytest.approx(expected), step
    momentum = optim.make_optimizer(optimizer_config(name="momentum"), 10)
    assert momentum.momentum == pytest.approx(0.9)


def test_muon_and_lookahead_come_from_the_config_with_its_schedule():
    from vizdeconv.training.optimizers import Lookahead, Muon

    config = optimizer_config(name="muon", learning_rate=0.2, schedule="cosine", lookahead_every=5,
                              lookahead_alpha=0.8)  # fmt: skip
    optimizer = optim.make_optimizer(config, 100)
    assert isinstance(optimizer, Lookahead) and isinstance(optimizer.inner, Muon)
    assert (optimizer.sync_every, optimizer.alpha) == (5, 0.8)
    assert optim.current_learning_rate(optimizer) == pytest.approx(0.2)  # the inner optimizer's, at step 0
    assert not isinstance(optim.make_optimizer(optimizer_config(name="muon"), 10), Lookahead)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "steps must be a positive integer"),
        ("batch_size", -8, "batch_size must be a positive integer"),
        ("keep_checkpoints", -1, "keep_checkpoints must be a positive integer"),
        ("precision", "float16", "precision"),
        ("strategy", "cluster", "strategy must be one of"),
        ("loss.reduction", "max", "loss.reduction must be one of"),
        ("optimizer.name", "lion", "optimizer.name must be one of"),
        ("optimizer.schedule", "linear", "optimizer.schedule must be one of"),
        ("optimizer.learning_rate", 0.0, "learning_rate must be positive"),
        ("loss.label_smoothing", 1.0, "loss.label_smoothing must be in"),
        ("data.flip", "sometimes", "data.flip must be one of"),
        ("optimizer.lookahead_every", -1, "optimizer.lookahead_every must be 0"),
        ("optimizer.lookahead_alpha", 0.0, "optimizer.lookahead_alpha must be in"),
        ("reconstruction.mode", "zeiler", "mode must be one of"),
        ("reconstruction.clip_percentile", 50.0, "clip_percentile must be in"),
        ("data.image_size", 40, "image_size must be between 8 and 32"),
        ("model.layers", [dict(name="conv1", kernel=3, filters=7)], "last layer must have 10 filters"),
        ("model.layers", [dict(name="conv1", kernel=3, filters=10, colour=1)], "unknown field"),
        ("model.layers", [dict(name="conv1", filters=10)], "incomplete"),
    ],
)
def test_every_config_check_names_the_field(field, value, message):
    config = default.get_config()
    target = config
    *parents, leaf = field.split(".")
    for parent in parents:
        target = target[parent]
    target[leaf] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config)


@pytest.mark.parametrize("name", ["default", "fast", "smoke", "atrous", "tuned", "deep"])
def test_every_shipped_config_validates_and_builds(name):
    import importlib

    from vizdeconv.nn.convnet import build_model

    config = importlib.import_module(f"configs.{name}").get_config()
    config_lib.validate(config)
    model = build_model(config)
    assert model(np.zeros([1, 24, 24, 3], np.float32)).shape == (1, 10)
    for spec, kernel in zip(model.specs, model.kernels):  # truncated normal: std ~0.88 of init_stddev
        if kernel.shape.num_elements() > 1000:
            assert 0.8 * spec.init_stddev < float(np.std(kernel.numpy())) < 0.95 * spec.init_stddev


@pytest.mark.parametrize("replicas", [2, 3])
def test_eval_batches_split_over_replicas_cover_an_uneven_split_once_in_order(replicas):
    images, labels = make_records(23, 4)[:2]
    ids = np.arange(23)
    slices = []
    for replica in range(replicas):  # one input pipeline per replica, as on several workers
        context = tf.distribute.InputContext(
            num_input_pipelines=replicas, input_pipeline_id=replica, num_replicas_in_sync=replicas
        )
        slices.append([(x.numpy(), y.numpy()) for x, y in pipeline.eval_dataset(images, ids, 10, 24, context)])
    assert all(len(part) == 3 for part in slices)  # every replica sees every batch, maybe empty
    seen = np.concatenate([slices[r][b][1] for b in range(3) for r in range(replicas)])
    np.testing.assert_array_equal(seen, ids)  # in order, each image once, the last batch of 3 too
    whole = preprocess.preprocess_eval(images).numpy()
    for r in range(replicas):
        for x, y in slices[r]:
            np.testing.assert_allclose(x, whole[y], rtol=1e-6, atol=1e-6)
