"""Dataset-wide feature explorer: running top-k scan, rendering of top-9 grids, index.json."""
from vizdeconv.explore.explorer import explore, load_run, main, scan

__all__ = ["explore", "load_run", "main", "scan"]
