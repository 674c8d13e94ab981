"""Does the learning rate found on a data subset transfer to the full data? (issue #18, ``zoom.coarse_data``)

    .venv/bin/python -m bench.coarse_data [--landscapes sgd adam ...] [--fraction 0.2]

For every landscape ``landscape_<name>.csv`` with a sibling recorded on a fraction of the training data
(``landscape_<name>_f<fraction>.csv``: ``bench.landscape ... --set data_fraction=<fraction>``, the same trial
config and epochs), the optimum of each (the lr of the lowest all-seed mean final val_loss), how far the
subset's optimum lies from the full data's (decades, + = the subset wants a larger rate), the regret on the
full data of taking the subset's optimum as is (``Landscape.regret``), one seed's spread at each optimum (sd
of the final loss across seeds, % of the mean: what a one-seed search must see through) and how wide the
rates within 3% of the best are on each (decades). No training. Writes bench/results/coarse_data.md.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.common import add_results_option, markdown_table, pct, write_results
from bench.yardstick import Landscape, path_for

HEADER = [
    "landscape",
    "full data: best lr",
    "subset: best lr",
    "shift (decades)",
    "regret of the subset's best on full data",
    "one seed's sd at the best: full / subset",
    "rates within 3% of the best (decades): full / subset",
    "seeds: full / subset",
]


def optimum(land: Landscape) -> int:
    """Index of the lr with the lowest all-seed mean final value."""
    return int(np.argmin(land.mean["all"]))


def spread_at(land: Landscape, i: int) -> float:
    """One seed's sd of the final value at lr index ``i``, % of the mean (inf where a seed diverged)."""
    finals = land.finals[i]
    if not np.all(np.isfinite(finals)):
        return float("inf")
    return float(100 * np.std(finals, ddof=1) / np.mean(finals))


def width(land: Landscape, within: float = 0.03) -> float:
    """Decades spanned by the lrs whose all-seed mean is within ``within`` of the best."""
    mean = land.mean["all"]
    near = land.x[mean <= mean.min() * (1 + within)]
    return float(near.max() - near.min())


def row(name: str, full: Landscape, part: Landscape) -> list[str]:
    i, j = optimum(full), optimum(part)
    return [
        name,
        f"{full.lrs[i]:.3g}",
        f"{part.lrs[j]:.3g}",
        f"{part.x[j] - full.x[i]:+.2f}",
        pct(full.regret(float(part.x[j]))),
        f"{spread_at(full, i):.0f}% / {spread_at(part, j):.0f}%",
        f"{width(full):.2f} / {width(part):.2f}",
        f"{len(full.seeds)} / {len(part.seeds)}",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--landscapes",
        nargs="+",
        default=["sgd", "adam", "diabetes_sgd", "diabetes_linear", "digits_linear", "digits_cnn"],
    )
    p.add_argument("--fraction", type=float, default=0.2)
    add_results_option(p)
    args = p.parse_args(argv)
    rows, missing = [], []
    for name in args.landscapes:
        sub = path_for(f"{name}_f{args.fraction:g}", args.results)
        if not sub.exists() or not path_for(name, args.results).exists():
            missing.append(name)
            continue
        rows.append(row(name, Landscape.load(path_for(name, args.results)), Landscape.load(sub)))
    command = "python -m bench.coarse_data " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [h.replace("subset", f"{args.fraction:.0%} subset") for h in HEADER]
    text = (
        f"# The learning rate found on {args.fraction:.0%} of the training data, on the full data\n\n"
        f"Reproduce: `{command.strip()}` (no training: it reads landscape_<name>.csv and "
        f"landscape_<name>_f{args.fraction:g}.csv; how those are recorded: bench/README.md).\n\n"
        + markdown_table(header, rows)
        + ("\n\nNo subset landscape for: " + ", ".join(missing) if missing else "")
        + "\n"
    )
    print(text)
    write_results("coarse_data", text, header, rows, results=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
