"""Dataset-wide feature explorer: running top-k scan, rendering of top-9 grids, index.json."""

from vizdeconv.explore.explorer import ExploreOptions, explore, merge, scan

__all__ = ["ExploreOptions", "explore", "merge", "scan"]
