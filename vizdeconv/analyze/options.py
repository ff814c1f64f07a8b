"""One options class per analysis: the flags of `vizdeconv analyze NAME`, derived from the fields (their defaults
are the only ones; `run`, `model`, `weights`, `data_dir`, `tfds_data_dir` and `preprocess` come from
`SubjectOptions`, `split` and `out` from `AnalysisOptions`)."""

import dataclasses

from vizdeconv.config import RECTIFY_HELP, SPLITS
from vizdeconv.methods import attribution, feature_vis
from vizdeconv.methods.reconstruct import MODES, RECTIFY
from vizdeconv.options import option
from vizdeconv.runs.subject import SubjectOptions

IDS_HELP = "image ids of the split, e.g. 0,5,17, or first:N"


@dataclasses.dataclass(kw_only=True)
class AnalysisOptions(SubjectOptions):
    """What every analysis shares: the split its images come from and the output folder."""

    split: str = option("test", "the split the images come from", choices=SPLITS)
    out: str | None = option(None, "output folder (default: <run>/analyze/<analysis>)")


@dataclasses.dataclass(kw_only=True)
class OcclusionOptions(AnalysisOptions):
    """Occlusion sensitivity (Fig. 7): a grey square slid over each image."""

    images: str = option("first:3", IDS_HELP)
    layer: str | None = option(None, "the layer (default: the top feature layer)")
    patch: int = option(4, "side of the grey square")
    stride: int = option(1, "step of the grey square")
    mode: str | None = option(None, "projection rule of the strongest map's projection (default: the run's, or "
                              "deconvnet)", choices=MODES)  # fmt: skip
    rectify: str | None = option(None, RECTIFY_HELP, choices=RECTIFY)


@dataclasses.dataclass(kw_only=True)
class EvolutionOptions(AnalysisOptions):
    """Feature evolution (Fig. 4): each layer's strongest projections at every kept checkpoint."""

    layers: list[str] | None = option(help="the layer (default: the top feature layer); repeat for several",
                                      flag="--layer", repeat=True)  # fmt: skip
    limit: int = option(0, "scan only the first N images")
    snapshots: str | None = option(None, "evolution of a .keras model: the folder of its snapshots")
    mode: str | None = option(None, "projection rule (default: the run's, or deconvnet)", choices=MODES)
    rectify: str | None = option(None, RECTIFY_HELP, choices=RECTIFY)


@dataclasses.dataclass(kw_only=True)
class InvarianceOptions(AnalysisOptions):
    """Invariance (Fig. 5): feature vectors under translation, scaling and rotation."""

    images: str = option("first:5", IDS_HELP)
    layers: list[str] | None = option(help="the layers (default: the rectified ones); repeat for several",
                                      flag="--layer", repeat=True)  # fmt: skip


@dataclasses.dataclass(kw_only=True)
class SanityOptions(AnalysisOptions):
    """The cascading randomization sanity check (Adebayo et al. 2018)."""

    images: str = option("first:6", IDS_HELP)
    layers: list[str] | None = option(help="the layer (default: the top feature layer); repeat for several",
                                      flag="--layer", repeat=True)  # fmt: skip
    mode: str | None = option(None, "projection rule (default: the run's, or deconvnet)", choices=MODES)
    rectify: str | None = option(None, RECTIFY_HELP, choices=RECTIFY)


@dataclasses.dataclass(kw_only=True)
class OptimizeOptions(AnalysisOptions):
    """Feature visualization: an image optimized to excite each channel of a layer."""

    layer: str | None = option(None, "the layer (default: the top feature layer)")
    channels: str | None = option(None, "channel ids like 0,5,17 (default: all)")
    method: str = option("fourier", "fourier (Olah et al. 2017) or pixel (Yosinski et al. 2015) parametrization",
                         choices=feature_vis.METHODS)  # fmt: skip
    steps: int | None = option(None, f"optimization steps (default: {feature_vis.DEFAULT_STEPS})")
    unit: str | None = option(None, "the centre unit, not the mean", choices=("center",))
    seed: int = option(0, "the images' randomness")


@dataclasses.dataclass(kw_only=True)
class AttributeOptions(AnalysisOptions):
    """Class attribution by every method, with deletion and insertion faithfulness.

    Attributes:
      images: ids of the split ("0,5,17" or "first:N") or image files (broken ones are skipped and listed);
        None: the split's first `limit` (default 4).
      methods: attribution methods (None: all of `attribution.METHODS`).
      target: None or "top" (each image's top class), a class index, or a class name.
      layer: the CAM layer (None: the last spatial one); smooth: SmoothGrad samples (gradient methods);
      steps: integrated gradients' steps; max_maps: Score-CAM's strongest maps (None: all).
      labels: a file with one class name a line.
      rectify: where Guided Grad-CAM guides (None: the run's or exported file's `rectify`, else "relu").
    """

    images: list[str] | None = option(None, f"{IDS_HELP}, or image files (broken ones are skipped)", many=True)
    limit: int = option(0, "explain the split's first N images (default 4)")
    methods: list[str] | None = option(help=f"{', '.join(attribution.METHODS)} (repeat for several; default: all)",
                                       flag="--method", repeat=True)  # fmt: skip
    target: str | None = option(None, "top (default), a class index or a class name")
    layer: str | None = option(None, "the CAM layer (default: the last layer with more than one position)")
    smooth: int = option(0, "SmoothGrad samples per image (0: off)")
    steps: int = option(64, "integrated gradients' steps")
    max_maps: int | None = option(None, "Score-CAM's strongest N maps")
    labels: str | None = option(None, "a file of class names, one a line")
    rectify: str | None = option(None, RECTIFY_HELP + " (Guided Grad-CAM's guided rule)", choices=RECTIFY)


ANALYSES = {
    "occlusion": OcclusionOptions,
    "evolution": EvolutionOptions,
    "invariance": InvarianceOptions,
    "sanity": SanityOptions,
    "optimize": OptimizeOptions,
    "attribute": AttributeOptions,
}
"""Each analysis's name (`vizdeconv analyze NAME`) and its options class."""
