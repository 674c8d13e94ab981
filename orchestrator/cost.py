"""What a sweep cost in the units people pay in, and what each round bought. Pure arithmetic: no Ray, no
torch, no clock; the caller passes the stored rows and the trial resources.

- ``Resources``: what one trial holds (the config's ``resources:``: cpu and gpu per worker, workers, the GPU
  kind when Ray's ``accelerator_type:KIND`` custom resource names it), from a config mapping by ``resources_of``;
- ``Rates``: money per GPU-hour and per CPU-hour (the config's ``cost:``), from a mapping by ``rates_of``;
- ``Cost``: training span (wall-clock seconds from the first epoch's start to the last epoch's end; the
  driver's own time, Ray's start included, is not in it), trial-hours (training time summed over trials),
  CPU-hours and GPU-hours per GPU kind (trial-hours x what a trial holds) and money (None without rates),
  from ``trials.parquet`` rows by ``cost_of``;
- ``RoundPick``: what one round cost and the pick and band the sweep would have had had it stopped after it;
  ``moved`` / ``narrowed``: how far a round moved the pick and narrowed the band, in decades;
- ``advice``: the closing line, stop here or one more round (its rule in its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCELERATOR = "accelerator_type:"  # Ray's custom resource naming a GPU kind (accelerator_type:A100)
UNKNOWN_KIND = "kind not named"  # the GPU kind when the resources name none


@dataclass(frozen=True)
class Resources:
    """What one trial holds: ``cpu`` and ``gpu`` per worker, ``workers`` processes, GPUs of ``gpu_kind``."""

    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1
    gpu_kind: str = UNKNOWN_KIND

    def __post_init__(self) -> None:
        for name in ("cpu", "gpu"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value}: expected a number >= 0")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: expected >= 1")


@dataclass(frozen=True)
class Rates:
    """Money per hour of one GPU and of one CPU, in ``currency``."""

    gpu_hour: float = 0.0
    cpu_hour: float = 0.0
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("gpu_hour", "cpu_hour"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value}: expected a number >= 0")


def resources_of(config: Mapping[str, Any] | None) -> Resources:
    """The ``Resources`` of a config mapping (``sweep.yaml`` as loaded: its ``resources:``; defaults when
    absent). ValueError when a value is not a number."""
    r = (config or {}).get("resources") or {}
    if not isinstance(r, Mapping):
        raise ValueError(f"resources={r!r}: expected a mapping")
    custom = r.get("custom") or {}
    kinds = [k[len(ACCELERATOR) :] for k in custom if isinstance(k, str) and k.startswith(ACCELERATOR)]
    return Resources(
        _number("resources.cpu", r.get("cpu", 1.0)),
        _number("resources.gpu", r.get("gpu", 0.0)),
        int(_number("resources.workers", r.get("workers", 1))),
        kinds[0] if kinds else UNKNOWN_KIND,
    )


def rates_of(config: Mapping[str, Any] | None) -> Rates | None:
    """The ``Rates`` of a config mapping (its ``cost:``), or None when it sets none."""
    c = (config or {}).get("cost")
    if c is None:
        return None
    if not isinstance(c, Mapping):
        raise ValueError(f"cost={c!r}: expected a mapping with gpu_hour and cpu_hour")
    return Rates(
        _number("cost.gpu_hour", c.get("gpu_hour", 0.0)),
        _number("cost.cpu_hour", c.get("cpu_hour", 0.0)),
        str(c.get("currency") or "USD"),
    )


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected a number") from None


@dataclass(frozen=True)
class Cost:
    """What some trials cost. ``wall_s``: seconds from the first epoch's start to the last epoch's end (None
    when the rows carry no times); ``trial_hours``: their training time summed over trials; ``cpu_hours``
    and ``gpu_hours`` (per GPU kind; {} without GPUs): trial-hours x the CPUs / GPUs a trial holds; ``money``
    in ``currency`` at the sweep's ``Rates`` (None without rates)."""

    trials: int
    epochs: int
    wall_s: float | None
    trial_hours: float
    cpu_hours: float
    gpu_hours: dict[str, float] = field(default_factory=dict)
    money: float | None = None
    currency: str = "USD"

    @property
    def gpu_total(self) -> float:
        return sum(self.gpu_hours.values())

    def gpu_text(self) -> str:
        """'0.5 GPU-hours (A100)', '0 GPU-hours'."""
        if not self.gpu_hours:
            return "0 GPU-hours"
        kinds = ", ".join(f"{h:.3g} {k}" if len(self.gpu_hours) > 1 else k for k, h in self.gpu_hours.items())
        return f"{self.gpu_total:.3g} GPU-hours ({kinds})"

    def money_text(self) -> str:
        return "n/a (no cost: rates in the config)" if self.money is None else f"{self.money:.2f} {self.currency}"

    def text(self) -> str:
        """One phrase, each figure with its unit, every figure (report.md's 'Cost in real units')."""
        return ", ".join(
            [
                self._wall(),
                self._hours(),
                self.gpu_text(),
                f"{self.cpu_hours:.3g} CPU-hours",
                f"money {self.money_text()}",
            ]
        )

    def brief(self) -> str:
        """The figures that apply, worded as in ``text``: training span, trial-hours, GPU-hours when GPUs were
        used, money when rates are set ('training span 12 s, 0.01 trial-hours'). The final line of ``sweep run``
        and ``sweep extend`` carries it, best.json as ``cost.text``."""
        return ", ".join(
            [self._wall(), self._hours()]
            + ([self.gpu_text()] if self.gpu_hours else [])
            + ([f"money {self.money_text()}"] if self.money is not None else [])
        )

    def _wall(self) -> str:
        return f"training span {'n/a' if self.wall_s is None else f'{self.wall_s:.0f} s'}"

    def _hours(self) -> str:
        return f"{self.trial_hours:.3g} trial-hours"

    def stored(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "trial_hours": self.trial_hours,
            "cpu_hours": self.cpu_hours,
            "gpu_hours": self.gpu_total,
            "gpu_hours_by_kind": dict(self.gpu_hours),
            "money": self.money,
            "currency": self.currency,
            "trials": self.trials,
            "epochs": self.epochs,
            "text": self.brief(),
        }


def cost_of(rows: Iterable[Mapping[str, Any]], resources: Resources, rates: Rates | None) -> Cost:
    """The ``Cost`` of the trials in ``rows`` (``trials.parquet`` rows: ``trial_id``, ``epoch``,
    ``epoch_seconds``, ``ended_at``; a row without epoch is not an epoch, a missing time counts 0 s)."""
    rows = list(rows)
    epochs = [r for r in rows if r.get("epoch") is not None]
    seconds = sum(_seconds(r) for r in epochs)
    timed = [r for r in epochs if r.get("ended_at") is not None]
    wall = (max(r["ended_at"] for r in timed) - min(r["ended_at"] - _seconds(r) for r in timed)) if timed else None
    hours = seconds / 3600.0
    cpu = hours * resources.cpu * resources.workers
    gpu = hours * resources.gpu * resources.workers
    money = None if rates is None else gpu * rates.gpu_hour + cpu * rates.cpu_hour
    return Cost(
        len({r["trial_id"] for r in rows}),
        len(epochs),
        wall,
        hours,
        cpu,
        {resources.gpu_kind: gpu} if resources.gpu > 0 else {},
        money,
        rates.currency if rates else "USD",
    )


def _seconds(row: Mapping[str, Any]) -> float:
    s = row.get("epoch_seconds")
    return float(s) if s is not None and math.isfinite(s) and s > 0 else 0.0


@dataclass(frozen=True)
class RoundPick:
    """One round: what its own trials cost, and the pick (``lr``) and band (``low``..``high``; ``measured``:
    the band's noise was measured, else the band is the pick alone) had the sweep stopped after it (the
    trials of this round and the earlier ones). ``lr`` None: no trial had reported a metric yet."""

    index: int
    cost: Cost
    lr: float | None
    low: float | None = None
    high: float | None = None
    measured: bool = False

    @property
    def width(self) -> float | None:
        """The band's width in decades; None when not measured."""
        if not self.measured or self.low is None or self.high is None or self.low <= 0:
            return None
        return math.log10(self.high / self.low)


def moved(before: RoundPick | None, after: RoundPick) -> float | None:
    """How far the pick moved from ``before`` to ``after``, in decades (|log10 ratio|); None when either has none."""
    if before is None or before.lr is None or after.lr is None or before.lr <= 0 or after.lr <= 0:
        return None
    return abs(math.log10(after.lr / before.lr))


def narrowed(before: RoundPick | None, after: RoundPick) -> float | None:
    """How much the band narrowed from ``before`` to ``after``, in decades (negative: it widened); None when
    either band is not measured."""
    if before is None or before.width is None or after.width is None:
        return None
    return before.width - after.width


def advice(rounds: list[RoundPick], resolution: float, points_per_round: int) -> str:
    """The closing line. Rule: when the last round moved the pick by less than ``resolution`` decades and
    narrowed the band by less than ``resolution`` decades (a band not measured counts as not narrowed),
    'stop here'; otherwise one more round, expected to cost ``points_per_round`` trials at the last round's
    mean cost per trial and to move the pick by at most what the last round moved it (the zoom only
    narrows). With one round no move is measured: one more round, at that expected cost."""
    if not rounds:
        raise ValueError("rounds=[]: expected at least one round")
    last = rounds[-1]
    per_trial = last.cost.trial_hours / last.cost.trials if last.cost.trials else 0.0
    money = (last.cost.money / last.cost.trials) if last.cost.money is not None and last.cost.trials else None
    expected = f"{points_per_round} trials, about {points_per_round * per_trial:.3g} trial-hours" + (
        f" ({points_per_round * money:.2f} {last.cost.currency})" if money is not None else ""
    )
    if len(rounds) < 2:
        return (
            f"one more round: a single round measures no move of the pick; the next would cost {expected} "
            f"and refine around {_rate(last.lr)}"
        )
    m, n = moved(rounds[-2], last), narrowed(rounds[-2], last)
    bought = f"the last round (round {last.index}) moved the pick by {_decades(m)} and " + (
        f"narrowed the band by {_decades(n)}"
        if n is not None
        else "did not measure the band both before and after it (noise: fewer than 4 trials near the best)"
    )
    if (m is None or m < resolution) and (n is None or n < resolution):
        return f"stop here: {bought}; below the resolution of {resolution:g} decades"
    return (
        f"one more round: {bought}; the resolution is {resolution:g} decades; the next would cost {expected} and "
        f"is expected to move the pick by at most {_decades(m)}"
    )


def _decades(v: float | None) -> str:
    return "n/a (not measured)" if v is None else f"{v:.2f} decades"


def _rate(lr: float | None) -> str:
    return "n/a" if lr is None else f"{lr:.4g}"
