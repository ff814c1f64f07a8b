"""The paper's other analyses on a run folder or a `.keras` file: occlusion (Fig. 7), feature evolution
(Fig. 4), invariance (Fig. 5), the cascading randomization sanity check (Adebayo et al. 2018), feature
visualization (`optimize`: an image optimized to excite each channel, Olah et al. 2017), and class attribution
(`attribute`: Grad-CAM and its family, with deletion/insertion faithfulness).

    from vizdeconv.analyze import OcclusionOptions, analyze
    analyze(OcclusionOptions(run="logs/default", images="0,5", patch=4))   # what `vizdeconv analyze occlusion` runs

One options class per analysis (`options`), `analyze` and the explorer's `--sanity` (`run`), the analyses
themselves (`analyses`, `optimize`, `attribute`). Names are imported on first use: `python -m vizdeconv.analyze`
imports this package before it chooses TensorFlow's CPU kernels.
"""

__all__ = ["ANALYSES", "AttributeOptions", "EvolutionOptions", "InvarianceOptions", "OcclusionOptions",
           "OptimizeOptions", "SanityOptions", "analyze", "explorer_sanity"]  # fmt: skip


def __getattr__(name: str):
    if name in ("analyze", "explorer_sanity", "split_images"):
        from vizdeconv.analyze import run as module
    elif name in __all__:
        from vizdeconv.analyze import options as module
    else:
        raise AttributeError(f"module 'vizdeconv.analyze' has no attribute {name!r}")
    return getattr(module, name)
