"""Warm start: a new sweep's round 0 looks where an old sweep's pick says (``warm_start: {run: RUN}``, or
``sweep run CONFIG --from RUN``).

The old sweep's chosen rate is moved by a scaling rule when the global batch (``batch_size`` x
``resources.workers``) changed: ``linear`` multiplies it by new/old, ``sqrt`` by the square root of that
(``warm_start.scaling``); the new round 0 is the configured grid narrowed to ``width`` decades either side
of that prior (inside the configured range), so it trains fewer trials. The old sweep's divergence cliff
(``cliff_of``: the lowest rate above its best that diverged or did ``compare.CLIFF_RATIO`` times worse) is moved
by the same factor: round 0 reaches up to it, never above, and the zoom never grows past it (``Prior.cliff``):
the new sweep tries the one rate at the moved cliff, so its own cliff guard (``zoom.cliff_margin``) sees
whether the cliff is still there; the zoom then goes on as usual. Pure: no Ray, no torch, no files
(``reuse.warm_prior`` reads them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestrator import compare


@dataclass(frozen=True)
class Prior:
    """Where round 0 looks: ``low``..``high`` (log10), around ``x`` (log10 of the moved rate); ``cliff``:
    log10 of the old sweep's cliff moved by ``factor`` (None: it saw none), the highest rate the zoom may
    grow to. ``note``: the old pick, the rule and why; ``text``: the one phrase best.json, report.md and the
    final line carry ('warm-started from runs/a (batch 32 -> 64, sqrt: prior x1.41)')."""

    x: float
    low: float
    high: float
    factor: float  # the old pick was multiplied by this (1.0: no scaling)
    note: str
    run: str = ""  # the old sweep, as shown (credentials masked)
    scaling: str = "linear"
    old_batch: float | None = None
    new_batch: float | None = None
    cliff: float | None = None
    text: str = ""


def global_batch(space: dict[str, Any], workers: int) -> float | None:
    """``batch_size`` x ``workers`` when ``batch_size`` is one number in the space, else None (unknown)."""
    b = space.get("batch_size")
    return float(b) * workers if isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 else None


def cliff_of(obs: list[compare.Observation], ratio: float = compare.CLIFF_RATIO) -> float | None:
    """log10 of an old sweep's divergence cliff: per group, the lowest x above the group's best that diverged
    or did ``ratio`` times worse at the comparison epoch (``compare.cliff_cap`` with no margin; trials ASHA
    stopped that much worse count); the highest over the groups, so no group is cut below its own cliff.
    None when some group saw no cliff (nothing is known above it)."""
    groups: dict[int, list[compare.Observation]] = {}
    for o in obs:
        groups.setdefault(o.group, []).append(o)
    cliffs = []
    for members in groups.values():
        epoch = compare.comparison_epoch(members)
        points = compare.points_at(members, epoch) + compare.stopped_over_cliff(members, epoch, ratio)
        cliff = compare.cliff_cap(points, ratio=ratio, margin=0.0)
        if cliff is None:
            return None
        cliffs.append(cliff)
    return max(cliffs) if cliffs else None


def prior(
    old_lr: float,
    old_batch: float | None,
    new_batch: float | None,
    low: float,
    high: float,
    scaling: str = "linear",
    width: float = 1.0,
    *,
    cliff: float | None = None,
    run: str = "",
) -> Prior:
    """The prior of a warm start from the sweep ``run`` that picked ``old_lr`` at global batch ``old_batch``
    (its cliff at log10 ``cliff``, None: not seen), for one whose global batch is ``new_batch`` and whose
    configured range is ``low``..``high`` (log10): round 0 looks ``width`` decades either side of the moved
    pick, and not above the moved cliff.

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
    moved = None if cliff is None else cliff + math.log10(factor)
    x = min(max(math.log10(old_lr * factor), low), high)
    lo, hi = max(low, x - width), min(high, x + width)
    if moved is not None:
        hi = max(lo, min(hi, moved))
        x = min(x, hi)
    note = f"old pick lr={old_lr:.4g} ({why}): prior lr={10**x:.4g}; round 0 looks at {10**lo:.3g}..{10**hi:.3g}"
    if moved is not None:
        note += f", up to the old cliff moved to lr={10**moved:.3g}"
    return Prior(
        x,
        lo,
        hi,
        factor,
        note,
        run,
        scaling,
        old_batch,
        new_batch,
        moved,
        _text(run, factor, scaling, old_batch, new_batch, moved),
    )


def _text(run: str, factor: float, scaling: str, old: float | None, new: float | None, cliff: float | None) -> str:
    if factor != 1.0:
        how = f"batch {old:g} -> {new:g}, {scaling}: prior x{factor:.3g}"
    elif old and new:
        how = f"batch {old:g} unchanged: prior not scaled"
    else:
        how = "batch size not one number: prior not scaled"
    edge = f"; its cliff moved to lr {10**cliff:.3g}: nothing above it is tried" if cliff is not None else ""
    return f"warm-started from {run or 'an old sweep'} ({how}){edge}"
