"""Pure zoom rules: given the results so far, the region to refine, the next round's points, and when to stop.
The comparisons they are made of (``Observation``, scores at equal epochs, the smooth minimum, the cliff) are in
``compare`` and re-exported here.

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
- trials are compared only with trials trained on the same fraction of the data (``same_data``): a coarse
  round on a fraction (``zoom.coarse_data``) plans round 1; later rounds and the final pick use the full-data
  trials; an epoch on a fraction f of the data costs f epochs (``epochs_spent``, ``budget_epochs``, ``max_cost``);
  with ``Rules.coarse_rounds`` > 1 the first rounds all train on the fraction (``Rules.data_for``);
- when the search would stop and no trial trained on all the data, one more round trains the pick on all of
  it (``Round.confirm``; not counted against ``max_rounds``), and the search stops after it;
- stop when the spacing falls under the resolution, a round improves less than the tolerance, or the
  round / epoch budget is spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from orchestrator.compare import (
    CLIFF_MARGIN,
    CLIFF_RATIO,
    PICKS,
    SMOOTH_EPOCHS,
    Observation,
    Pick,
    best_of_group,
    cliff_cap,
    cliff_gap,
    comparison_epoch,
    data_of,
    fit_minimum,
    points_at,
    rank_groups,
    same_data,
    score,
    smooth_minimum,
    stopped_over_cliff,
    stopped_over_cliff as _stopped_over_cliff,
    worse,
)

# the comparisons (``compare``) are re-exported: ``zoom.X`` is the one name callers use
__all__ = [
    "CLIFF_MARGIN",
    "CLIFF_RATIO",
    "CONFIRM",
    "FINAL_REACH",
    "HIGH_EDGE_STEP",
    "LOG_CEIL",
    "LOG_FLOOR",
    "PICKS",
    "SMOOTH_EPOCHS",
    "Observation",
    "Pick",
    "Refinement",
    "Round",
    "Rules",
    "Stop",
    "best_of_group",
    "choose",
    "cliff_cap",
    "cliff_gap",
    "coarse_round",
    "comparison_epoch",
    "data_of",
    "epochs_committed",
    "epochs_spent",
    "fit_minimum",
    "next_round",
    "points_at",
    "rank_groups",
    "refine",
    "refinements_left",
    "round_ready",
    "same_data",
    "score",
    "smooth_minimum",
    "stopped_over_cliff",
    "worse",
]

# Defaults of the ``Rules`` fields of the same names (lower case); set them per ``Rules``, not here
# (``CLIFF_RATIO``, ``CLIFF_MARGIN``: ``compare``'s).
LOG_FLOOR, LOG_CEIL = -10.0, 1.0  # never search learning rates outside 1e-10 .. 10
HIGH_EDGE_STEP = 0.5  # growing past the high edge, new points are this many spacings apart (low edge: 1)
FINAL_REACH = 0.5  # decades around the best point that the final pick's parabola uses


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
    budget_epochs: float | None = None  # epochs of cost (``epochs_spent``: an epoch on a fraction f counts f)
    groups: int = 1
    cliff_margin: float | None = CLIFF_MARGIN  # None: no cliff guard
    cliff_ratio: float = CLIFF_RATIO  # this many times worse than the best (or diverged): over the cliff
    high_edge_step: float = HIGH_EDGE_STEP  # spacings between new points grown past the high edge
    log_floor: float = LOG_FLOOR  # the range never grows below / above these (log10)
    log_ceil: float = LOG_CEIL
    cliff_probe: bool = True  # one refinement point halves a coarse gap below the cliff (``cliff_gap``)
    max_cost: float | None = None  # refinement inside the range stops at this many coarse grids' epochs
    coarse_data: float = 1.0  # the fraction of the training data the first ``coarse_rounds`` rounds train on
    coarse_rounds: int = 1  # rounds 0..coarse_rounds-1 train on ``coarse_data`` (``data_for``)

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
        if not 0 < self.coarse_data <= 1:
            raise ValueError(f"coarse_data={self.coarse_data}: expected a fraction in (0, 1]")
        if self.coarse_rounds < 1:
            raise ValueError(f"coarse_rounds={self.coarse_rounds}: expected >= 1")

    def data_for(self, index: int) -> float:
        """The fraction of the training data round ``index`` trains on: ``coarse_data`` for the first
        ``coarse_rounds`` rounds, all of it after them (a confirmation round, ``Round.confirm``, all of it
        whatever its index)."""
        return self.coarse_data if index < self.coarse_rounds else 1.0


@dataclass(frozen=True)
class Refinement:
    """One group's next bracket and points (``refine``)."""

    bracket: tuple[float, float]  # (centre, half-width) in decades
    points: tuple[float, ...]  # new x values, none within a tenth of the spacing of a tried one
    reason: str
    grows: bool  # the best point is on an edge of what was tried: the range grows past it


@dataclass(frozen=True)
class Round:
    """One round: where it looks, per group (centre, half-width in decades), and its new points.
    ``confirm``: the confirmation round (``next_round``): its one point, the pick made on a fraction of the
    data, trains on all of it whatever the round's index."""

    index: int
    points: tuple[tuple[int, float], ...]
    brackets: dict[int, tuple[float, float]] = field(default_factory=dict)  # group -> (centre, half-width)
    reason: str = ""
    confirm: bool = False


CONFIRM = "confirm the pick on all the data"  # the confirmation round's reason, after why the search stopped


@dataclass(frozen=True)
class Stop:
    reason: str


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


def refine(group: int, obs: list[Observation], spacing: float, rules: Rules, data: float = 1.0) -> Refinement:
    """Bracket and new points for one group (``obs``: that group's trials); ``data``: the fraction of the
    training data the new points train on (a point tried on that much data is not tried again)."""
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
    # a point is not tried again on the data it ran on: a point that ran on a fraction only (round 0 with
    # zoom.coarse_data) is tried again when the new points train on more
    full = [t for t in tried if any(o.data >= data - 1e-9 and abs(o.x - t) <= 1e-9 for o in obs)]
    fresh: list[float] = []
    for x in xs:
        x = min(max(x, rules.log_floor), rules.log_ceil)
        if all(abs(x - t) > spacing / 10 for t in full) and all(abs(x - f) > 1e-9 for f in fresh):
            fresh.append(x)
    return Refinement(bracket, tuple(fresh), why, grows)


def epochs_spent(obs: list[Observation]) -> float:
    """Epochs of cost the trials so far trained: each epoch weighted by the fraction of the training data the
    trial saw (``Observation.data``: an epoch on 20% of the data costs 0.2 epochs), so that the epoch budget
    (``Rules.budget_epochs``), ``Rules.max_cost`` and the FTE all count the data seen."""
    return sum(len(o.curve) * o.data for o in obs)


def epochs_committed(obs: list[Observation], max_epochs: int) -> float:
    """Epochs of cost the trials so far will have trained once they end, weighted by their data fraction as
    in ``epochs_spent``: a trial still running counts ``max_epochs``; one that ended (done, or diverged)
    counts the epochs it reported."""
    return sum((len(o.curve) if o.done or o.diverged else max(max_epochs, len(o.curve))) * o.data for o in obs)


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
    """The next round's points, or why the search stops. When it would stop with ``rules.coarse_data`` below 1
    and no trial trained on all the data yet, one more round instead (``Round.confirm``; ``max_rounds`` does not
    hold it back): one point, the pick ``choose`` makes, trained on all the data; the search stops after it."""
    if rounds and rounds[-1].confirm:
        why = rounds[-1].reason.removesuffix(f"; {CONFIRM}")
        return Stop(f"{why}; the pick was then trained on all the data (round {rounds[-1].index})")
    plan = _plan(rules, rounds, obs)
    if isinstance(plan, Round) or rules.coarse_data >= 1 or any(o.data >= 1 for o in obs):
        return plan
    if not any(o.curve for o in obs):
        return plan
    pick = choose(obs, margin=rules.cliff_margin, ratio=rules.cliff_ratio)
    return Round(len(rounds), ((pick.group, pick.x),), {}, f"{plan.reason}; {CONFIRM}", confirm=True)


def _plan(rules: Rules, rounds: list[Round], obs: list[Observation]) -> Round | Stop:
    """``next_round`` before the confirmation round: the next refinement round, or why the search stops."""
    k = len(rounds)
    if k >= rules.max_rounds:
        return Stop(f"round budget spent ({rules.max_rounds} rounds)")
    if rules.budget_epochs is not None and epochs_spent(obs) >= rules.budget_epochs:
        return Stop(f"epoch budget spent ({epochs_spent(obs):g} >= {rules.budget_epochs:g} epochs)")
    every, obs = obs, same_data(obs)  # after a round 0 on a fraction of the data: the full-data trials
    if k >= 2:
        prev = [o for o in obs if o.round < k - 1]
        epoch = comparison_epoch(obs)
        before = min((y for _, y in points_at(prev, epoch)), default=math.inf)
        after = min((y for _, y in points_at(obs, epoch)), default=math.inf)
        if math.isfinite(before) and before - after < rules.tolerance * abs(before):
            return Stop(f"round {k - 1} improved the best by less than {rules.tolerance:.1%} at epoch {epoch}")
    left = refinements_left(rules, rounds, every)
    capped = False
    ranked = rank_groups(obs)
    brackets: dict[int, tuple[float, float]] = {}
    points: list[tuple[int, float]] = []
    whys = []
    for g, _ in ranked[: rules.groups]:
        spacing = _spacing_of(rounds, rules, g)
        members = [o for o in obs if o.group == g]
        r = refine(g, members, spacing, rules, rules.data_for(k))
        if left is not None and not r.grows and len(r.points) > left:
            capped = True
            if left < 1:
                continue
            r = refine(g, members, spacing, replace(rules, points_per_round=left), rules.data_for(k))
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
    """The final pick: the best group's smooth minimum at the deepest epoch its trials reached together,
    among the trials trained on the most data (``same_data``)."""
    obs = same_data(obs)
    ranked = rank_groups(obs)
    # rank at the deepest common epoch of each group among the top groups, using finished trials
    g = ranked[0][0]
    members = [o for o in obs if o.group == g]
    # the final fit is local (FINAL_REACH decades): docs/decisions.md, "The final pick fits locally"
    return best_of_group(members, reach=FINAL_REACH, pick=pick, bandwidth=bandwidth, margin=margin, ratio=ratio)
