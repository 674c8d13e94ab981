"""Pure zoom rules: given the results so far, the region to refine, the next round's points, and when to stop.

Everything here works on ``x = log10(value)`` of the zoomed parameter (the learning rate) and on
per-epoch metric curves (lower is better; ``inf`` for a diverged trial). No Ray import.

Rules, each a small function tested on analytic curves (tests/test_zoom.py):
- trials are compared at equal epochs (``comparison_epoch``): a trial stopped early is never compared
  as if it had finished;
- the region is centred on a smooth fit (a parabola in log space through the best point and its
  neighbours), not on the single best point, because one seed's noise is 20-33% of the loss;
- a best point on the edge of what was tried grows the range past that edge (in half steps past the
  high edge, where the divergence cliff lies), but never past ``log_floor .. log_ceil``: a best point on
  one of those is refined inside the range like an interior one;
- the centre and the pick keep ``cliff_margin`` decades below the cliff: the first rate above the best
  that did 3x worse or diverged (``cliff_cap``), since one lucky seed next to it can look best; when
  the cliff is known only to within a gap wider than half the spacing, one refinement point halves the
  gap (``cliff_gap``, ``Rules.cliff_probe``);
- with ``Rules.max_cost``, refinement inside the range stops at that many times the epochs of the coarse
  grid trained in full (``refinements_left``); growing past an edge is not held to it;
- stop when the spacing falls under the resolution, a round improves less than the tolerance, or the
  round / epoch budget is spent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

# Defaults of the ``Rules`` fields of the same names (lower case); set them per ``Rules``, not here.
LOG_FLOOR, LOG_CEIL = -10.0, 1.0  # never search learning rates outside 1e-10 .. 10
CLIFF_RATIO = 3.0  # a point this many times worse than the best (or diverged) is over the cliff
CLIFF_MARGIN = 1.0  # decades the refined centre and the pick keep below the cliff (see cliff_cap)
HIGH_EDGE_STEP = 0.5  # growing past the high edge, new points are this many spacings apart (low edge: 1)


@dataclass(frozen=True)
class Observation:
    """What is known of one trial: its group, log10 of its zoomed value, its round and metric curve."""

    group: int
    x: float
    round: int
    curve: tuple[float, ...] = ()
    done: bool = False

    @classmethod
    def of(cls, group: int, x: float, round: int, values: Iterable[float | None], done: bool = False) -> Observation:
        """The one way to build an Observation from reported metric values: each value that is not a
        finite number (None, NaN, +-inf: the trial diverged) becomes ``inf``."""
        curve = tuple(float(v) if v is not None and math.isfinite(v) else math.inf for v in values)
        return cls(group, x, round, curve, done)

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


@dataclass(frozen=True)
class Rules:
    low: float  # log10 bounds of the configured range
    high: float
    spacing: float  # decades between the coarse grid's points
    max_epochs: int
    max_rounds: int = 3
    points_per_round: int = 4
    resolution: float = 0.1
    tolerance: float = 0.0
    budget_epochs: float | None = None
    groups: int = 1
    cliff_margin: float | None = CLIFF_MARGIN  # None: no cliff guard
    cliff_ratio: float = CLIFF_RATIO  # this many times worse than the best (or diverged): over the cliff
    high_edge_step: float = HIGH_EDGE_STEP  # spacings between new points grown past the high edge
    log_floor: float = LOG_FLOOR  # the range never grows below / above these (log10)
    log_ceil: float = LOG_CEIL
    cliff_probe: bool = True  # one refinement point halves a coarse gap below the cliff (``cliff_gap``)
    max_cost: float | None = None  # refinement inside the range stops at this many coarse grids' epochs

    def __post_init__(self) -> None:
        if not self.high >= self.low:
            raise ValueError(f"high={self.high}: expected >= low={self.low}")
        if not self.spacing > 0:
            raise ValueError(f"spacing={self.spacing}: expected > 0")
        if self.points_per_round < 1:
            raise ValueError(f"points_per_round={self.points_per_round}: expected >= 1")
        if self.cliff_margin is not None and not self.cliff_margin >= 0:
            raise ValueError(f"cliff_margin={self.cliff_margin}: expected >= 0 or None")
        if not self.cliff_ratio > 1:
            raise ValueError(f"cliff_ratio={self.cliff_ratio}: expected > 1")
        if not self.high_edge_step > 0:
            raise ValueError(f"high_edge_step={self.high_edge_step}: expected > 0 (spacings)")
        if not self.log_floor < self.log_ceil:
            raise ValueError(f"log_floor={self.log_floor}: expected < log_ceil={self.log_ceil}")
        if self.max_cost is not None and not self.max_cost > 0:
            raise ValueError(f"max_cost={self.max_cost}: expected > 0 or None")


@dataclass(frozen=True)
class Refinement:
    """One group's next bracket and points (``refine``)."""

    bracket: tuple[float, float]  # (centre, half-width) in decades
    points: tuple[float, ...]  # new x values, none within a tenth of the spacing of a tried one
    reason: str
    grows: bool  # the best point is on an edge of what was tried: the range grows past it


@dataclass(frozen=True)
class Pick:
    """A group's smooth minimum (``best_of_group``) or the final pick (``choose``)."""

    group: int
    x: float  # log10 of the picked value
    value: float  # the best score measured at ``epoch`` (a trial's, not the fit's); inf when none
    epoch: int  # the comparison epoch; 0 when nothing was reported


@dataclass(frozen=True)
class Round:
    """One round: where it looks, per group (centre, half-width in decades), and its new points."""

    index: int
    points: tuple[tuple[int, float], ...]
    brackets: dict[int, tuple[float, float]] = field(default_factory=dict)  # group -> (centre, half-width)
    reason: str = ""


@dataclass(frozen=True)
class Stop:
    reason: str


# --- comparing trials ------------------------------------------------------------------------------
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


FINAL_REACH = 0.5  # decades around the best point that the final pick's parabola uses
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


def fit_minimum(points: list[tuple[float, float]], reach: float = 1.0, cliff: float = 3.0) -> tuple[float, float]:
    """Smooth estimate of the minimum's location: a parabola in log space, least squares weighted by
    1/value (relative errors), through the points within ``reach`` decades of the best one.
    Points above ``cliff`` times the best are off the valley (divergence side, or not training) and
    would drag the vertex away, so they are left out while 3 points remain.
    Falls back to the best point when the fit is not convex. The vertex stays within the fitted points.
    Returns (x, value): value is the best value measured, not the parabola's (which can undershoot)."""
    finite = sorted((x, y) for x, y in points if math.isfinite(y))
    if not finite:
        if not points:
            raise ValueError("points=[]: expected at least one (x, value) pair")
        return points[0][0], math.inf
    best = min(finite, key=lambda p: p[1])
    near = [p for p in finite if abs(p[0] - best[0]) <= reach + 1e-9]
    valley = [p for p in near if best[1] == 0 or not worse(p[1], best[1], cliff) or p[1] == cliff * best[1]]
    if len(valley) < 3:
        valley = sorted(near, key=lambda p: p[1])[:3]
    xs = np.array([p[0] for p in valley])
    ys = np.array([p[1] for p in valley])
    if len(set(xs.round(9))) < 3:
        return best
    a, b, _ = np.polyfit(xs, ys, 2, w=1.0 / np.maximum(np.abs(ys), 1e-12))
    if a <= 0:
        return best
    return float(np.clip(-b / (2 * a), xs.min(), xs.max())), best[1]


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
        cliff_cap(pts + _stopped_over_cliff(obs, epoch, ratio), ratio=ratio, margin=margin)
        if margin is not None
        else None
    )
    if cap is not None and x > cap:
        x = max(cap, min(p[0] for p in pts))
    return Pick(obs[0].group, x, value, epoch)


def _stopped_over_cliff(obs: list[Observation], epoch: int, ratio: float = CLIFF_RATIO) -> list[tuple[float, float]]:
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


# --- planning rounds -------------------------------------------------------------------------------
def coarse_round(rules: Rules, groups: int) -> Round:
    """Round 0: the configured log grid, crossed with every group, handed out middle-out.

    ASHA lets the first trial to reach a rung through (nothing to compare it with yet), so the first
    trials dispatched tend to get full runs: middle-out puts the range's middle first rather than an
    extreme such as 1e-6 that is almost surely wasted."""
    steps = max(0, round((rules.high - rules.low) / rules.spacing))
    xs = [rules.low + i * (rules.high - rules.low) / steps for i in range(steps + 1)] if steps else [rules.low]
    centre = (rules.low + rules.high) / 2
    xs.sort(key=lambda x: (abs(x - centre), x))
    points = tuple((g, x) for x in xs for g in range(groups))
    return Round(0, points, {g: (centre, (rules.high - rules.low) / 2) for g in range(groups)}, "coarse grid")


def round_ready(obs: list[Observation], round_index: int, decision_epoch: int) -> bool:
    """The next round can be planned once every trial of ``round_index`` reached the decision epoch
    (or ended). Rounds are lineage, not barriers: stragglers of this round may still run on."""
    members = [o for o in obs if o.round == round_index]
    return bool(members) and all(o.done or o.reached(decision_epoch) for o in members)


def _spacing_of(rounds: list[Round], rules: Rules, group: int) -> float:
    spacing = rules.spacing
    for r in rounds[1:]:
        if group in r.brackets:
            spacing = 2 * r.brackets[group][1] / (rules.points_per_round + 1)
    return spacing


def refine(group: int, obs: list[Observation], spacing: float, rules: Rules) -> Refinement:
    """Bracket and new points for one group (``obs``: that group's trials)."""
    best = best_of_group(obs, margin=rules.cliff_margin, ratio=rules.cliff_ratio)
    centre, epoch = best.x, best.epoch
    pts = [(x, y) for x, y in points_at(obs, epoch) if math.isfinite(y)]
    tried = sorted({round(o.x, 9) for o in obs})
    p = rules.points_per_round
    best_x = min(pts, key=lambda q: q[1])[0] if pts else centre
    at_low, at_high = best_x <= tried[0] + 1e-9, best_x >= tried[-1] - 1e-9
    # a best point on log_floor / log_ceil cannot grow the range: it is refined inside, like any other
    at_limit = (at_low and best_x <= rules.log_floor + 1e-9) or (at_high and best_x >= rules.log_ceil - 1e-9)
    grows = len(tried) > 1 and (at_low or at_high) and not at_limit
    if grows:
        d = -1.0 if at_low else 1.0
        # past the high edge lies the divergence cliff: half steps locate it closely enough for the
        # cliff guard (a whole decade found it at 10x the optimum, too far above to cap the pick)
        step = spacing * rules.high_edge_step if d > 0 else spacing
        outward = [best_x + d * step * i for i in range(1, (p + 1) // 2 + 1)]
        inward = [best_x - d * spacing / 2 * i for i in range(1, p // 2 + 1)]
        xs = outward + inward
        why = (
            f"best at the {'low' if at_low else 'high'} edge (10^{best_x:.2f}, epoch {epoch}): the range grows past it"
        )
        bracket = (best_x, step * ((p + 1) // 2))
    else:
        half = spacing
        xs = [centre - half + 2 * half * (i + 1) / (p + 1) for i in range(p)]
        why = f"smooth minimum at 10^{centre:.2f} (epoch {epoch}): refine +-{half:.2f} decades"
        if at_limit:
            side = ("lower", "above") if at_low else ("upper", "below")
            why = (
                f"best at 10^{best_x:.2f}, the zoom's {side[0]} limit (epoch {epoch}): the range cannot grow "
                f"past it; refine +-{half:.2f} decades {side[1]} it"
            )
        bracket = (centre, half)
    if rules.cliff_probe and rules.cliff_margin is not None and not grows and xs:
        # the cap is margin below the cliff, which lies somewhere in the gap (a, b]: a point halfway
        # moves the cap by up to half the gap, so it is spent only where that could move the centre
        # (docs/decisions.md, "The cliff probe")
        gap = cliff_gap(points_at(obs, epoch) + _stopped_over_cliff(obs, epoch, rules.cliff_ratio), rules.cliff_ratio)
        if (
            gap is not None
            and gap[1] - gap[0] > spacing / 2 + 1e-9
            and centre > (gap[0] + gap[1]) / 2 - rules.cliff_margin
        ):
            xs = sorted(xs)[:-1] + [(gap[0] + gap[1]) / 2]
            why += f"; one point halves the gap below the cliff at 10^{gap[1]:.2f}"
    fresh: list[float] = []
    for x in xs:
        x = min(max(x, rules.log_floor), rules.log_ceil)
        if all(abs(x - t) > spacing / 10 for t in tried) and all(abs(x - f) > 1e-9 for f in fresh):
            fresh.append(x)
    return Refinement(bracket, tuple(fresh), why, grows)


def epochs_spent(obs: list[Observation]) -> int:
    return sum(len(o.curve) for o in obs)


def epochs_committed(obs: list[Observation], max_epochs: int) -> int:
    """Epochs the trials so far will have trained once they end: a trial still running counts
    ``max_epochs``; one that ended (done, or diverged) counts the epochs it reported."""
    return sum(len(o.curve) if o.done or o.diverged else max(max_epochs, len(o.curve)) for o in obs)


def refinements_left(rules: Rules, rounds: list[Round], obs: list[Observation]) -> int | None:
    """How many full trials refinement inside the range may still add under ``rules.max_cost`` (None: no
    ceiling): the ceiling is max_cost x (the coarse grid's points + the points grown outside the range) x
    max_epochs, less ``epochs_committed``. Growing past an edge is not held to it: the grid would need
    those points too."""
    if rules.max_cost is None:
        return None
    outside = sum(1 for o in obs if not rules.low - 1e-9 <= o.x <= rules.high + 1e-9)
    ceiling = rules.max_cost * (len(rounds[0].points) + outside) * rules.max_epochs
    return max(0, int((ceiling - epochs_committed(obs, rules.max_epochs) + 1e-9) // rules.max_epochs))


def next_round(rules: Rules, rounds: list[Round], obs: list[Observation]) -> Round | Stop:
    """The next round's points, or why the search stops."""
    k = len(rounds)
    if k >= rules.max_rounds:
        return Stop(f"round budget spent ({rules.max_rounds} rounds)")
    if rules.budget_epochs is not None and epochs_spent(obs) >= rules.budget_epochs:
        return Stop(f"epoch budget spent ({epochs_spent(obs)} >= {rules.budget_epochs:g} epochs)")
    if k >= 2:
        prev = [o for o in obs if o.round < k - 1]
        epoch = comparison_epoch(obs)
        before = min((y for _, y in points_at(prev, epoch)), default=math.inf)
        after = min((y for _, y in points_at(obs, epoch)), default=math.inf)
        if math.isfinite(before) and before - after < rules.tolerance * abs(before):
            return Stop(f"round {k - 1} improved the best by less than {rules.tolerance:.1%} at epoch {epoch}")
    left = refinements_left(rules, rounds, obs)
    capped = False
    ranked = rank_groups(obs)
    brackets: dict[int, tuple[float, float]] = {}
    points: list[tuple[int, float]] = []
    whys = []
    for g, _ in ranked[: rules.groups]:
        spacing = _spacing_of(rounds, rules, g)
        members = [o for o in obs if o.group == g]
        r = refine(g, members, spacing, rules)
        if left is not None and not r.grows and len(r.points) > left:
            capped = True
            if left < 1:
                continue
            r = refine(g, members, spacing, replace(rules, points_per_round=left))
        if left is not None:
            left -= len(r.points)
        next_spacing = 2 * r.bracket[1] / (rules.points_per_round + 1)
        if next_spacing < rules.resolution and not r.grows:
            continue
        brackets[g] = r.bracket
        points += [(g, x) for x in r.points]
        whys.append(f"group {g}: {r.reason}")
    if not points and capped:
        return Stop(f"cost ceiling reached ({rules.max_cost:g} x the coarse grid's epochs)")
    if not points:
        return Stop(f"bracket narrower than the resolution ({rules.resolution:g} decades)")
    return Round(k, tuple(points), brackets, "; ".join(whys))


def choose(
    obs: list[Observation],
    pick: str = "parabola",
    bandwidth: float = 0.15,
    margin: float | None = CLIFF_MARGIN,
    ratio: float = CLIFF_RATIO,
) -> Pick:
    """The final pick: the best group's smooth minimum at the deepest epoch its trials reached together."""
    ranked = rank_groups(obs)
    # rank at the deepest common epoch of each group among the top groups, using finished trials
    g = ranked[0][0]
    members = [o for o in obs if o.group == g]
    # the final fit is local (FINAL_REACH decades): docs/decisions.md, "The final pick fits locally"
    return best_of_group(members, reach=FINAL_REACH, pick=pick, bandwidth=bandwidth, margin=margin, ratio=ratio)
