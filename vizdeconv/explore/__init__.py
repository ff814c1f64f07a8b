"""Dataset-wide feature explorer: running top-k scan, rendering of top-9 grids, index.json.

Names are imported on first use: `python -m vizdeconv.explore` imports this package before it chooses
TensorFlow's CPU kernels."""

__all__ = ["ExploreOptions", "explore", "merge", "scan"]


def __getattr__(name: str):
    if name in __all__:
        from vizdeconv.explore import explorer

        return getattr(explorer, name)
    raise AttributeError(f"module 'vizdeconv.explore' has no attribute {name!r}")
