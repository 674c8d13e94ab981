"""Regret of this project's sweep on digits_mlp against a dense reference grid (31 points, 5 seeds).

    .venv/bin/python bench/regret.py [--optimizer sgd|adam] [--repeats 3] [--shift 0.0]

The sweep runs as a user would run it (embedded local Ray, examples/digits.yaml's settings), with the
coarse grid shifted by ``--shift`` decades so that the optimum need not sit on a grid point. Its pick
is retrained on 5 fresh seeds; regret = (mean - best reference mean) / best reference mean.
Writes bench/results/regret_<optimizer>.md and .csv.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, markdown_table, mean_loss, reference_grid, regret, write_results  # noqa: E402
from orchestrator import config as config_mod  # noqa: E402
from orchestrator.space import log_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_LRS = log_grid(1e-4, 1.0, 7.5)  # 31 points over 4 decades

WORKLOADS = {
    "sgd": {"optimizer": "sgd", "momentum": 0.9},
    "adam": {"optimizer": "adam"},
}


def pick_lr(folder: Path, pick: str) -> float:
    """The lr a final-pick rule ("parabola", "kernel:BANDWIDTH") takes from a finished sweep's trials."""
    from orchestrator import analysis, results, zoom
    from orchestrator.space import nice

    meta = results.read_json(folder / results.ROUNDS)
    obs = analysis.observations(analysis.trial_curves(results.read_trials(folder), meta.get("metric", "val_loss")))
    name, _, bw = pick.partition(":")
    chosen = zoom.choose(obs, pick=name, bandwidth=float(bw) if bw else 0.15, margin=meta.get("cliff_margin"))
    return nice(10**chosen.x)


def robust_reference(optimizer: str):
    """lr -> regret (%) against the mean final loss over every seed of landscape_<optimizer>.csv (25 seeds
    where bench/landscape.py was run so): a yardstick that the 5 fresh seeds' own dips do not move. The
    pick is judged at the nearest recorded lr (1/15 decade apart); None without a landscape."""
    import numpy as np

    from bench.landscape import read

    path = RESULTS / f"landscape_{optimizer}.csv"
    if not path.exists():
        return None
    curves = read(path)
    lrs = sorted({lr for lr, _ in curves})
    seeds = sorted({s for _, s in curves})
    means = np.array([np.mean([curves[(lr, s)][-1] for s in seeds]) for lr in lrs])
    xs = np.log10(lrs)

    def robust(lr: float) -> str:
        i = int(np.argmin(np.abs(xs - math.log10(lr))))
        if abs(xs[i] - math.log10(lr)) > 0.05:
            return "-"
        return f"{100 * (means[i] - means.min()) / means.min():.1f}%"
    return robust


def sweep_config(optimizer: str, seed: int, shift: float, storage: str,
                 overrides: list[str] = ()) -> config_mod.SweepConfig:
    data = config_mod.yaml.load((ROOT / "examples" / "digits.yaml").read_text(), Loader=config_mod._Loader)
    for item in overrides:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[last] = config_mod.yaml.load(value, Loader=config_mod._Loader)
    data["name"] = f"bench-{optimizer}-s{seed}-shift{shift:.1f}".replace("-0.", "-m0.")
    data["seed"] = seed
    data["storage"] = storage
    data["space"] = {k: v for k, v in data["space"].items() if k not in ("optimizer", "momentum")}
    data["space"].update(WORKLOADS[optimizer])
    data["space"]["lr"] = {"log": [10 ** (-6 + shift), 10 ** (-1 + shift)], "per_decade": 1}
    return config_mod.parse(data, "bench")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", choices=sorted(WORKLOADS), default="sgd")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0])
    p.add_argument("--picks", default="parabola,kernel:0.1,kernel:0.15",
                   help="final-pick rules compared on the same sweeps (the first is the sweep's own)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="override a key of examples/digits.yaml, e.g. zoom.max_rounds=2 (repeatable)")
    p.add_argument("--tag", default="", help="suffix of the results file names")
    p.add_argument("--first-seed", type=int, default=0, help="sweep seeds are first-seed .. first-seed+repeats-1")
    args = p.parse_args(argv)

    from cluster.connect import ray_session
    from orchestrator import tuning

    base = {"workload": "digits_mlp", "max_epochs": 27, "batch_size": 32, "width": 64, "depth": 2,
            **WORKLOADS[args.optimizer]}
    t0 = time.time()
    ref = reference_grid(f"digits_{args.optimizer}", base, REFERENCE_LRS)
    best_lr, best = min(ref, key=lambda r: r[1])
    print(f"reference grid: {len(ref)} points x 5 seeds, best mean val_loss {best:.4f} at lr {best_lr:.3g} "
          f"({time.time() - t0:.0f} s)", flush=True)

    robust = robust_reference(args.optimizer) or (lambda lr: "-")
    rows, retrained = [], {}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as storage, ray_session(None):
        for shift in args.shifts:
            for seed in range(args.first_seed, args.first_seed + args.repeats):
                cfg = sweep_config(args.optimizer, seed, shift, storage, args.set)
                start = time.time()
                s = tuning.run(cfg, quiet=True)
                wall = time.time() - start
                for pick in args.picks.split(","):
                    lr = pick_lr(s.folder, pick)
                    if lr not in retrained:
                        retrained[lr] = mean_loss({**base, "lr": lr})
                    m = retrained[lr]
                    r = regret(m, best)
                    rows.append([args.optimizer, f"{shift:+.1f}", seed, pick, f"{lr:.4g}", f"{s.fte:.2f}", s.epochs,
                                 f"{wall:.0f}", f"{m:.4f}", f"{r:.1f}%", "yes" if r <= 5 else "no", robust(lr)])
                    print(" | ".join(map(str, rows[-1])), flush=True)
    header = ["optimizer", "shift", "repeat", "pick", "chosen lr", "FTE", "epochs", "wall s", "5-seed mean",
              "regret", "within 5%", "regret vs 25-seed mean"]
    table = markdown_table(header, rows)
    hits = {pick: f"{sum(r[-2] == 'yes' for r in rows if r[3] == pick)} of {sum(r[3] == pick for r in rows)}"
            for pick in args.picks.split(",")}
    text = (f"# Regret of sweep's pick, digits_mlp {args.optimizer}, 27 epochs\n\n"
            f"Reference: {len(ref)} lrs (1e-4..1), 5 fresh seeds; best mean {best:.4f} at lr {best_lr:.3g}.\n"
            f"Command: `python bench/regret.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
            f"{table}\n\nWithin 5%, per pick rule: "
            + ", ".join(f"{k}: {v}" for k, v in hits.items()) + ".\n")
    print(text)
    write_results(f"regret_{args.optimizer}{args.tag}", text, header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
