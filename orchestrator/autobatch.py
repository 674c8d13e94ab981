"""``batch_size: auto``: the largest batch that fits, found by doubling then bisecting (pure: no torch).

``largest(fits, start, limit)`` asks ``fits(b)`` for b = start, 2*start, 4*start, ... until one does not
fit (or ``limit`` is reached), then bisects between the last fitting and the first failing size. ``fits``
is taken to be monotone (a batch that fits means every smaller one does); the answer is then the largest
fitting size in ``[start, limit]``, found in about ``2 * log2(answer / start)`` probes.
``orchestrator.memprobe`` supplies a ``fits`` that runs one training step and catches out-of-memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Found:
    """The search's answer: ``batch`` (the largest size that fitted), ``limited`` (True when ``limit`` was
    reached without a failure: more may fit) and ``probes`` (the sizes tried, in order)."""

    batch: int
    limited: bool
    probes: tuple[int, ...]


class NothingFits(ValueError):
    """Not even the smallest batch fits."""


def largest(fits: Callable[[int], bool], start: int = 1, limit: int = 65536) -> Found:
    """The largest batch size in ``[start, limit]`` for which ``fits`` is true (doubling, then bisecting).
    Raises ``ValueError`` for ``start < 1`` or ``limit < start``, ``NothingFits`` when ``start`` does not fit."""
    if start < 1:
        raise ValueError(f"start={start}: expected >= 1")
    if limit < start:
        raise ValueError(f"limit={limit}: expected >= start={start}")
    probes: list[int] = []

    def tried(b: int) -> bool:
        probes.append(b)
        return fits(b)

    if not tried(start):
        raise NothingFits(f"batch_size={start}: does not fit; expected at least the smallest batch to fit")
    good, bad = start, None
    while bad is None:
        if good == limit:
            return Found(good, True, tuple(probes))
        b = min(2 * good, limit)
        if tried(b):
            good = b
        else:
            bad = b
    while bad - good > 1:
        mid = (good + bad) // 2
        if tried(mid):
            good = mid
        else:
            bad = mid
    return Found(good, False, tuple(probes))
