"""Re-judge the picks already in bench/results against the 25-seed landscape mean (no training).

    .venv/bin/python bench/robust.py [--optimizer sgd] [--files peers_sgd_r3.csv regret_sgd_cliff.csv ...]

The 5 fresh seeds that ``regret.py`` and ``peers.py`` judge with put a dip of their own in the SGD valley
(bench/results/frontier_sgd.md); the mean over all 25 seeds of ``landscape_<optimizer>.csv`` does not.
For every row of the given CSVs (default: every peers_* and regret_* table of the optimizer) with a
``chosen lr``, the pick's regret against that mean (at the nearest recorded lr, at most 0.05 decade
away), then per method: picks, mean FTE, mean and worst regret, within 5%.
Writes bench/results/robust_<optimizer>.md.
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, markdown_table  # noqa: E402
from bench.regret import robust_reference  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--files", nargs="*", default=None)
    args = p.parse_args(argv)
    judge = robust_reference(args.optimizer)
    if judge is None:
        raise SystemExit(f"bench/results/landscape_{args.optimizer}.csv: missing (run bench/landscape.py first)")
    names = args.files or sorted(f.name for f in RESULTS.glob("*.csv")
                                 if f.name.startswith(("peers_", f"regret_{args.optimizer}")))
    if args.optimizer != "sgd":
        names = [n for n in names if not n.startswith("peers_")]  # the peers ran SGD only
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for name in names:
        with (RESULTS / name).open() as f:
            for r in csv.DictReader(f):
                if not r.get("chosen lr") or r["chosen lr"] == "none" or r.get("pick", "parabola") != "parabola":
                    continue
                text = judge(float(r["chosen lr"]))
                if text == "-":
                    continue
                method = r.get("method") or "this project's sweep"
                by.setdefault((name, method), []).append((float(r["FTE"]), float(text.rstrip("%"))))
    rows = []
    for (name, method), items in sorted(by.items()):
        regs = [r for _, r in items]
        rows.append([name, method, len(items), f"{statistics.fmean(f for f, _ in items):.2f}",
                     ", ".join(f"{r:.1f}" for r in regs), f"{statistics.fmean(regs):.1f}%", f"{max(regs):.1f}%",
                     f"{sum(r <= 5 for r in regs)} of {len(regs)}"])
    text = (f"# Picks re-judged against the 25-seed mean, digits_mlp {args.optimizer}\n\n"
            f"Regret of each stored pick against the mean final val_loss over all seeds of "
            f"landscape_{args.optimizer}.csv (nearest lr within 0.05 decade; picks farther from a recorded lr "
            f"are left out). Parabola picks only for regret_* tables.\n\n"
            + markdown_table(["file", "method", "picks", "mean FTE", "regrets %", "mean", "worst", "within 5%"], rows)
            + "\n")
    print(text)
    (RESULTS / f"robust_{args.optimizer}.md").write_text(text)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
