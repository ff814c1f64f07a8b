"""Keras integration: `vizdeconv.keras.DeconvnetCallback` for `model.fit`."""

from vizdeconv.viz.callback import DeconvnetCallback

__all__ = ["DeconvnetCallback"]
