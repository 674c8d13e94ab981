"""The yardstick every benchmark judges a picked learning rate with. Pure: numpy only, no training, no Ray.

A landscape (``bench/landscape.py``'s CSV: lr, seed, epoch, val_loss; ``inf`` once diverged) holds full
validation curves at lrs 1/15 decade apart x many seeds. Seeds >= ``FRESH_FROM`` are the fresh seeds
(1001..1005, ``common.FRESH_SEEDS``) that no search ever trains with; the others are the search seeds.

    regret(lr) = 100 * (mean_final(lr) - min over recorded lrs of mean_final) / min mean_final

where ``mean_final(lr)`` is interpolated linearly in log10 lr between the two recorded lrs around ``lr``
(inf when either is inf; the end value outside the recorded range), and ``mean_final`` is the mean final
val_loss over every seed (``against="all"``, the robust yardstick) or over the fresh seeds only
(``against="fresh"``, as the dense reference grid of ``regret.py`` judges).
Every function returns numbers; formatting is the table writer's (``common.pct``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FRESH_FROM = 1001  # seeds from here on judge picks; seeds below it are the ones searches train with
SNAP = 0.05  # decades: a pick farther than this from every recorded lr is not judged by ``Landscape.judge``
WITHIN = 5.0  # regret (%) counted as a hit

Against = Literal["all", "fresh"]


def regret(mean: float, best: float) -> float:
    """Regret in percent: ``100 * (mean - best) / best``."""
    return 100.0 * (mean - best) / best


def path_for(optimizer: str, results: Path = RESULTS) -> Path:
    """Where ``bench/landscape.py --optimizer OPTIMIZER`` writes its landscape."""
    return Path(results) / f"landscape_{optimizer}.csv"


def read(path: Path) -> dict[tuple[float, int], list[float]]:
    """(lr, seed) -> the validation curve (one value per epoch, in epoch order) of a landscape CSV;
    empty when the file does not exist."""
    curves: dict[tuple[float, int], dict[int, float]] = {}
    path = Path(path)
    if path.exists():
        with path.open() as f:
            for r in csv.DictReader(f):
                curves.setdefault((float(r["lr"]), int(r["seed"])), {})[int(r["epoch"])] = float(r["val_loss"])
    return {k: [v[e] for e in sorted(v)] for k, v in curves.items()}


class Landscape:
    """A recorded landscape: ``lrs`` (ascending), ``x`` (their log10), ``seeds``, ``fresh`` and ``search``
    seeds, ``finals`` (lrs x seeds array of final losses) and the per-lr means ``mean["all"]`` and
    ``mean["fresh"]``. Every (lr, seed) pair must be recorded (ValueError naming the first missing one)."""

    def __init__(self, curves: dict[tuple[float, int], list[float]], source: str = "<landscape>"):
        if not curves:
            raise ValueError(f"{source}: no curves (expected rows lr, seed, epoch, val_loss)")
        self.curves = curves
        self.lrs = sorted({lr for lr, _ in curves})
        self.x = np.log10(self.lrs)
        self.seeds = sorted({s for _, s in curves})
        self.fresh = [s for s in self.seeds if s >= FRESH_FROM]
        self.search = [s for s in self.seeds if s < FRESH_FROM]
        missing = [(lr, s) for lr in self.lrs for s in self.seeds if (lr, s) not in curves]
        if missing:
            raise ValueError(f"{source}: lr {missing[0][0]:g} has no curve for seed {missing[0][1]}")
        self.finals = np.array([[curves[(lr, s)][-1] for s in self.seeds] for lr in self.lrs])
        fresh = [self.seeds.index(s) for s in self.fresh]
        self.mean: dict[str, np.ndarray] = {"all": self.finals.mean(axis=1)}
        if fresh:
            self.mean["fresh"] = self.finals[:, fresh].mean(axis=1)

    @classmethod
    def load(cls, path: Path) -> Landscape:
        """The landscape in a CSV (``read``); ValueError naming the file when it is missing or empty."""
        return cls(read(path), source=str(path))

    def best(self, against: Against = "all") -> float:
        """The lowest per-lr mean final loss."""
        return float(self._means(against).min())

    def nearest(self, x: float) -> int:
        """Index of the recorded lr nearest to log10 lr ``x``."""
        return int(np.argmin(np.abs(self.x - x)))

    def regret_at(self, i: int, against: Against = "all") -> float:
        """Regret (%) of the i-th recorded lr."""
        means = self._means(against)
        return regret(float(means[i]), float(means.min()))

    def value(self, x: float, against: Against = "all") -> float:
        """The many-seed mean final loss at log10 lr ``x``: linear in log10 lr between the recorded lrs
        around it, inf when either of them is inf, the end lr's mean outside the recorded range."""
        means = self._means(against)
        j = int(np.searchsorted(self.x, x))
        if j <= 0:
            return float(means[0])
        if j >= len(self.x):
            return float(means[-1])
        lo, hi = float(means[j - 1]), float(means[j])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return math.inf
        t = (x - self.x[j - 1]) / (self.x[j] - self.x[j - 1])
        return lo + t * (hi - lo)

    def regret(self, x: float, against: Against = "all") -> float:
        """Regret (%) of log10 lr ``x``: its interpolated mean (``value``) against the best recorded mean."""
        return regret(self.value(x, against), self.best(against))

    def judge(self, lr: float, against: Against = "all", snap: float = SNAP) -> float | None:
        """Regret (%) of the picked ``lr`` (``regret``); None when it lies more than ``snap`` decades outside
        the recorded range."""
        x = math.log10(lr)
        if x < self.x[0] - snap or x > self.x[-1] + snap:
            return None
        return self.regret(x, against)

    def _means(self, against: Against) -> np.ndarray:
        if against not in self.mean:
            raise ValueError(
                f"against={against!r}: expected one of {sorted(self.mean)} (fresh seeds are >= {FRESH_FROM})"
            )
        return self.mean[against]


@dataclass(frozen=True)
class Spread:
    """Regrets (%) over draws or repeats: how many, their mean, median, 90th percentile and worst, and how
    many are within ``WITHIN`` (``hits``; ``hit_rate`` = hits / n)."""

    n: int
    mean: float
    median: float
    p90: float
    worst: float
    hits: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.n


def _percentile(values: np.ndarray, q: float) -> float:
    """numpy's linear-interpolation percentile, with inf where it interpolates towards an inf value."""
    v = np.sort(values)
    pos = q / 100 * (v.size - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or v[lo] == v[hi]:
        return float(v[lo])
    return math.inf if math.isinf(v[hi]) else float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def spread(regrets: Iterable[float], within: float = WITHIN) -> Spread:
    """The ``Spread`` of some regrets (ValueError when there are none). ``inf`` counts as inf: a percentile
    that falls between a finite regret and an inf one is inf (numpy's interpolation would give nan)."""
    values = np.asarray(list(regrets), dtype=float)
    if values.size == 0:
        raise ValueError("regrets: expected at least one")
    return Spread(
        n=int(values.size),
        mean=float(values.mean()),
        median=_percentile(values, 50),
        p90=_percentile(values, 90),
        worst=float(values.max()),
        hits=int(np.sum(values <= within)),
    )
