"""The search-quality table: every search replayed over recorded landscapes, judged by ``bench/yardstick.py``.

    .venv/bin/python -m bench.replay [--landscapes sgd adam] [--draws 300] [--tpe-draws 100]
                                     [--shifts 0 -0.2 -0.4 0.5] [--out replay]

Rows: landscape x coarse range x method. Ranges: the demo's grid 10^(-6+s)..10^(-1+s), one point a decade, at
shifts s = 0, -0.2, -0.4, +0.5, and a range that misses the landscape's optimum x* by a decade:
``miss low`` = x*-6 .. x*-1 (only where the landscape reaches x*-1) and ``miss high`` = x*+1 .. x*+6.
Methods (each trial its own search seed, drawn from the landscape's non-fresh seeds; 2 trials at a time):
  sweep, ...      this project's zoom (orchestrator/zoom.py) with the named Rules; round 0 under ASHA
                  (grace 9, rf 3, as examples/digits.yaml), later rounds run to the end; a round is planned
                  from curves cut at the decision epoch (9), the pick sees the full curves; "rules before
                  #18": cliff_probe off; "coarse round alone": max_rounds 1, the floor of the sweep's cost
  grid            Ray Tune grid, one point a decade over the range, full runs, pick = best final value
  grid + ASHA     the same under Ray's ASHAScheduler(grace_period=1, reduction_factor=3), pick = best trial
                  that completed
  two-stage       grid + ASHA, then 5 points at best x 10^(-0.5..0.5) under ASHA; best completed of both
  random          round(B) log-uniform lrs over the range, full runs; B = the default sweep's mean FTE on the row
  TPE + Hyperband Optuna's TPESampler (seeded per draw) + HyperbandPruner(1, max, 3), one trial at a time,
                  log10 lr uniform over the range, until B x max epochs are spent (``tpe_hyperband``; the
                  optuna package, the ``bench`` extra); ``--tpe-draws`` draws (ask/tell is slow)
  LR range test   not replayable (it needs per-batch losses at a growing lr): run for real, once per search
                  seed and range, on the landscape's trial config (``TRIALS``), 100 batches from 10**low to
                  10**(high+1) (bench.peers.lr_range_test); its two picks (min-loss lr / 10, steepest descent)
                  judged on the landscape; cached in results/range_test_<landscape>.csv
ASHA is replayed asynchronously as Ray runs it (``asha``): a trial reaching a rung is stopped when it is
worse than the 1/rf quantile of the values recorded there before it; the first trial at a rung goes on.
A trial's curve is the nearest recorded lr's, clamped to the recorded range. Columns: regret (%) of the pick
against the all-seed mean (``Landscape.regret``): mean, 90th percentile, worst over the draws (the range
test: over its seeds); mean FTE (epochs / max epochs); draws.
Writes bench/results/<out>.md and .csv.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.common import add_results_option, digits_trial, markdown_table, pct, write_results
from bench.simulate import replayed_curve
from bench.yardstick import Landscape, path_for, spread
from orchestrator import zoom

SLOTS = 2  # trials at a time, as on the 2-core bench machine
SWEEP_GRACE, SWEEP_RF = 9, 3.0  # examples/digits.yaml's asha
PEER_GRACE, PEER_RF = 1, 3.0  # bench/peers.py's ASHAScheduler


def milestones(grace: int, rf: float, max_t: int) -> list[int]:
    """Ray's ASHA rungs below ``max_t``: grace, grace*rf, ... (a trial at max_t ends anyway)."""
    out, m = [], float(grace)
    while m < max_t:
        out.append(int(m))
        m *= rf
    return out


def asha(curves: Sequence[Sequence[float]], grace: int, rf: float, max_t: int, slots: int = SLOTS) -> list[int]:
    """Epochs each trial runs under asynchronous ASHA, trials started in the given order ``slots`` at a time,
    one epoch per time step. A curve ends early where its trial diverged. At a rung a trial is stopped when
    its value is worse than the ``100/rf`` percentile of the values recorded there before it (Ray's rule,
    lower is better); the first trial to reach a rung always goes on."""
    rungs = {m: [] for m in milestones(grace, rf, max_t)}  # type: dict[int, list[float]]
    ran = [0] * len(curves)
    queue = list(range(len(curves)))
    running: list[int] = []
    while queue or running:
        while queue and len(running) < slots:
            running.append(queue.pop(0))
        for i in list(running):
            ran[i] += 1
            e, curve = ran[i], curves[i]
            if e >= min(max_t, len(curve)):
                running.remove(i)
                continue
            if e in rungs:
                value = curve[e - 1]
                seen = rungs[e]
                if seen and value > float(np.percentile(seen, 100 / rf)):
                    running.remove(i)
                seen.append(value)
    return ran


def best_completed(
    xs: Sequence[float], curves: Sequence[Sequence[float]], ran: Sequence[int], max_t: int
) -> float | None:
    """x of the best final value among trials that ran all ``max_t`` epochs (finite); None when none did."""
    done = [(c[max_t - 1], x) for x, c, e in zip(xs, curves, ran) if e >= max_t and math.isfinite(c[max_t - 1])]
    return min(done)[1] if done else None


@dataclass(frozen=True)
class Outcome:
    x: float | None  # log10 of the pick; None: no pick
    fte: float


Draw = Callable[[float], tuple[float, ...]]  # x -> a curve trained with a fresh draw of a search seed


def run_grid(xs: list[float], draw: Draw, max_t: int, use_asha: bool) -> tuple[Outcome, list, list, list]:
    curves = [draw(x) for x in xs]
    ran = asha(curves, PEER_GRACE, PEER_RF, max_t) if use_asha else [min(max_t, len(c)) for c in curves]
    return Outcome(best_completed(xs, curves, ran, max_t), sum(ran) / max_t), xs, curves, ran


def grid_points(low: float, high: float) -> list[float]:
    n = max(0, round(high - low))
    return [low + i for i in range(n + 1)]


def grid(low, high, draw, max_t, **_) -> Outcome:
    return run_grid(grid_points(low, high), draw, max_t, False)[0]


def grid_asha(low, high, draw, max_t, **_) -> Outcome:
    return run_grid(grid_points(low, high), draw, max_t, True)[0]


def two_stage(low, high, draw, max_t, **_) -> Outcome:
    first, xs, curves, ran = run_grid(grid_points(low, high), draw, max_t, True)
    if first.x is None:
        return first
    fine = [first.x - 0.5 + 0.25 * i for i in range(5)]
    second, xs2, curves2, ran2 = run_grid(fine, draw, max_t, True)
    x = best_completed(xs + xs2, curves + curves2, ran + ran2, max_t)
    return Outcome(x, first.fte + second.fte)


def random_search(low, high, draw, max_t, rng=None, budget=6.0, **_) -> Outcome:
    xs = [float(v) for v in rng.uniform(low, high, max(1, round(budget)))]
    return run_grid(xs, draw, max_t, False)[0]


def tpe_hyperband(low, high, draw, max_t, rng=None, budget=6.0, **_) -> Outcome:
    """Optuna TPE (default settings, seeded from ``rng``) + ``HyperbandPruner(1, max_t, 3)``, one trial at a
    time, as bench/peers.py runs it: a trial samples log10 lr uniformly over [low, high], reports its curve
    epoch by epoch (a diverged epoch as 1e9, and the trial ends there) and stops when the pruner says so;
    trials start until the epochs spent reach ``budget`` x ``max_t`` (the last one may overshoot it).
    Pick = the best final value among trials that ran all ``max_t`` epochs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="tpe-hyperband",  # Hyperband's brackets hash the name: a fixed one keeps the replay seeded
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=int(rng.integers(2**31))),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t, reduction_factor=3),
    )
    xs, curves, ran, spent = [], [], [], 0
    rungs = set(milestones(1, 3.0, max_t))  # every bracket's rungs: 1, 3, 9 for 27 epochs
    while spent < budget * max_t:
        trial = study.ask()
        x = trial.suggest_float("log10_lr", low, high)
        curve = draw(x)
        e, state = 0, optuna.trial.TrialState.COMPLETE
        for e in range(1, min(max_t, len(curve)) + 1):
            v = curve[e - 1]
            if e not in rungs and math.isfinite(v):
                continue  # the pruner acts at rung epochs only: reporting just there is the same study, faster
            trial.report(v if math.isfinite(v) else 1e9, e)
            if math.isfinite(v) and trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        spent += e
        xs.append(x)
        curves.append(curve)
        ran.append(e)
        final = curve[e - 1] if e == max_t and math.isfinite(curve[e - 1]) else 1e9
        if state == optuna.trial.TrialState.PRUNED:
            study.tell(trial, state=state)
        else:
            study.tell(trial, final)
    return Outcome(best_completed(xs, curves, ran, max_t), spent / max_t)


def sweep(low, high, draw, max_t, rules=None, subset=None, **_) -> Outcome:
    """This project's zoom with ``rules`` (a dict of ``zoom.Rules`` fields over the demo's, and the ``Subset``
    keys). With ``Rules.coarse_data`` below 1, a round on the subset (``Rules.data_for``; a confirmation round,
    ``Round.confirm``, trains on all the data) replays ``subset``, a draw on the landscape recorded at that
    fraction of the data (None: the row is not replayable)."""
    rules = dict(rules or {})
    how = Subset(**{k: rules.pop(k) for k in list(rules) if k in Subset.__dataclass_fields__})
    r = zoom.Rules(
        low=low,
        high=high,
        spacing=1.0,
        max_epochs=max_t,
        **{"max_rounds": 2, "points_per_round": 4, "resolution": 0.1, **rules},
    )
    rounds: list[zoom.Round] = []
    obs: list[zoom.Observation] = []
    plan: zoom.Round | zoom.Stop = zoom.coarse_round(r, 1)
    while isinstance(plan, zoom.Round):
        rounds.append(plan)
        data = 1.0 if plan.confirm else r.data_for(plan.index)
        source = subset if data < 1 and subset is not None else draw
        new = [zoom.Observation(0, x, plan.index, source(x), True, data) for _, x in plan.points]
        if plan.index == 0 and how.asha:
            ran = asha([o.curve for o in new], SWEEP_GRACE, SWEEP_RF, max_t)
            new = [replace(o, curve=o.curve[:e]) for o, e in zip(new, ran)]
        obs += new
        decide = how.decision_epoch or SWEEP_GRACE
        seen = [
            replace(o, curve=o.curve[:decide], done=len(o.curve) <= decide) if o.round == plan.index else o for o in obs
        ]
        plan = zoom.next_round(r, rounds, seen)
    # as the sweep does: the pick among the trials on the most data (``zoom.same_data``), FTE = data seen
    pick = zoom.choose(obs, margin=r.cliff_margin, ratio=r.cliff_ratio)
    return Outcome(pick.x, zoom.epochs_spent(obs) / max_t)


@dataclass(frozen=True)
class Subset:
    """How a replayed sweep runs round 0, besides its ``zoom.Rules``: ``asha``: under the sweep's ASHA (grace
    9, rf 3); ``decision_epoch``: the epoch a round's curves are cut at to plan the next (None: ASHA's grace)."""

    asha: bool = True
    decision_epoch: int | None = None


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., Outcome] | None  # None: not replayed; ``real`` names its pick among real runs' picks
    rules: dict = field(default_factory=dict)
    real: str = ""


SWEEPS = [
    Method("sweep, rules before #18", sweep, {"cliff_probe": False}),
    Method("sweep, default rules", sweep),
    Method("sweep, default + max_cost 1", sweep, {"max_cost": 1.0}),
    Method("sweep's coarse round alone", sweep, {"max_rounds": 1}),
]
SUBSET_FRACTION = 0.2  # the subset landscapes are recorded at this data fraction (bench/README.md)
SUBSET_SWEEPS = [
    # examples/digits_cheap.yaml: zoom.coarse_data 0.2, no ASHA, round 1 planned from full curves, 3 points
    Method(
        "sweep, coarse_data 0.2",
        sweep,
        {"coarse_data": SUBSET_FRACTION, "asha": False, "decision_epoch": 27, "points_per_round": 3},
    ),
    # examples/digits_subset.yaml: 3 rounds of 4 points on the subset, then the pick confirmed on all the data
    Method(
        "sweep, 3 rounds on 0.2 + confirm",
        sweep,
        {"coarse_data": SUBSET_FRACTION, "coarse_rounds": 3, "max_rounds": 3, "asha": False, "decision_epoch": 27},
    ),
]
BUDGET_FROM = "sweep, default rules"  # random search gets this row's mean FTE
PEERS = [
    Method("grid (1 a decade)", grid),
    Method("grid + ASHA", grid_asha),
    Method("two-stage grid + ASHA", two_stage),
    Method("random search (sweep's budget)", random_search),
    Method("Optuna TPE + Hyperband (sweep's budget)", tpe_hyperband),
    Method("LR range test, min/10 (real runs)", None, real="min10"),
    Method("LR range test, steepest (real runs)", None, real="steepest"),
]
# The trial config each landscape was recorded with (the bench/landscape.py commands in bench/README.md):
# the LR range test trains it for real, since a landscape holds no per-batch losses at a growing lr.
TRIALS: dict[str, dict] = {
    "sgd": digits_trial("sgd"),
    "adam": digits_trial("adam"),
    "diabetes_sgd": {**digits_trial("sgd"), "workload": "diabetes_regression"},
    "diabetes_linear": {
        **digits_trial("sgd"),
        "workload": "diabetes_regression",
        "depth": 0,
        "momentum": 0.0,
        "batch_size": 128,
    },
    "digits_linear": {**digits_trial("sgd"), "depth": 0, "momentum": 0.0, "batch_size": 128},
    "digits_cnn": {**digits_trial("sgd"), "workload": "digits_cnn"},
}
RANGE_TEST_ABOVE = 1.0  # decades the range test goes past the coarse range's top (peers.py: 1e-6..1 for 1e-6..1e-1)
TPE_DRAWS = 100  # Optuna's ask/tell costs ~0.3 s a replayed study: fewer draws than the other rows
RangeTests = dict[tuple[float, float], list[dict[str, float]]]  # (low, high) -> per seed {min10, steepest, fte}


def range_tests(
    name: str, land: Landscape, spans: Sequence[tuple[str, float, float]], max_t: int, results: Path
) -> RangeTests:
    """The LR range test (``bench.peers.lr_range_test``: 100 batches, lr from 10**low to
    10**(high + RANGE_TEST_ABOVE)) on landscape ``name``'s trial config, once per search seed and range;
    cached in ``results/range_test_<name>.csv`` (rows kept, only missing ones trained). Empty when ``name``
    has no entry in ``TRIALS``."""
    if name not in TRIALS:
        return {}
    from bench.peers import RANGE_TEST_BATCHES, lr_range_test

    path = Path(results) / f"range_test_{name}.csv"
    have: dict[tuple[float, float, int], dict[str, float]] = {}
    if path.exists():
        with path.open() as f:
            for r in csv.DictReader(f):
                key = (round(float(r["low"]), 6), round(float(r["high"]), 6), int(r["seed"]))
                have[key] = {k: float(r[k]) for k in ("min10", "steepest", "fte")}
    base = {**TRIALS[name], "max_epochs": max_t}
    out: RangeTests = {}
    for _, low, high in spans:
        picks = []
        for seed in land.search:
            key = (round(low, 6), round(high, 6), seed)
            if key not in have:
                min10, steepest, epochs, _, _ = lr_range_test(
                    seed, 0.0, RANGE_TEST_BATCHES, 10.0**low, 10.0 ** (high + RANGE_TEST_ABOVE), base=base
                )
                have[key] = {"min10": min10, "steepest": steepest, "fte": epochs / max_t}
            picks.append(have[key])
        out[(round(low, 6), round(high, 6))] = picks
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["low", "high", "seed", "min10", "steepest", "fte"])
        w.writerows([*k, v["min10"], v["steepest"], v["fte"]] for k, v in sorted(have.items()))
    return out


def ranges(land: Landscape, shifts: Sequence[float]) -> list[tuple[str, float, float]]:
    """(label, low, high) of the coarse ranges replayed on ``land``."""
    out = [(f"shift {s:+.1f}", -6 + s, -1 + s) for s in shifts]
    opt = float(land.x[int(np.argmin(land.mean["all"]))])
    if opt - 1 >= land.x[0]:
        out.append(("miss low (x*-6..x*-1)", opt - 6, opt - 1))
    out.append(("miss high (x*+1..x*+6)", opt + 1, opt + 6))
    return out


def table(
    land: Landscape,
    methods: Sequence[Method],
    shifts: Sequence[float],
    draws: int,
    max_t: int,
    seed: int = 0,
    tests: RangeTests | None = None,
    tpe_draws: int = TPE_DRAWS,
    subset: Landscape | None = None,
) -> list[list]:
    """Rows [range, method, mean, p90, worst regret (%), mean FTE, picks missing, n] for every range x method
    (methods in the given order; each replayed over the same ``draws`` seed draws, Optuna over the first
    ``tpe_draws`` of them; a real-run method over its picks in ``tests``, one per search seed, and left out
    where ``tests`` has none)."""
    rows = []
    for label, low, high in ranges(land, shifts):
        budget, found = 6.0, {}
        for m in sorted(methods, key=lambda m: m.name != BUDGET_FROM):  # the budget's row first
            rng = np.random.default_rng(seed)

            def draw(x: float, rng: np.random.Generator = rng) -> tuple[float, ...]:
                return replayed_curve(land, x, int(rng.choice(land.search)))

            def on_subset(
                x: float, rng: np.random.Generator = rng, sub: Landscape | None = subset
            ) -> tuple[float, ...]:
                assert sub is not None
                return replayed_curve(sub, x, int(rng.choice(sub.search)))

            if m.rules.get("coarse_data", 1.0) < 1 and subset is None:
                continue  # no landscape recorded on the subset

            if m.run is None:
                picks = (tests or {}).get((round(low, 6), round(high, 6)))
                if not picks:
                    continue
                outs = [Outcome(math.log10(p[m.real]), p["fte"]) for p in picks]
            else:
                n = min(draws, tpe_draws) if m.run is tpe_hyperband else draws
                outs = [
                    m.run(low, high, draw, max_t, rules=m.rules, rng=rng, budget=budget, subset=on_subset)
                    for _ in range(n)
                ]
            ftes = [o.fte for o in outs]
            if m.name == BUDGET_FROM:
                budget = float(np.mean(ftes))
            s = spread(math.inf if o.x is None else land.regret(o.x) for o in outs)
            found[m.name] = [
                label,
                m.name,
                s.mean,
                s.p90,
                s.worst,
                float(np.mean(ftes)),
                sum(o.x is None for o in outs),
                len(outs),
            ]
        rows += [found[m.name] for m in methods if m.name in found]
    return rows


WINDOWS = ((-1.0, 0.6), (-0.5, 0.3))  # decades around the optimum that the frontier's runs span
SPREADS = ((2, 1), (3, 1), (4, 1), (6, 1), (8, 1), (12, 1), (2, 2), (3, 2), (4, 2), (6, 2))  # (points, seeds each)


def frontier(land: Landscape, draws: int, seed: int = 0) -> list[list]:
    """What any search that trains full runs can reach, however it placed its points: ``n`` points evenly
    over x* + WINDOW (one point at the window's middle when n is 1), the window's position off by up to
    +-0.3 decade (uniform), ``k`` search seeds at each point (their mean curve), picked by the best point
    (argmin of the 3-epoch-smoothed final loss) or by ``zoom.fit_minimum`` over all of them. Costs n x k FTE.
    Rows [window, n, k, argmin mean, argmin p90, fit mean, fit p90] (regret %)."""
    opt = float(land.x[int(np.argmin(land.mean["all"]))])
    rows = []
    for lo, hi in WINDOWS:
        for n, k in SPREADS:
            rng = np.random.default_rng(seed)
            best, fit = [], []
            for _ in range(draws):
                off = rng.uniform(-0.3, 0.3)
                pts = []
                for x in np.linspace(opt + lo + off, opt + hi + off, n):
                    curves = [replayed_curve(land, float(x), int(rng.choice(land.search))) for _ in range(k)]
                    tail = [float(np.mean([c[-e] for c in curves])) for e in range(zoom.SMOOTH_EPOCHS, 0, -1)]
                    pts.append(
                        (
                            float(land.x[land.nearest(float(x))]),
                            float(np.mean(tail)) if all(map(math.isfinite, tail)) else math.inf,
                        )
                    )
                finite = [p for p in pts if math.isfinite(p[1])]
                best.append(land.regret(min(finite, key=lambda p: p[1])[0]) if finite else math.inf)
                fit.append(land.regret(zoom.fit_minimum(pts, reach=2.0)[0]))
            b, f = spread(best), spread(fit)
            rows.append([f"x* {lo:+.1f}..{hi:+.1f}", n, k, b.mean, b.p90, f.mean, f.p90])
    return rows


def by_cost(reach: Sequence[Sequence], sweep_rows: Sequence[Sequence]) -> list[str]:
    """Cells of the frontier by cost: for each cap in ``COSTS``, the lowest p90 (best point or fit) of the
    ``frontier`` rows whose n x k FTE is within it, then the range of the sweep's p90 over ``sweep_rows``
    (``table`` rows) with their FTE."""
    out = []
    for cap in COSTS:
        fits = [min(r[4], r[6]) for r in reach if r[1] * r[2] <= cap + 1e-9]
        out.append(pct(min(fits)) if fits else "-")
    p90s = [r[3] for r in sweep_rows if math.isfinite(r[3])]
    ftes = [r[5] for r in sweep_rows]
    out.append(f"{pct(min(p90s))} .. {pct(max(p90s))} ({min(ftes):.1f}-{max(ftes):.1f})" if p90s and ftes else "-")
    return out


def cells(row: list) -> list[str]:
    label, name, mean, p90, worst, fte, none, n = row
    return [label, name, pct(mean), pct(p90), pct(worst), f"{fte:.2f}", str(none), str(n)]


HEADER = ["landscape", "range", "method", "mean regret", "p90", "worst", "mean FTE", "no pick", "draws"]


GOALS_HEADER = [
    "landscape",
    "range",
    "sweep mean / p90 / FTE",
    "mean <= 1%",
    "p90 <= 3%",
    "FTE <= 4.5",
    "FTE <= grid's",
    "peers at <= its FTE with p90 <= its",
    "best p90 at <= 4.5 FTE",
    "best p90 at any cost",
]
GOAL_SWEEPS = (
    BUDGET_FROM,
    "sweep, coarse_data 0.2",
    "sweep, 3 rounds on 0.2 + confirm",
)  # the sweeps judged against the goals, each a table
COSTS = (2.0, 3.0, 4.5, 6.0, 8.0, 12.0)  # FTE caps of the frontier by cost


def goals(rows: Sequence[Sequence[str]], sweep: str = BUDGET_FROM) -> list[list[str]]:
    """Issue #18's goals per landscape x range, from the table's cells (``HEADER``): the ``sweep`` row's mean
    <= 1%, p90 <= 3%, FTE <= 4.5 and <= the per-decade grid's; the peers that cost no more and whose p90 is no
    worse (the sweep must beat each strictly); the lowest p90 of any method at <= 4.5 FTE and at any cost,
    with its FTE."""
    by: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {}
    for land, label, name, mean, p90, _, fte, *_ in rows:
        num = [float(v.rstrip("%")) for v in (mean, p90, fte)]
        by.setdefault((land, label), {})[name] = (num[0], num[1] if num[1] == num[1] else math.inf, num[2])
    out = []
    for (land, label), methods in by.items():
        if sweep not in methods:
            continue
        m, p, f = methods[sweep]
        grid_fte = methods.get("grid (1 a decade)", (0, 0, math.inf))[2]
        rivals = [
            f"{n.split(' (')[0]} {q:.1f}% @ {g:.2f}"
            for n, (_, q, g) in methods.items()
            if n != sweep and n in {x.name for x in PEERS} and g <= f and q <= p
        ]
        best = min(methods.items(), key=lambda kv: (kv[1][1], kv[1][2]))
        cheap = [kv for kv in methods.items() if kv[1][2] <= 4.5]
        best_cheap = min(cheap, key=lambda kv: (kv[1][1], kv[1][2])) if cheap else None
        out.append(
            [
                land,
                label,
                f"{m:.1f}% / {p:.1f}% / {f:.2f}",
                "yes" if m <= 1 else "no",
                "yes" if p <= 3 else "no",
                "yes" if f <= 4.5 else "no",
                "yes" if f <= grid_fte + 1e-9 else "no",
                "; ".join(rivals) or "none: the sweep wins",
                f"{best_cheap[0].split(' (')[0]} {best_cheap[1][1]:.1f}% @ {best_cheap[1][2]:.2f}"
                if best_cheap
                else "-",
                f"{best[0].split(' (')[0]} {best[1][1]:.1f}% @ {best[1][2]:.2f}",
            ]
        )
    return out


def summarize(results: Path, out: str) -> str:
    """The goals table (``goals``) of ``results/<out>.csv``, appended to ``results/<out>.md`` in place of any
    earlier one; returns it."""
    with (Path(results) / f"{out}.csv").open() as f:
        rows = list(csv.reader(f))[1:]
    part = "".join(
        f"\n## Issue #18's goals per row: {sweep} (`--summarize` rebuilds this from the CSV)\n\n"
        + markdown_table(GOALS_HEADER, goals(rows, sweep))
        + "\n"
        for sweep in GOAL_SWEEPS
        if any(r[2] == sweep for r in rows)
    )
    md = Path(results) / f"{out}.md"
    md.write_text(md.read_text().split("\n## Issue #18's goals")[0].rstrip("\n") + "\n" + part)
    return part


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--landscapes",
        nargs="+",
        default=["sgd", "adam"],
        help="landscape_<NAME>.csv files in the results folder (default: %(default)s)",
    )
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0, -0.2, -0.4, 0.5])
    p.add_argument("--max-epochs", type=int, default=27)
    p.add_argument(
        "--sweeps",
        choices=["all", "default"],
        default="all",
        help="replay every sweep variant, or the default rules only (default: %(default)s)",
    )
    p.add_argument("--tpe-draws", type=int, default=TPE_DRAWS, help="draws of the Optuna rows (default: %(default)s)")
    p.add_argument("--out", default="replay")
    p.add_argument("--summarize", action="store_true", help="no replay: rebuild the goals table from <out>.csv")
    add_results_option(p)
    args = p.parse_args(argv)
    if args.summarize:
        print(summarize(args.results, args.out))
        return 0
    out_rows, lands, reach_rows, cost_rows = [], [], [], []
    for name in args.landscapes:
        try:
            land = Landscape.load(path_for(name, args.results))
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        lands.append(
            f"{name}: {len(land.lrs)} lrs {land.lrs[0]:.3g}..{land.lrs[-1]:.3g} x {len(land.seeds)} seeds "
            f"({len(land.search)} search seeds), best mean {land.best():.4f} at "
            f"lr {land.lrs[int(np.argmin(land.mean['all']))]:.3g}"
        )
        tests = range_tests(name, land, ranges(land, args.shifts), args.max_epochs, args.results)
        sweeps = SWEEPS if args.sweeps == "all" else [m for m in SWEEPS if m.name == BUDGET_FROM]
        sub_path = path_for(f"{name}_f{SUBSET_FRACTION:g}", args.results)
        subset = Landscape.load(sub_path) if sub_path.exists() else None
        if subset is not None:
            sub_best = subset.lrs[int(np.argmin(subset.mean["all"]))]
            lands[-1] += f" (on {SUBSET_FRACTION:.0%} of the data: best mean at lr {sub_best:.3g})"
        rows = table(
            land,
            sweeps + SUBSET_SWEEPS + PEERS,
            args.shifts,
            args.draws,
            args.max_epochs,
            tests=tests,
            tpe_draws=args.tpe_draws,
            subset=subset,
        )
        for row in rows:
            out_rows.append([name, *cells(row)])
            print(" | ".join(out_rows[-1]), flush=True)
        reach = frontier(land, args.draws)
        for window, n, k, bm, bp, fm, fp in reach:
            reach_rows.append([name, window, n, k, n * k, pct(bm), pct(bp), pct(fm), pct(fp)])
        cost_rows.append([name, *by_cost(reach, [r for r in rows if r[1] == BUDGET_FROM])])
    command = "python -m bench.replay " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"# Search quality replayed over recorded landscapes ({args.draws} seed draws per row)\n\n"
        f"Reproduce: `{command.strip()}` (minutes; the LR range test rows train once, then read "
        f"results/range_test_<landscape>.csv). How each method is replayed and what is approximated: the "
        f"docstring of bench/replay.py.\n\n"
        f"Landscapes: {'; '.join(lands)}. A point outside a landscape's lrs replays its end lr's curves "
        f"(below the lowest lr that flatters the low side). Regret = (all-seed mean at the pick, interpolated "
        f"in log lr - best mean) / best mean (bench/yardstick.py).\n\n" + markdown_table(HEADER, out_rows) + "\n\n"
        "## What full runs placed around the optimum reach (``frontier``)\n\n"
        "n points evenly over a window around the optimum x* (its position off by up to 0.3 decade), k "
        "search seeds at each (their mean curve), n x k full runs; pick = the best point, or the parabola fit "
        "over all (`zoom.fit_minimum`). A search that does not know x* places its points no better.\n\n"
        + markdown_table(
            ["landscape", "window", "points", "seeds each", "FTE", "best point: mean", "p90", "fit: mean", "p90"],
            reach_rows,
        )
        + "\n\n## The frontier by cost\n\n"
        "The lowest p90 regret that full runs placed around the optimum reach at each cost (the table above, "
        "best of its windows, seed counts and picks, at no more FTE), next to the default sweep's p90 over "
        "its ranges (lowest .. highest, with its FTE).\n\n"
        + markdown_table(["landscape", *(f"<= {c:g} FTE" for c in COSTS), "sweep, default rules: p90 (FTE)"], cost_rows)
        + "\n"
    )
    print(text)
    write_results(args.out, text, HEADER, out_rows, results=args.results)
    print(summarize(args.results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
