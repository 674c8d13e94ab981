"""Regret of this project's sweep on digits_mlp against a dense reference grid (31 points, 5 seeds).

    .venv/bin/python -m bench.regret [--optimizer sgd|adam] [--repeats 3] [--shifts 0.0]

The sweep runs as a user would run it (embedded local Ray, examples/digits.yaml's settings), with the
coarse grid shifted by each of ``--shifts`` decades so that the optimum need not sit on a grid point. Its pick
is retrained on 5 fresh seeds; regret = (mean - best reference mean) / best reference mean.
The last column judges the pick against the landscape's all-seed mean instead (``bench/yardstick.py``;
"-" without a landscape or for a pick more than 0.05 decade from its lrs).
Writes bench/results/regret_<optimizer>.md and .csv.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    OPTIMIZERS,
    add_results_option,
    digits_trial,
    example,
    markdown_table,
    mean_loss,
    pct,
    reference_grid,
    regret,
    sweep_config as build_config,
    write_results,
)
from bench.yardstick import Landscape, path_for
from orchestrator.space import log_grid

REFERENCE_LRS = log_grid(1e-4, 1.0, 7.5)  # 31 points over 4 decades


def pick_lr(folder: Path, pick: str) -> float:
    """The lr a final-pick rule ("parabola", "kernel:BANDWIDTH") takes from a finished sweep's trials."""
    from orchestrator import analysis, results, zoom
    from orchestrator.space import nice

    meta = results.read_json(folder / results.ROUNDS)
    obs = analysis.observations(analysis.trial_curves(results.read_trials(folder), meta.get("metric", "val_loss")))
    name, _, bw = pick.partition(":")
    chosen = zoom.choose(obs, pick=name, bandwidth=float(bw) if bw else 0.15, margin=meta.get("cliff_margin"))
    return nice(10**chosen.x)


def robust_reference(optimizer: str, results: Path | None = None):
    """lr -> regret (%) against the mean final loss over every seed of landscape_<optimizer>.csv, or None
    for a pick more than 0.05 decade from a recorded lr (``yardstick.Landscape.judge``); None without a
    landscape."""
    path = path_for(optimizer) if results is None else path_for(optimizer, results)
    if not path.exists():
        return None
    return Landscape.load(path).judge


def sweep_config(optimizer: str, seed: int, shift: float, storage: str, overrides: Sequence[str] = ()):
    """examples/digits.yaml with ``overrides`` (KEY=YAML) applied, then the bench's seed, optimizer and a
    coarse grid 10^(-6+shift)..10^(-1+shift), one point a decade."""
    data = example(overrides)
    data["seed"] = seed
    data["space"] = {k: v for k, v in data["space"].items() if k not in ("optimizer", "momentum")}
    data["space"].update(OPTIMIZERS[optimizer])
    data["space"]["lr"] = {"log": [10 ** (-6 + shift), 10 ** (-1 + shift)], "per_decade": 1}
    name = f"bench-{optimizer}-s{seed}-shift{shift:.1f}".replace("-0.", "-m0.")
    return build_config(data, name, storage)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0])
    p.add_argument(
        "--picks",
        default="parabola,kernel:0.1,kernel:0.15",
        help="final-pick rules compared on the same sweeps (the first is the sweep's own)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=YAML",
        help="override a key of examples/digits.yaml, e.g. zoom.max_rounds=2 (repeatable)",
    )
    p.add_argument("--tag", default="", help="suffix of the results file names")
    p.add_argument("--first-seed", type=int, default=0, help="sweep seeds are first-seed .. first-seed+repeats-1")
    add_results_option(p)
    args = p.parse_args(argv)

    from cluster.connect import ray_session
    from orchestrator import tuning

    base = digits_trial(args.optimizer)
    t0 = time.time()
    ref = reference_grid(f"digits_{args.optimizer}", base, REFERENCE_LRS, results=args.results)
    best_lr, best = min(ref, key=lambda r: r[1])
    print(
        f"reference grid: {len(ref)} points x 5 seeds, best mean val_loss {best:.4f} at lr {best_lr:.3g} "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )

    robust = robust_reference(args.optimizer, args.results) or (lambda lr: None)
    rows, retrained = [], {}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as storage, ray_session(None):
        for shift in args.shifts:
            for seed in range(args.first_seed, args.first_seed + args.repeats):
                cfg = sweep_config(args.optimizer, seed, shift, storage, args.set)
                start = time.time()
                s = tuning.run(cfg, tuning.RunOptions(quiet=True))
                wall = time.time() - start
                for pick in args.picks.split(","):
                    lr = pick_lr(s.folder, pick)
                    if lr not in retrained:
                        retrained[lr] = mean_loss({**base, "lr": lr})
                    m = retrained[lr]
                    r = regret(m, best)
                    rr = robust(lr)
                    rows.append(
                        [
                            args.optimizer,
                            f"{shift:+.1f}",
                            seed,
                            pick,
                            f"{lr:.4g}",
                            f"{s.fte:.2f}",
                            s.epochs,
                            f"{wall:.0f}",
                            f"{m:.4f}",
                            pct(r),
                            "yes" if r <= 5 else "no",
                            "-" if rr is None else pct(rr),
                        ]
                    )
                    print(" | ".join(map(str, rows[-1])), flush=True)
    header = [
        "optimizer",
        "shift",
        "repeat",
        "pick",
        "chosen lr",
        "FTE",
        "epochs",
        "wall s",
        "5-seed mean",
        "regret",
        "within 5%",
        "regret vs 25-seed mean",
    ]
    table = markdown_table(header, rows)
    hits = {
        pick: f"{sum(r[-2] == 'yes' for r in rows if r[3] == pick)} of {sum(r[3] == pick for r in rows)}"
        for pick in args.picks.split(",")
    }
    text = (
        f"# Regret of sweep's pick, digits_mlp {args.optimizer}, 27 epochs\n\n"
        f"Reference: {len(ref)} lrs (1e-4..1), 5 fresh seeds; best mean {best:.4f} at lr {best_lr:.3g}.\n"
        f"Command: `python -m bench.regret {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
        f"{table}\n\nWithin 5%, per pick rule: " + ", ".join(f"{k}: {v}" for k, v in hits.items()) + ".\n"
    )
    print(text)
    write_results(f"regret_{args.optimizer}{args.tag}", text, header, rows, results=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
