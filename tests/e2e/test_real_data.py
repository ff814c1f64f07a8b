"""A brief training run on the real CIFAR-10 tarball in ../shared (skipped where it is absent)."""

import pytest

from configs import default
from tests.conftest import real_cifar_or_skip
from vizdeconv.training.loop import train_and_evaluate

pytestmark = pytest.mark.slow  # trains on the real CIFAR-10


def test_brief_training_on_real_images_learns(tmp_path):
    config = default.get_config()
    config.data.data_dir = real_cifar_or_skip()
    config.name, config.steps = "real", 300
    config.log_every = config.eval_every = config.checkpoint_every = config.summary_every = 100
    config.reconstruction.probes = 2
    lines = []
    metrics = train_and_evaluate(config, str(tmp_path / "real"), log=lines.append)
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if line.startswith("step ")]
    assert len(losses) == 3 and losses[-1] < 0.9 * losses[0], lines
    assert metrics["test_examples"] == 10000
    assert metrics["test_accuracy"] > 0.25, metrics  # chance is 0.10
