"""Methods with one call shape: a class built from a model and its settings, called on inputs and a target,
returning a small result dataclass. Here: class attribution (`attribution.Attribution`: Grad-CAM, Grad-CAM++,
Score-CAM, Guided Grad-CAM, saliency, integrated gradients, each with SmoothGrad) and the faithfulness
metrics that measure any attribution map (`metrics`: deletion and insertion)."""
