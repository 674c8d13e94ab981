"""Budgets in the units people pay in: wall-clock seconds and GPU-hours (``zoom.budget_wall_s``,
``zoom.budget_gpu_hours``), besides the epoch budget of ``zoom.Rules``. Pure: no Ray, no clock read here;
the caller passes what was spent (``Spent``), so the rules are tested without sleeping.

When a budget ends, the search starts no new round and hands out no more points; trials already given to
Tune finish (``OnBudget.FINISH``) or are stopped at their next report (``OnBudget.STOP``); the pick is made
from what ran, and the stop reason names the budget that ended the sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class OnBudget(str, Enum):
    """What happens to running trials when a budget ends."""

    FINISH = "finish"  # they run to their end (no new trial starts)
    STOP = "stop"  # they are stopped at their next report (Tune marks them terminated; their epochs count)


@dataclass(frozen=True)
class Budget:
    """The real-unit limits of a sweep; ``None``: no limit. The null budget (``Budget()``) never ends."""

    wall_s: float | None = None
    gpu_hours: float | None = None
    on_end: OnBudget = OnBudget.FINISH

    def __post_init__(self) -> None:
        for name in ("wall_s", "gpu_hours"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value}: expected a number > 0 or None")
        if not isinstance(self.on_end, OnBudget):
            raise ValueError(f"on_end={self.on_end!r}: expected one of {[m.value for m in OnBudget]}")


NO_BUDGET = Budget()


@dataclass(frozen=True)
class Spent:
    """What a sweep has spent so far: wall-clock seconds since it started, and GPU-hours (each trial's
    training seconds x the GPUs it holds)."""

    wall_s: float = 0.0
    gpu_hours: float = 0.0


WALL = "wall-clock budget spent"  # the stop reasons start with these (rounds.json, best.json, the report)
GPU = "GPU-hour budget spent"


def ended(budget: Budget, spent: Spent) -> str | None:
    """Why the sweep must start nothing more (a one-line stop reason naming the budget), or None."""
    if budget.wall_s is not None and spent.wall_s >= budget.wall_s:
        return f"{WALL} ({spent.wall_s:.0f} s >= {budget.wall_s:g} s)"
    if budget.gpu_hours is not None and spent.gpu_hours >= budget.gpu_hours:
        return f"{GPU} ({spent.gpu_hours:.3g} >= {budget.gpu_hours:g} GPU-hours)"
    return None


def gpu_hours(trial_seconds: list[float], gpus_per_trial: float) -> float:
    """GPU-hours of trials that trained ``trial_seconds`` each, holding ``gpus_per_trial`` GPUs each."""
    if not gpus_per_trial >= 0:
        raise ValueError(f"gpus_per_trial={gpus_per_trial}: expected >= 0")
    return sum(trial_seconds) * gpus_per_trial / 3600.0
