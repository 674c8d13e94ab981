"""How well can ANY learning-rate search do on digits_mlp, however many full runs it spends?

    .venv/bin/python -m bench.frontier [--optimizer sgd|adam] [--low 1e-3] [--high 0.1] [--draws 200]

Replays the curves of ``bench/landscape.py`` (lrs every 1/15 decade x seeds). The reference is the
landscape's own 5 fresh seeds (1001..1005, final epoch, as ``regret.py`` judges); a search sees only the
other seeds. For lr grids of several spacings over [low, high] and k seeds per lr, drawn either as common
random numbers (every lr trained with the same k seeds) or independently (each lr its own k seeds, as the
sweep does now), a pick rule chooses one lr from the k-seed means of the 3-epoch-smoothed final loss:
``argmin`` (the best point) or ``kernel`` (Gaussian smoother in log lr, bandwidth 0.25 decade). The table
gives the hit rate (regret <= 5%) and mean regret over ``--draws`` random seed draws, and the cost in full
runs (FTE) -- a grid every 1/15 decade over [1e-3, 1e-1] alone costs 31 FTE per seed.
Also prints each lr's seed-to-seed spread and how alike one seed's errors are at nearby lrs.
Writes bench/results/frontier_<optimizer>.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from bench.common import add_results_option, markdown_table, pct
from bench.yardstick import Landscape, path_for, spread
from orchestrator import zoom

SMOOTH = 3


def smoothed_final(curve: list[float]) -> float:
    tail = curve[-SMOOTH:]
    return float(np.mean(tail)) if all(map(math.isfinite, tail)) else math.inf


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--low", type=float, default=1e-3)
    p.add_argument("--high", type=float, default=0.1)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--bandwidth", type=float, default=0.25)
    add_results_option(p)
    args = p.parse_args(argv)

    path = path_for(args.optimizer, args.results)
    try:
        land = Landscape.load(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    curves, lrs, seeds, fresh, search = land.curves, land.lrs, land.seeds, land.fresh, land.search
    if not fresh or len(search) < 3:
        raise SystemExit(f"{path.name}: expected seeds 1001..1005 and >= 3 others, got {seeds}")
    finals = land.finals
    scores = {(lr, s): smoothed_final(curves[(lr, s)]) for lr, s in curves}
    ref = land.mean["fresh"]
    best_i = int(np.argmin(ref))
    best = land.best("fresh")

    def regret(i: int) -> float:
        return land.regret_at(i, "fresh")

    lines = [
        f"# What any lr search can reach on digits_mlp {args.optimizer} (27 epochs)\n",
        f"Landscape: {len(lrs)} lrs ({lrs[0]:.3g}..{lrs[-1]:.3g}, 15 a decade) x seeds {seeds}. "
        f"Reference = mean final val_loss over seeds {fresh}: best {best:.4f} at lr {lrs[best_i]:.4g}. "
        f"Searches see seeds {search} only.\n",
    ]

    # 1. the landscape: reference regret and one seed's spread per lr
    x = np.log10(lrs)
    within = [lrs[i] for i in range(len(lrs)) if regret(i) <= 5]
    rows: list[list[Any]] = []
    for i, lr in enumerate(lrs):
        row = finals[i][np.isfinite(finals[i])]
        sd = 100 * np.std(row, ddof=1) / np.mean(row) if len(row) > 1 else float("nan")
        rows.append([f"{lr:.4g}", f"{ref[i]:.4f}", pct(regret(i)), f"{np.mean(row):.4f}", f"{sd:.0f}%"])
    lines += [
        "## The landscape\n",
        f"lrs within 5% of the best reference mean: {', '.join(f'{v:.4g}' for v in within)}.\n",
        markdown_table(
            [
                "lr",
                "reference mean (5 fresh seeds)",
                "regret",
                f"mean over all {len(seeds)} seeds",
                "one seed's sd, % of mean",
            ],
            rows,
        ),
        "",
    ]

    # 2. how alike one seed's errors are at nearby lrs (what common random numbers exploit)
    valley = [i for i in range(len(lrs)) if np.all(np.isfinite(finals[i])) and regret(i) <= 100]
    resid = finals - np.nanmean(finals, axis=1, keepdims=True)
    rows = []
    for lag in (1, 2, 4, 8):
        cs = [np.corrcoef(resid[i], resid[i + lag])[0, 1] for i in valley if i + lag in valley]
        rows.append([f"{lag / 15:.2f}", len(cs), f"{np.mean(cs):.2f}"])
    lines += [
        "## One seed at nearby lrs\n",
        "Correlation, across seeds, of a seed's deviation from the all-seed mean at two lrs that far apart "
        "(lrs within 100% of the best): near 1 means a seed is good or bad at every lr alike.\n",
        markdown_table(["decades apart", "pairs", "mean correlation"], rows),
        "",
    ]

    # 3. the frontier
    rng = np.random.default_rng(0)
    rows = []
    span = [i for i, lr in enumerate(lrs) if args.low * 0.999 <= lr <= args.high * 1.001]
    for step in (1, 2, 4):
        grid = span[::step]
        for k in (1, 2, 3):
            for mode in ("common", "independent"):
                for rule in ("argmin", "kernel"):
                    regs = []
                    for _ in range(args.draws):
                        if mode == "common":
                            chosen = [list(rng.choice(search, k, replace=False))] * len(grid)
                        else:
                            chosen = [list(rng.choice(search, k, replace=False)) for _ in grid]
                        means = [float(np.mean([scores[(lrs[i], s)] for s in ss])) for i, ss in zip(grid, chosen)]
                        pts = list(zip(x[grid], means))
                        if rule == "argmin":
                            pick = min(pts, key=lambda q: q[1])[0]
                        else:
                            pick, _ = zoom.smooth_minimum(pts, bandwidth=args.bandwidth)
                        regs.append(land.regret(pick, "fresh"))
                    s = spread(regs)
                    rows.append(
                        [
                            f"{step / 15:.2f}",
                            len(grid),
                            k,
                            len(grid) * k,
                            mode,
                            rule,
                            f"{s.hit_rate:.0%}",
                            pct(s.mean),
                            pct(s.median),
                        ]
                    )
    lines += [
        "## The frontier\n",
        f"Grids over [{args.low:g}, {args.high:g}], {args.draws} seed draws each; kernel bandwidth "
        f"{args.bandwidth} decade (`zoom.smooth_minimum`). FTE = full runs.\n",
        markdown_table(
            [
                "spacing (decades)",
                "lrs",
                "seeds per lr",
                "FTE",
                "seeds",
                "pick",
                "within 5%",
                "mean regret",
                "median regret",
            ],
            rows,
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (args.results / f"frontier_{args.optimizer}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
