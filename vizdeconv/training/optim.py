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
    """The optimizer `config.name` at the scheduled rate, inside Lookahead where `config.lookahead_every`."""
    from vizdeconv.training.optimizers import Lookahead, Muon

    rate = learning_rate(config, total_steps)
    if config.name == "adam":
        optimizer = keras.optimizers.Adam(rate)
    elif config.name == "sgd":
        optimizer = keras.optimizers.SGD(rate)
    elif config.name == "momentum":
        optimizer = keras.optimizers.SGD(rate, momentum=0.9)
    elif config.name == "muon":
        optimizer = Muon(rate, momentum=0.9)
    else:
        raise ValueError(f"optimizer.name must be one of {OPTIMIZERS}, got {config.name!r}")
    if config.get("lookahead_every", 0):
        optimizer = Lookahead(optimizer, config.lookahead_every, config.get("lookahead_alpha", 0.5))
    return optimizer


def current_learning_rate(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)
