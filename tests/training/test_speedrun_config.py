"""configs/speedrun.py: airbench94's network and numbers, and the ablation script's variants."""

import importlib.util
import math
import os

import numpy as np
import pytest

from configs import speedrun
from tests.support.builders import ROOT
from vizdeconv import config as config_lib
from vizdeconv.bench import conv_flops
from vizdeconv.nn.convnet import build_model


def ablation_script():
    spec = importlib.util.spec_from_file_location("ablate", os.path.join(ROOT, "scripts", "ablate_speedrun.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_is_airbench94s_network_and_budget():
    config = speedrun.get_config()
    config_lib.validate(config)
    model = build_model(config)
    shapes = model.shapes
    assert [shapes[name] for name in ("whiten", "pool1_1", "pool2_1", "pool3_1", "pool3_2", "head")] == [
        (31, 31, 24), (15, 15, 64), (7, 7, 256), (3, 3, 256), (1, 1, 256), (1, 1, 10)]  # fmt: skip
    # written out: 2 x positions x k^2 x in x out per conv (airbench94: ~0.24 GFLOP per image forward)
    by_hand = 2 * (31**2 * 4 * 3 * 24 + 31**2 * 9 * 24 * 64 + 15**2 * 9 * 64 * 64 + 15**2 * 9 * 64 * 256
                   + 7**2 * 9 * 256 * 256 + 7**2 * 9 * 256 * 256 + 3**2 * 9 * 256 * 256 + 256 * 10)  # fmt: skip
    assert conv_flops(model) == by_hand
    # airbench's ceil(9.9 epochs x 48 full batches of 1,024), three passes per image: its 0.36 PFLOPs
    assert config.steps == math.ceil(9.9 * (50000 // 1024))
    assert 3 * by_hand * config.steps * config.batch_size / 1e15 == pytest.approx(0.35, abs=0.01)
    # the rest of airbench94's choices: GELU, the pool before the normalization, the data set's statistics,
    # the whitening bias trained for 3 epochs of 48 batches, the statistics averaged with the weights
    layers = {layer["name"]: layer for layer in config.model.layers}
    assert {layer.get("activation") for name, layer in layers.items() if name != "head"} == {"gelu"}
    assert [name for name, layer in layers.items() if layer.get("pool_first")] == ["conv1_1", "conv2_1", "conv3_1"]
    assert layers["whiten"]["bias_steps"] == 3 * 48 and layers["whiten"]["bias_init"] == 0.0
    assert config.data.normalize == "dataset" and config.optimizer.lookahead_statistics
    # and its pictures: the deconvnet's rule at the GELUs, which are its rectifiers
    assert config.reconstruction.rectify == "all"


def test_airbench95_is_the_recipe_wider_longer_and_at_its_rate():
    from configs import speedrun95

    config, base = speedrun95.get_config(), speedrun.get_config()
    config_lib.validate(config)
    model = build_model(config)
    assert [model.shapes[name] for name in ("conv1_2", "conv2_2", "pool3_2", "head")] == [
        (15, 15, 128), (7, 7, 384), (1, 1, 384), (1, 1, 10)]  # fmt: skip
    by_hand = 2 * (31**2 * 4 * 3 * 24 + 31**2 * 9 * 24 * 128 + 15**2 * 9 * 128 * 128 + 15**2 * 9 * 128 * 384
                   + 7**2 * 9 * 384 * 384 + 7**2 * 9 * 384 * 384 + 3**2 * 9 * 384 * 384 + 384 * 10)  # fmt: skip
    assert conv_flops(model) == by_hand
    # legacy/airbench95.py: 15 epochs of 48 batches, the peak at int(0.23 T), rate 10 per 1,024 examples
    assert (config.steps, config.optimizer.warmup_steps) == (720, 165)
    assert 3 * by_hand * config.steps * config.batch_size / 1e15 == pytest.approx(1.33, abs=0.01)
    assert config.optimizer.learning_rate / base.optimizer.learning_rate == pytest.approx(10 / 11.5)
    # the decoupled decay per step, the rate times the penalty's coefficient, stays airbench's 0.0153 / 1,024
    assert (config.optimizer.learning_rate * config.loss.weight_decay
            == pytest.approx(base.optimizer.learning_rate * base.loss.weight_decay))  # fmt: skip
    rest = {**config.to_dict(), "model": None, "steps": None, "optimizer": None, "loss": None, "name": None}
    assert rest == {**base.to_dict(), "model": None, "steps": None, "optimizer": None, "loss": None, "name": None}


@pytest.mark.parametrize("variant", sorted(ablation_script().VARIANTS))
def test_each_ablation_variant_is_a_valid_config_that_changes_the_recipe(variant):
    script = ablation_script()
    config = script.variant_config(variant, "/data", 49, 3, tta=False)
    config_lib.validate(config)
    full = script.variant_config("full", "/data", 49, 3, tta=False)
    assert config.steps == 49 and config.optimizer.warmup_steps == 11 and config.seed == 3
    assert (config.to_dict() == {**full.to_dict(), "name": config.name}) == (variant == "full")
    build_model(config)


def test_the_initial_scales_are_pytorchs_defaults_as_airbench_keeps_them():
    # PyTorch's Conv2d / Linear draw kaiming_uniform(a=sqrt(5)): uniform on +-1/sqrt(fan_in), so a deviation of
    # 1/sqrt(3 fan_in); airbench then multiplies the head's output by 1/9. The drawn kernels must show it.
    config = speedrun.get_config()
    model = build_model(config)
    checked = []
    for spec, kernel in zip(model.specs[1:], model.kernels[1:]):
        values = kernel.numpy()
        fan_in = values.shape[0] * values.shape[1] * values.shape[2]
        expected = 1 / np.sqrt(3 * fan_in) / (9 if spec.name == "head" else 1)
        # the identity filters aside: the first min(in, out) output channels of a 3x3 kernel (all of a square one)
        drawn = values[..., values.shape[2] :] if spec.kernel == 3 else values
        if drawn.size == 0:
            continue
        checked.append(spec.name)
        assert np.std(drawn) == pytest.approx(expected, rel=0.05), spec.name
    assert checked == ["conv1_1", "conv2_1", "head"]
