"""Warm start: a new sweep's round 0 looks where an old sweep's pick says (``warm_start: {run: RUN}``).

The old sweep's chosen rate is moved by a scaling rule when the global batch (``batch_size`` x
``resources.workers``) changed: ``linear`` multiplies it by new/old, ``sqrt`` by the square root of that
(``warm_start.scaling``); the new round 0 is the configured grid narrowed to ``width`` decades either side
of that prior (inside the configured range), so it trains fewer trials; the zoom then goes on as usual
(growing past an edge when the best point lies there). Pure: no Ray, no torch, no files (``folder.
warm_source`` reads them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prior:
    """Where round 0 looks: ``low``..``high`` (log10), around ``x`` (log10 of the moved rate)."""

    x: float
    low: float
    high: float
    factor: float  # the old pick was multiplied by this (1.0: no scaling)
    note: str  # one line: the old pick, the rule and why


def global_batch(space: dict[str, Any], workers: int) -> float | None:
    """``batch_size`` x ``workers`` when ``batch_size`` is one number in the space, else None (unknown)."""
    b = space.get("batch_size")
    return float(b) * workers if isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 else None


def prior(
    old_lr: float,
    old_batch: float | None,
    new_batch: float | None,
    low: float,
    high: float,
    scaling: str = "linear",
    width: float = 1.0,
) -> Prior:
    """The prior of a warm start from a sweep that picked ``old_lr`` at global batch ``old_batch``, for one
    whose global batch is ``new_batch`` and whose configured range is ``low``..``high`` (log10).

    ValueError for a rate that is not a positive number, an unknown ``scaling`` or a ``width`` <= 0."""
    if not (math.isfinite(old_lr) and old_lr > 0):
        raise ValueError(f"old_lr={old_lr}: expected a positive learning rate")
    if scaling not in ("linear", "sqrt"):
        raise ValueError(f"scaling={scaling!r}: expected 'linear' or 'sqrt'")
    if not width > 0:
        raise ValueError(f"width={width}: expected > 0 (decades)")
    factor, why = 1.0, "global batch unchanged or unknown: not scaled"
    if old_batch and new_batch and old_batch != new_batch:
        ratio = new_batch / old_batch
        factor = ratio if scaling == "linear" else math.sqrt(ratio)
        why = f"{scaling} scaling: global batch {old_batch:g} -> {new_batch:g}, x{factor:.3g}"
    x = min(max(math.log10(old_lr * factor), low), high)
    lo, hi = max(low, x - width), min(high, x + width)
    note = f"old pick lr={old_lr:.4g} ({why}): prior lr={10**x:.4g}; round 0 looks at {10**lo:.3g}..{10**hi:.3g}"
    return Prior(x, lo, hi, factor, note)
