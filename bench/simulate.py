"""Replay this project's zoom (the pure rules of orchestrator/zoom.py) over a recorded landscape, offline.

    .venv/bin/python -m bench.simulate [--optimizer sgd|adam] [--draws 300] [--shifts 0 -0.2 -0.4]

A real sweep + its 5-seed retraining takes minutes; a replay takes milliseconds, so pick rules and round
shapes can be compared over hundreds of seed draws before the real bench (``regret.py``) checks the
winner. Trials read their curves from ``landscape_<optimizer>.csv`` (``bench/landscape.py``): a point is
snapped to the nearest recorded lr (every 1/15 decade; clamped to the recorded range, whose ends are
already far off the optimum), and trained with a seed drawn from the non-fresh seeds, either one per
point (``independent``, as the sweep does) or one per sweep (``common``). Regret is judged against the
fresh seeds' mean, as in ``frontier.py``, and against the mean over every seed (``bench/yardstick.py``).

ASHA in round 0 is replayed as synchronous successive halving at the rungs (grace, grace x rf, ..., max):
the best 1/rf of the trials go on at each rung. The next round is planned from curves cut at the decision
epoch (as the real sweep sees them then); the final pick sees the full curves. Approximations, both:
the real ASHA is asynchronous and promotes more trials early on.
Writes bench/results/simulate_<optimizer>.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace

import numpy as np

from bench.common import add_results_option, markdown_table, pct
from bench.yardstick import Landscape, path_for, spread
from orchestrator import zoom


@dataclass(frozen=True)
class Variant:
    name: str
    pick: str = "parabola"
    bandwidth: float = 0.15
    seeds: str = "independent"
    max_rounds: int = 2
    points_per_round: int = 4
    grace: int = 9
    rf: float = 3.0
    margin: float | None = zoom.CLIFF_MARGIN
    high_edge_step: float = zoom.HIGH_EDGE_STEP


def replayed_curve(land: Landscape, x: float, seed: int) -> tuple[float, ...]:
    """The curve a trial at log10 lr ``x`` with ``seed`` reports: the nearest recorded lr's, ending at its
    first non-finite value (a diverged trial stops there)."""
    out = []
    for v in land.curves[(land.lrs[land.nearest(x)], seed)]:
        out.append(v if math.isfinite(v) else math.inf)
        if not math.isfinite(v):
            break
    return tuple(out)


def asha_round0(obs: list[zoom.Observation], grace: int, rf: float, max_epochs: int) -> list[zoom.Observation]:
    """Synchronous successive halving: at each rung keep the best ceil(n / rf) still running."""
    alive = list(range(len(obs)))
    cut = {i: max_epochs for i in alive}
    rung = grace
    while rung < max_epochs and len(alive) > 1:
        alive_ok = [i for i in alive if len(obs[i].curve) >= rung]
        ranked = sorted(alive_ok, key=lambda i: zoom.score(obs[i], rung))
        keep = ranked[: max(1, math.ceil(len(alive_ok) / rf))]
        for i in alive_ok:
            if i not in keep:
                cut[i] = rung
        alive = keep
        rung = int(rung * rf)
    return [replace(o, curve=o.curve[: cut[i]], done=True) for i, o in enumerate(obs)]


def replay(land: Landscape, v: Variant, low: float, high: float, max_epochs: int, rng) -> tuple[float, float]:
    """One sweep: (picked x, epochs spent)."""
    rules = zoom.Rules(
        low=low,
        high=high,
        spacing=1.0,
        max_epochs=max_epochs,
        max_rounds=v.max_rounds,
        points_per_round=v.points_per_round,
        resolution=0.1,
        cliff_margin=v.margin,
        high_edge_step=v.high_edge_step,
    )
    common = int(rng.choice(land.search))
    rounds: list[zoom.Round] = []
    obs: list[zoom.Observation] = []
    plan: zoom.Round | zoom.Stop = zoom.coarse_round(rules, 1)
    while isinstance(plan, zoom.Round):
        rounds.append(plan)
        seed = (lambda: common) if v.seeds == "common" else (lambda: int(rng.choice(land.search)))
        new = [zoom.Observation(0, x, plan.index, replayed_curve(land, x, seed()), True) for _, x in plan.points]
        if plan.index == 0:
            new = asha_round0(new, v.grace, v.rf, max_epochs)
        obs += new
        # plan the next round from what the sweep sees at the decision epoch
        seen = [
            replace(o, curve=o.curve[: v.grace], done=len(o.curve) <= v.grace) if o.round == plan.index else o
            for o in obs
        ]
        plan = zoom.next_round(rules, rounds, seen)
    x = zoom.choose(obs, pick=v.pick, bandwidth=v.bandwidth, margin=v.margin).x
    return x, zoom.epochs_spent(obs)


VARIANTS = [
    Variant("parabola pick, one seed a point, cliff margin 1.0 (default)"),
    Variant("no cliff guard, whole steps past the high edge", margin=None, high_edge_step=1.0),
    Variant("no cliff guard, half steps past the high edge", margin=None),
    Variant("cliff guard, whole steps past the high edge", high_edge_step=1.0),
    Variant("cliff margin 0.5", margin=0.5),
    Variant("cliff margin 0.8", margin=0.8),
    Variant("kernel 0.15", pick="kernel", bandwidth=0.15),
    Variant("kernel 0.25", pick="kernel", bandwidth=0.25),
    Variant("common seed, parabola", seeds="common"),
    Variant("common seed, kernel 0.25", seeds="common", pick="kernel", bandwidth=0.25),
    Variant("3 rounds", max_rounds=3),
    Variant("6 points a round", points_per_round=6),
    Variant("grace 3", grace=3),
    Variant("common seed, grace 3", seeds="common", grace=3),
    Variant("common seed, 6 points a round", seeds="common", points_per_round=6),
    Variant("common seed, 3 rounds", seeds="common", max_rounds=3),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0, -0.2, -0.4])
    p.add_argument("--variants", type=int, default=None, help="replay only the first N variants")
    add_results_option(p)
    args = p.parse_args(argv)
    try:
        land = Landscape.load(path_for(args.optimizer, args.results))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    rows = []
    for v in VARIANTS[: args.variants]:
        for shift in args.shifts:
            rng = np.random.default_rng(0)
            regs, robust, ftes = [], [], []
            for _ in range(args.draws):
                x, epochs = replay(land, v, -6 + shift, -1 + shift, 27, rng)
                regs.append(land.regret(x, "fresh"))
                robust.append(land.regret(x, "all"))
                ftes.append(epochs / 27)
            d, r = spread(regs), spread(robust)
            rows.append(
                [
                    v.name,
                    f"{shift:+.1f}",
                    f"{np.mean(ftes):.1f}",
                    f"{d.hit_rate:.0%}",
                    pct(d.mean),
                    pct(d.median),
                    pct(d.p90),
                    f"{r.hit_rate:.0%}",
                    pct(r.mean),
                    pct(r.p90),
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    text = (
        f"# The zoom replayed over landscape_{args.optimizer}.csv ({args.draws} seed draws per row)\n\n"
        f"Coarse grid 10^(-6+shift)..10^(-1+shift), 1 a decade, 27 epochs; see the docstring of "
        f"bench/simulate.py for what is approximated.\n\n"
        + f"Regret as defined (5 fresh seeds) and against the mean over all {len(land.fresh) + len(land.search)} "
        f"seeds of the landscape (robust).\n\n"
        + markdown_table(
            [
                "variant",
                "shift",
                "FTE",
                "within 5%",
                "mean regret",
                "median",
                "90th pct",
                "robust: within 5%",
                "robust mean",
                "robust 90th pct",
            ],
            rows,
        )
        + "\n"
    )
    print(text)
    (args.results / f"simulate_{args.optimizer}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
