"""Optimizer and learning-rate schedule from `config.optimizer` (reference: Adam, constant 1e-4)."""

import keras

from vizdeconv.config import OPTIMIZERS, SCHEDULES


def learning_rate(config, total_steps: int):
    """A float or a keras LearningRateSchedule of the optimizer step."""
    rate = float(config.learning_rate)
    if config.schedule == "constant":
        schedule = rate
    elif config.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if config.warmup_steps else rate,
            max(total_steps - config.warmup_steps, 1),
            warmup_target=rate if config.warmup_steps else None,
            warmup_steps=config.warmup_steps,
        )
    elif config.schedule == "step":
        boundaries = list(range(config.decay_every, max(total_steps, config.decay_every + 1), config.decay_every))
        values = [rate * config.decay_factor**i for i in range(len(boundaries) + 1)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    else:
        raise ValueError(f"optimizer.schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    return schedule


def make_optimizer(config, total_steps: int) -> keras.optimizers.Optimizer:
    rate = learning_rate(config, total_steps)
    if config.name == "adam":
        return keras.optimizers.Adam(rate)
    if config.name == "sgd":
        return keras.optimizers.SGD(rate)
    if config.name == "momentum":
        return keras.optimizers.SGD(rate, momentum=0.9)
    raise ValueError(f"optimizer.name must be one of {OPTIMIZERS}, got {config.name!r}")


def current_learning_rate(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)
