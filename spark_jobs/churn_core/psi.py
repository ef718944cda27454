"""The population stability index and the drift statuses (pure Python: the DAG side imports
the thresholds from here).

PSI compares a day's shares of some bins with the training shares of the same bins:
``sum((day - train) * ln(day / train))``. A share of 0 counts as ``EPSILON``, so a bin empty
on one side (an unseen category) adds a large but finite term. 0 means the same distribution;
the usual reading is below 0.1 stable, 0.1 to 0.25 a shift worth a look, above 0.25 a shift
the model did not learn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

DEFAULT_WARNING = 0.1
DEFAULT_ALERT = 0.25
EPSILON = 1e-4
OK, WARNING, ALERT = "ok", "warning", "alert"
STATUSES = (OK, WARNING, ALERT)  # from the best to the worst


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI of ``actual`` shares against ``expected`` shares of the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected shares but {len(actual)} actual ones")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def check_thresholds(warning: float, alert: float) -> None:
    if not 0 < warning <= alert:
        raise ValueError(f"drift thresholds need 0 < warning <= alert, not {warning} and {alert}")


def status(value: float, warning: float = DEFAULT_WARNING, alert: float = DEFAULT_ALERT) -> str:
    if value >= alert:
        return ALERT
    return WARNING if value >= warning else OK


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index, default=OK)
