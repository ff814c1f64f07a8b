"""Checks a config and resolves the fields that depend on the machine, before anything runs."""
import os

from vizdeconv.training import distribute
from vizdeconv.training import losses
from vizdeconv.training import optim
from vizdeconv.training import precision
from vizdeconv.deconv import engine
from vizdeconv.nn.convnet import layer_specs


def _positive(config, *names):
    for name in names:
        value = config[name]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def validate(config) -> None:
    """Raises ValueError naming the first bad field and what it accepts."""
    _positive(config, "steps", "batch_size", "eval_batch_size", "log_every", "eval_every",
              "checkpoint_every", "summary_every", "keep_checkpoints")
    precision.resolve(config.precision)
    if any(not isinstance(s, int) or s < 1 for s in config.keep_steps):
        raise ValueError(f"keep_steps must be positive step numbers, got {list(config.keep_steps)}")
    if config.strategy not in distribute.STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(distribute.STRATEGIES)}, "
                         f"got {config.strategy!r}")
    if config.loss.reduction not in losses.REDUCTIONS:
        raise ValueError(f"loss.reduction must be one of {losses.REDUCTIONS}")
    if config.optimizer.name not in optim.OPTIMIZERS:
        raise ValueError(f"optimizer.name must be one of {optim.OPTIMIZERS}")
    if config.optimizer.schedule not in optim.SCHEDULES:
        raise ValueError(f"optimizer.schedule must be one of {optim.SCHEDULES}")
    if not config.optimizer.learning_rate > 0:
        raise ValueError("optimizer.learning_rate must be positive")
    engine.check_mode(config.reconstruction.mode)
    if not 0 <= config.reconstruction.clip_percentile < 50:
        raise ValueError("reconstruction.clip_percentile must be in [0, 50)")
    if not 8 <= config.data.image_size <= 32:
        raise ValueError(f"data.image_size must be between 8 and 32, got {config.data.image_size}")
    specs = layer_specs(config.model.layers)
    if specs[-1].filters != 10:
        raise ValueError(f"the last layer must have 10 filters (CIFAR-10 classes), got "
                         f"{specs[-1].filters}")


def resolve(config):
    """A validated copy with the precision chosen for this machine and an absolute data path."""
    validate(config)
    config = config.copy_and_resolve_references()
    config.precision = precision.resolve(config.precision)
    if config.data.data_dir:
        config.data.data_dir = os.path.abspath(os.path.expanduser(config.data.data_dir))
    return config
