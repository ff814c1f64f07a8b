"""vizdeconv: deconvnet projections (Zeiler & Fergus 2014) of the reference CIFAR-10 net and any Keras CNN.

    import keras, vizdeconv
    model = keras.models.load_model("my_cnn.keras")        # or vizdeconv.load_model("logs/default")
    deconv = vizdeconv.Deconvnet(model, mode="deconvnet")  # "deconvnet" | "guided" | "bias_subtract"
    deconv.project(images, layer="conv2", channel=5, unit="max")   # -> [N, H, W, C] float32
    vizdeconv.FeatureVisualization(model).optimize("conv2").images  # -> [C, H, W, 3] in [0, 1]
    vizdeconv.Attribution(model, method="gradcam").explain(images).maps  # -> [N, H, W] in [0, 1]
    vizdeconv.metrics.deletion(model, images, maps).auc              # -> [N] faithfulness

Names are imported on first use, so `import vizdeconv` stays cheap for the command-line entry points.
"""

__version__ = "0.2.0"

_PUBLIC = {
    "Deconvnet": ("vizdeconv.deconv.deconvnet", "Deconvnet"),
    "FeatureVisualization": ("vizdeconv.analyze.optimize", "FeatureVisualization"),
    "load_model": ("vizdeconv.io.subject", "load_model"),
    "describe": ("vizdeconv.nn.keras_adapter", "describe"),
    "ReceptiveFields": ("vizdeconv.deconv.receptive_field", "ReceptiveFields"),
    "MODES": ("vizdeconv.deconv.reconstruct", "MODES"),
    "Attribution": ("vizdeconv.methods.attribution", "Attribution"),
    "AttributionResult": ("vizdeconv.methods.attribution", "AttributionResult"),
    "metrics": ("vizdeconv.methods.metrics", None),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        module, attribute = _PUBLIC[name]
        module = importlib.import_module(module)
        return module if attribute is None else getattr(module, attribute)
    if name == "keras":  # vizdeconv.keras.DeconvnetCallback
        import importlib

        return importlib.import_module("vizdeconv.keras")
    raise AttributeError(f"module 'vizdeconv' has no attribute {name!r}")
