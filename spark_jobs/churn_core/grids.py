"""Tuning's hyperparameter grids and fold bounds (pure Python: the DAGs import it too)."""

from __future__ import annotations

GRIDS = {
    "small": {"max_depth": (5, 10), "max_bins": (32,), "num_trees": (20, 30)},
    # the lab's grid: 27 points
    "default": {"max_depth": (5, 10, 15), "max_bins": (24, 32, 40), "num_trees": (25, 30, 35)},
    "large": {
        "max_depth": (5, 10, 15, 20),
        "max_bins": (24, 32, 40, 64),
        "num_trees": (25, 35, 50),
    },
}
DEFAULT_GRID = "default"
MIN_FOLDS, MAX_FOLDS, DEFAULT_FOLDS = 2, 10, 5


def grid_args(name: str) -> dict[str, str]:
    """A grid as the tuning job's arguments: ``{"max_depth_grid": "5,10,15", ...}``."""
    return {f"{axis}_grid": ",".join(map(str, values)) for axis, values in GRIDS[name].items()}
