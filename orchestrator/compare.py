"""Comparing trials, the part of the zoom's rules that looks at results: what is known of a trial
(``Observation``), the epoch trials are compared at (``comparison_epoch``, never a trial stopped early as if
it had finished), a trial's score there (``score``: the mean of its last ``SMOOTH_EPOCHS`` epochs), the
smooth minimum of a group (``fit_minimum``: a parabola in log space, ``fit_parabola`` the fit itself;
``smooth_minimum``: a kernel smoother), the divergence cliff (``worse``, ``cliff_cap``, ``cliff_gap``,
``stopped_over_cliff``), one group's pick (``best_of_group``), the groups ranked (``rank_groups``), and which
trials may be compared at all (``same_data``: only trials that trained on the same fraction of the data).

Pure: works on ``x = log10(value)`` of the zoomed parameter and per-epoch metric curves (lower is better;
``inf`` for a diverged trial); no Ray import. ``zoom`` plans the rounds from these and re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Defaults of the ``zoom.Rules`` fields of the same names (lower case); set them per ``Rules``, not here.
CLIFF_RATIO = 3.0  # a point this many times worse than the best (or diverged) is over the cliff
CLIFF_MARGIN = 1.0  # decades the refined centre and the pick keep below the cliff (see cliff_cap)


@dataclass(frozen=True)
class Observation:
    """What is known of one trial: its group, log10 of its zoomed value, its round and metric curve, and
    ``data``, the fraction of the training data it trained on (``data_fraction``; 1: all of it)."""

    group: int
    x: float
    round: int
    curve: tuple[float, ...] = ()
    done: bool = False
    data: float = 1.0

    @classmethod
    def of(
        cls,
        group: int,
        x: float,
        round: int,
        values: Iterable[float | None],
        done: bool = False,
        data: float = 1.0,
    ) -> Observation:
        """The one way to build an Observation from reported metric values: each value that is not a
        finite number (None, NaN, +-inf: the trial diverged) becomes ``inf``."""
        curve = tuple(float(v) if v is not None and math.isfinite(v) else math.inf for v in values)
        return cls(group, x, round, curve, done, data)

    def at(self, epoch: int) -> float:
        """Metric after ``epoch`` epochs (1-based); inf once diverged."""
        value = self.curve[epoch - 1]
        return value if math.isfinite(value) else math.inf

    @property
    def diverged(self) -> bool:
        return bool(self.curve) and not math.isfinite(self.curve[-1])

    def reached(self, epoch: int) -> bool:
        # a diverged trial ends early but counts as worst at every later epoch
        return len(self.curve) >= epoch or self.diverged


def data_of(config: Mapping[str, Any]) -> float:
    """The fraction of the training data a trial config trains on: its ``data_fraction``, 1 when absent
    (or not a number in (0, 1], which the trial itself refuses)."""
    value = config.get("data_fraction", 1.0)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    return float(value) if ok else 1.0


def same_data(obs: list[Observation]) -> list[Observation]:
    """The trials that may be compared with each other: those trained on the largest data fraction any trial
    reported an epoch at (``Observation.data``; all trials when none reported), and, in the groups that have
    such trials, the trials that diverged on less data. A score on a fraction of the data is not a score on
    all of it (fewer steps per epoch, a smaller set to fit), so a coarse round on a fraction plans the round
    after it from its own trials, while later rounds and the final pick compare the full-data trials only;
    a rate that diverged on less data marks the divergence cliff all the same (``cliff_cap``)."""
    reported = [o.data for o in obs if o.curve]
    if not reported:
        return list(obs)
    top = max(reported)
    groups = {o.group for o in obs if o.data == top}
    return [o for o in obs if o.data == top or (o.diverged and o.group in groups)]


@dataclass(frozen=True)
class Pick:
    """A group's smooth minimum (``best_of_group``) or the final pick (``choose``)."""

    group: int
    x: float  # log10 of the picked value
    value: float  # the best score measured at ``epoch`` (a trial's, not the fit's); inf when none
    epoch: int  # the comparison epoch; 0 when nothing was reported


def comparison_epoch(obs: list[Observation]) -> int:
    """The epoch at which trials are compared: the shallowest depth among the trials still in the race,
    i.e. those still running and those that ran to the end. Trials stopped early (by ASHA, judged worse
    at a rung) are left out rather than compared as if they had finished; diverged trials count as
    worst at every epoch and never set it. 0 when nothing was reported."""
    live = [o for o in obs if not o.diverged and o.curve]
    if not live:
        return max((len(o.curve) for o in obs), default=0)
    full = max(len(o.curve) for o in live)
    racing = [len(o.curve) for o in live if not o.done or len(o.curve) == full]
    return min(racing)


SMOOTH_EPOCHS = 3  # a trial's score at epoch E: its mean metric over epochs E-2..E (less epoch-to-epoch noise)


def score(o: Observation, epoch: int, smooth: int = SMOOTH_EPOCHS) -> float:
    """Mean metric over the last ``smooth`` epochs up to ``epoch``; inf once diverged."""
    if o.diverged and len(o.curve) <= epoch:
        return math.inf
    values = o.curve[max(0, epoch - smooth) : epoch]
    return sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf


def points_at(obs: list[Observation], epoch: int) -> list[tuple[float, float]]:
    """(x, score at ``epoch``) for the trials that reached it, sorted by x."""
    if epoch < 1:
        return []
    return sorted((o.x, score(o, epoch)) for o in obs if o.reached(epoch))


@dataclass(frozen=True)
class Parabola:
    """``fit_parabola``'s fit: ``y = a x^2 + b x + c`` over ``points``, the (x, value) pairs it was fitted
    through (sorted by x); ``low``..``high`` the x they span."""

    a: float
    b: float
    c: float
    points: tuple[tuple[float, float], ...]

    @property
    def low(self) -> float:
        return self.points[0][0]

    @property
    def high(self) -> float:
        return self.points[-1][0]

    @property
    def convex(self) -> bool:
        return self.a > 0

    def at(self, x: float) -> float:
        return self.a * x * x + self.b * x + self.c

    @property
    def vertex(self) -> float:
        """The x of the minimum, kept within ``low``..``high``; ValueError unless ``convex``."""
        if not self.convex:
            raise ValueError(f"a={self.a}: expected > 0 (a convex parabola has a minimum)")
        return float(np.clip(-self.b / (2 * self.a), self.low, self.high))


def fit_parabola(points: list[tuple[float, float]], reach: float = 1.0, cliff: float = 3.0) -> Parabola | None:
    """The parabola ``fit_minimum`` fits (convex or not): least squares in log space weighted by 1/value,
    through the finite points within ``reach`` decades of the best one, those above ``cliff`` times the best
    left out while 3 points remain. None when fewer than 3 distinct x are left (no point finite included)."""
    finite = sorted((x, y) for x, y in points if math.isfinite(y))
    if not finite:
        return None
    best = min(finite, key=lambda p: p[1])
    near = [p for p in finite if abs(p[0] - best[0]) <= reach + 1e-9]
    valley = [p for p in near if best[1] == 0 or not worse(p[1], best[1], cliff) or p[1] == cliff * best[1]]
    if len(valley) < 3:
        valley = sorted(near, key=lambda p: p[1])[:3]
    xs = np.array([p[0] for p in valley])
    ys = np.array([p[1] for p in valley])
    if len(set(xs.round(9))) < 3:
        return None
    a, b, c = np.polyfit(xs, ys, 2, w=1.0 / np.maximum(np.abs(ys), 1e-12))
    return Parabola(float(a), float(b), float(c), tuple(sorted(valley)))


def fit_minimum(points: list[tuple[float, float]], reach: float = 1.0, cliff: float = 3.0) -> tuple[float, float]:
    """Smooth estimate of the minimum's location: a parabola in log space, least squares weighted by
    1/value (relative errors), through the points within ``reach`` decades of the best one
    (``fit_parabola``). Points above ``cliff`` times the best are off the valley (divergence side, or not
    training) and would drag the vertex away, so they are left out while 3 points remain.
    Falls back to the best point when the fit is not convex. The vertex stays within the fitted points.
    Returns (x, value): value is the best value measured, not the parabola's (which can undershoot)."""
    finite = sorted((x, y) for x, y in points if math.isfinite(y))
    if not finite:
        if not points:
            raise ValueError("points=[]: expected at least one (x, value) pair")
        return points[0][0], math.inf
    best = min(finite, key=lambda p: p[1])
    fit = fit_parabola(points, reach, cliff)
    if fit is None or not fit.convex:
        return best
    return fit.vertex, best[1]


def smooth_minimum(points: list[tuple[float, float]], bandwidth: float = 0.15) -> tuple[float, float]:
    """Smooth estimate of the minimum's location: a Gaussian kernel smoother (Nadaraya-Watson) of
    log(value) over x, minimised on a fine grid spanning the points, where at least one point lies
    within one bandwidth. Unlike a parabola it assumes no shape, so a skewed valley (gentle below the
    optimum, a cliff above it) does not drag the minimum away; the log keeps a point near the cliff
    from outweighing its neighbours. Returns (x, value): value is the best value measured."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth={bandwidth}: expected > 0")
    finite = sorted((x, y) for x, y in points if math.isfinite(y) and y > 0)
    if not finite:
        if not points:
            raise ValueError("points=[]: expected at least one (x, value) pair")
        best = min(points, key=lambda p: p[1])
        return best[0], best[1]
    best = min(finite, key=lambda p: p[1])
    xs = np.array([p[0] for p in finite])
    ys = np.log(np.array([p[1] for p in finite]))
    grid = np.linspace(xs.min(), xs.max(), max(2, int((xs.max() - xs.min()) / (bandwidth / 20)) + 1))
    w = np.exp(-0.5 * ((grid[:, None] - xs[None, :]) / bandwidth) ** 2)
    supported = w.max(axis=1) >= math.exp(-0.5)
    smooth = np.where(supported, (w @ ys) / w.sum(axis=1), np.inf)
    return float(grid[int(np.argmin(smooth))]), best[1]


def worse(y: float, best: float, ratio: float) -> bool:
    """``y`` is ``ratio`` times worse than ``best`` (lower is better): ``y >= ratio * best`` for a positive
    best, ``y >= best / ratio`` for a negative one (a negated maximised metric: accuracy 0.3 is 3x worse than
    0.9), never for a best of 0. Not finite ``y``: worse."""
    if not math.isfinite(y):
        return True
    if best > 0:
        return y >= ratio * best
    return best < 0 and y >= best / ratio


PICKS = ("parabola", "kernel")  # how the final pick is made from the trials at the comparison epoch


def cliff_cap(
    points: list[tuple[float, float]], ratio: float = CLIFF_RATIO, margin: float = CLIFF_MARGIN
) -> float | None:
    """The highest x a pick may take: ``margin`` decades below the cliff, the lowest x above the best
    point whose value is ``ratio`` times the best or worse (diverged included). None when no point
    above the best is that bad (the cliff was not seen). ValueError unless ``margin >= 0``.
    Why: docs/decisions.md, "The cliff guard"."""
    if not margin >= 0:
        raise ValueError(f"margin={margin}: expected >= 0")
    finite = [(x, y) for x, y in points if math.isfinite(y)]
    if not finite:
        return None
    bx, by = min(finite, key=lambda p: p[1])
    over = [x for x, y in points if x > bx and (not math.isfinite(y) or worse(y, by, ratio))]
    return min(over) - margin if over else None


def cliff_gap(points: list[tuple[float, float]], ratio: float = CLIFF_RATIO) -> tuple[float, float] | None:
    """Where the cliff lies as far as ``points`` tell: (a, b), b the lowest x above the best point whose
    value is ``ratio`` times the best or worse (diverged included, as in ``cliff_cap``), a the highest x
    tried below b. None when no such b was seen."""
    finite = [(x, y) for x, y in points if math.isfinite(y)]
    if not finite:
        return None
    bx, by = min(finite, key=lambda p: p[1])
    over = [x for x, y in points if x > bx and (not math.isfinite(y) or (by > 0 and y >= ratio * by))]
    if not over:
        return None
    b = min(over)
    return max(x for x, _ in points if x < b), b


def best_of_group(
    obs: list[Observation],
    reach: float = 1.0,
    pick: str = "parabola",
    bandwidth: float = 0.15,
    margin: float | None = CLIFF_MARGIN,
    ratio: float = CLIFF_RATIO,
) -> Pick:
    """The smooth minimum of one group's trials at their comparison epoch, kept ``margin`` decades below
    the divergence cliff (``cliff_cap`` with ``ratio``; None: not kept)."""
    if pick not in PICKS:
        raise ValueError(f"pick={pick!r}: expected one of {PICKS}")
    epoch = comparison_epoch(obs)
    if not epoch:
        return Pick(obs[0].group, obs[0].x, math.inf, epoch)
    pts = points_at(obs, epoch)
    x, value = smooth_minimum(pts, bandwidth) if pick == "kernel" else fit_minimum(pts, reach=reach)
    cap = (
        cliff_cap(pts + stopped_over_cliff(obs, epoch, ratio), ratio=ratio, margin=margin)
        if margin is not None
        else None
    )
    if cap is not None and x > cap:
        x = max(cap, min(p[0] for p in pts))
    return Pick(obs[0].group, x, value, epoch)


def stopped_over_cliff(obs: list[Observation], epoch: int, ratio: float = CLIFF_RATIO) -> list[tuple[float, float]]:
    """Trials stopped before ``epoch`` (by ASHA) are not compared there, but one that was ``ratio``
    times worse than the best trial at its own last epoch marks the cliff all the same: (x, inf) each."""
    ranked = [o for o in obs if o.reached(epoch) and math.isfinite(score(o, epoch))]
    if not ranked:
        return []
    best = min(ranked, key=lambda o: score(o, epoch))
    out = []
    for o in obs:
        e = len(o.curve)
        if o.done and not o.diverged and 0 < e < epoch and worse(score(o, e), score(best, e), ratio):
            out.append((o.x, math.inf))
    return out


def rank_groups(obs: list[Observation]) -> list[tuple[int, float]]:
    """Groups ordered best first by their best trial, compared at one epoch common to all groups."""
    by_group: dict[int, list[Observation]] = {}
    for o in obs:
        by_group.setdefault(o.group, []).append(o)
    epoch = min(comparison_epoch(v) for v in by_group.values())
    ranked = []
    for g, members in by_group.items():
        values = [y for _, y in points_at(members, epoch)] or [math.inf]
        ranked.append((g, min(values)))
    return sorted(ranked, key=lambda gv: (gv[1], gv[0]))
