"""Pure grid arithmetic: log grids ("N points per decade"), linear grids, categoricals. No Ray here."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any


def nice(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits so that 10**-3 prints as 0.001, not 0.0010000000000000002."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def log_grid(low: float, high: float, per_decade: float) -> list[float]:
    """Log-spaced points from ``low`` to ``high`` inclusive, about ``per_decade`` points per decade.

    >>> log_grid(1e-6, 1e-1, 1)
    [1e-06, 1e-05, 0.0001, 0.001, 0.01, 0.1]
    """
    if not (low > 0 and math.isfinite(low)):
        raise ValueError(f"low={low!r}: expected a finite number > 0")
    if not (high >= low and math.isfinite(high)):
        raise ValueError(f"high={high!r}: expected a finite number >= low={low!r}")
    if not per_decade > 0:
        raise ValueError(f"per_decade={per_decade!r}: expected > 0")
    lo, hi = math.log10(low), math.log10(high)
    steps = max(1, round((hi - lo) * per_decade)) if hi > lo else 0
    if steps == 0:
        return [nice(low)]
    return [nice(10 ** (lo + i * (hi - lo) / steps)) for i in range(steps + 1)]


def linear_grid(low: float, high: float, points: int) -> list[float]:
    """``points`` evenly spaced values from ``low`` to ``high`` inclusive."""
    if not (math.isfinite(low) and math.isfinite(high) and high >= low):
        raise ValueError(f"linear=[{low!r}, {high!r}]: expected finite low <= high")
    if points < 1:
        raise ValueError(f"points={points!r}: expected >= 1")
    if points == 1:
        return [nice(low)]
    return [nice(low + i * (high - low) / (points - 1)) for i in range(points)]


def cross(dimensions: Mapping[str, Iterable[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of named value lists, in a stable order; ``{}`` gives ``[{}]``."""
    names = list(dimensions)
    values = [list(dimensions[n]) for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]
