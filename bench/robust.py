"""Re-judge the picks already in bench/results against the all-seed landscape mean (no training).

    .venv/bin/python -m bench.robust [--optimizer sgd] [--files peers_sgd_r3.csv regret_sgd_cliff.csv ...]

The 5 fresh seeds that ``regret.py`` and ``peers.py`` judge with put a dip of their own in the SGD valley
(bench/results/frontier_sgd.md); the mean over all 25 seeds of ``landscape_<optimizer>.csv`` does not.
For every row of the given CSVs (default: every peers_* and regret_* table of the optimizer) with a
``chosen lr``, the pick's regret against that mean (``yardstick.Landscape.judge``: at the nearest
recorded lr, at most 0.05 decade away), then per method: picks, mean FTE, mean and worst regret, within 5%.
Writes bench/results/robust_<optimizer>.md.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from bench.common import add_results_option, markdown_table, pct
from bench.yardstick import Landscape, path_for, spread


def judged_picks(land: Landscape, results: Path, names: list[str]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(file, method) -> [(FTE, regret %)] for every parabola pick of the named CSVs that the landscape
    can judge (rows without a chosen lr, other pick rules and picks off the landscape are left out)."""
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for name in names:
        with (results / name).open() as f:
            for r in csv.DictReader(f):
                if not r.get("chosen lr") or r["chosen lr"] == "none" or r.get("pick", "parabola") != "parabola":
                    continue
                regret = land.judge(float(r["chosen lr"]))
                if regret is None:
                    continue
                method = r.get("method") or "this project's sweep"
                by.setdefault((name, method), []).append((float(r["FTE"]), regret))
    return by


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--files", nargs="*", default=None)
    add_results_option(p)
    args = p.parse_args(argv)
    path = path_for(args.optimizer, args.results)
    if not path.exists():
        raise SystemExit(f"{path}: missing (run python -m bench.landscape first)")
    land = Landscape.load(path)
    names = args.files or sorted(
        f.name for f in args.results.glob("*.csv") if f.name.startswith(("peers_", f"regret_{args.optimizer}"))
    )
    if args.optimizer != "sgd":
        names = [n for n in names if not n.startswith("peers_")]  # the peers ran SGD only
    rows = []
    for (name, method), items in sorted(judged_picks(land, args.results, names).items()):
        s = spread(r for _, r in items)
        rows.append(
            [
                name,
                method,
                s.n,
                f"{statistics.fmean(f for f, _ in items):.2f}",
                ", ".join(f"{r:.1f}" for _, r in items),
                pct(s.mean),
                pct(s.worst),
                f"{s.hits} of {s.n}",
            ]
        )
    text = (
        f"# Picks re-judged against the 25-seed mean, digits_mlp {args.optimizer}\n\n"
        f"Regret of each stored pick against the mean final val_loss over all seeds of "
        f"landscape_{args.optimizer}.csv (nearest lr within 0.05 decade; picks farther from a recorded lr "
        f"are left out). Parabola picks only for regret_* tables.\n\n"
        + markdown_table(["file", "method", "picks", "mean FTE", "regrets %", "mean", "worst", "within 5%"], rows)
        + "\n"
    )
    print(text)
    (args.results / f"robust_{args.optimizer}.md").write_text(text)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
