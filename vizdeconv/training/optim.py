"""Optimizer and learning-rate schedule from `config.optimizer` (reference: Adam, constant 1e-4)."""

import keras
from keras import ops

from vizdeconv.config import OPTIMIZERS, SCHEDULES


class Triangle(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's schedule: the rate rises linearly from `start` x rate at step 0 to the rate at step `peak`,
    then falls linearly to `end` x rate at step `total` (and stays there).

    Args:
      rate: the peak rate; peak: its step; total: the last step; start, end: fractions of the rate.
    """

    def __init__(self, rate: float, peak: int, total: int, start: float = 0.2, end: float = 0.07):
        self.rate, self.peak, self.total, self.start, self.end = float(rate), int(peak), int(total), start, end

    def __call__(self, step):
        """The rate at `step` (a scalar tensor)."""
        step = ops.cast(step, "float32")
        rising = self.start + (1.0 - self.start) * step / max(self.peak, 1)
        falling = 1.0 + (self.end - 1.0) * ops.minimum(step - self.peak, self.total - self.peak) / max(
            self.total - self.peak, 1
        )
        return self.rate * ops.where(step < self.peak, rising, falling)

    def get_config(self):
        """The schedule's settings, as Keras saves them."""
        return dict(rate=self.rate, peak=self.peak, total=self.total, start=self.start, end=self.end)


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
    elif config.schedule == "triangle":
        schedule = Triangle(rate, config.warmup_steps, total_steps, end=config.decay_factor)
    else:
        raise ValueError(f"optimizer.schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    return schedule


def make_optimizer(config, total_steps: int, statistics=()) -> keras.optimizers.Optimizer:
    """The optimizer `config.name` at the scheduled rate, inside Lookahead where `config.lookahead_every`;
    with `config.lookahead_statistics` Lookahead also averages `statistics` (the moving statistics of the
    model's batch normalizations, airbench's choice)."""
    from vizdeconv.training.optimizers import Lookahead, Muon

    rate = learning_rate(config, total_steps)
    if config.name == "adam":
        optimizer = keras.optimizers.Adam(rate)
    elif config.name == "sgd":
        optimizer = keras.optimizers.SGD(rate)
    elif config.name == "momentum":
        optimizer = keras.optimizers.SGD(rate, momentum=config.momentum, nesterov=config.nesterov)
    elif config.name == "muon":
        optimizer = Muon(rate, momentum=config.momentum)  # Nesterov, as Muon always is
    else:
        raise ValueError(f"optimizer.name must be one of {OPTIMIZERS}, got {config.name!r}")
    if config.get("lookahead_every", 0):
        optimizer = Lookahead(
            optimizer,
            config.lookahead_every,
            config.get("lookahead_alpha", 0.5),
            config.get("lookahead_power", 0.0),
            total_steps,
            statistics=statistics if config.get("lookahead_statistics", False) else (),
        )
    return optimizer


def current_learning_rate(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)
