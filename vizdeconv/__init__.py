"""vizdeconv: deconvnet projections (Zeiler & Fergus 2014) of the reference CIFAR-10 net and any Keras CNN.

    import keras, vizdeconv
    model = keras.models.load_model("my_cnn.keras")        # or vizdeconv.load_model("logs/default")
    deconv = vizdeconv.Deconvnet(model, mode="deconvnet")  # "deconvnet" | "guided" | "bias_subtract"
    deconv.project(images, layer="conv2", channel=5, unit="max")   # -> [N, H, W, C] float32
    vizdeconv.FeatureVisualization(model).optimize("conv2").images  # -> [C, H, W, 3] in [0, 1]
    vizdeconv.Attribution(model, method="gradcam").explain(images).maps  # -> [N, H, W] in [0, 1]
    vizdeconv.metrics.deletion(model, images, maps).auc              # -> [N] faithfulness

Each name is imported plainly, on first use (PEP 562), so `import vizdeconv`, which every command line
starts with, does not import TensorFlow before the command has chosen its CPU kernels.
"""

__version__ = "0.2.0"
__all__ = [
    "__version__",
    "Deconvnet",
    "FeatureVisualization",
    "Attribution",
    "AttributionResult",
    "ReceptiveFields",
    "MODES",
    "load_model",
    "describe",
    "metrics",
    "keras",
]


def __getattr__(name: str):
    match name:
        case "Deconvnet":
            from vizdeconv.methods.deconvnet import Deconvnet as value
        case "FeatureVisualization":
            from vizdeconv.methods.feature_vis import FeatureVisualization as value
        case "Attribution":
            from vizdeconv.methods.attribution import Attribution as value
        case "AttributionResult":
            from vizdeconv.methods.attribution import AttributionResult as value
        case "ReceptiveFields":
            from vizdeconv.methods.receptive_field import ReceptiveFields as value
        case "MODES":
            from vizdeconv.methods.reconstruct import MODES as value
        case "load_model":
            from vizdeconv.runs.subject import load_model as value
        case "describe":
            from vizdeconv.nn.keras_adapter import describe as value
        case "metrics":
            from vizdeconv.methods import metrics as value
        case "keras":  # vizdeconv.keras.DeconvnetCallback
            import vizdeconv.keras as value
        case _:
            raise AttributeError(f"module 'vizdeconv' has no attribute {name!r}")
    return value
