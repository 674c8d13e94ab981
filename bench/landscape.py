"""The loss landscape a learning-rate search walks on: full per-epoch validation curves of digits_mlp
at many learning rates x many seeds, in plain torch worker processes (no Ray).

    .venv/bin/python -m bench.landscape [--optimizer sgd|adam] [--seeds 0-5,1001-1005] [--per-decade 15]
                                        [--workload NAME --name LANDSCAPE] [--set KEY=YAML ...]

``--workload`` trains another built-in workload with the digits trial's other settings (batch 32, width 64,
depth 2), ``--set`` overrides any trial key (e.g. ``depth=0 momentum=0.0 batch_size=128``: a linear model,
plain SGD) and ``--name`` names its file. Writes bench/results/landscape_<name, default the optimizer>.csv
(lr, seed, epoch, val_loss; inf once diverged), which ``bench/yardstick.py`` reads and ``bench/simulate.py``
and ``bench/replay.py`` replay, and prints how noisy one seed is.
Rows already in the file are kept and not retrained (the run can be stopped and continued).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from bench.common import MAX_EPOCHS, OPTIMIZERS, add_results_option, digits_trial, read_yaml
from bench.yardstick import path_for, read
from orchestrator.space import log_grid


def _curve(config: dict) -> list[float]:
    import torch

    torch.set_num_threads(1)
    from orchestrator.trial import run_epochs

    history = run_epochs(config)
    curve = [float(r["val_loss"]) if not r.get("diverged") else math.inf for r in history]
    return curve + [math.inf] * (int(config["max_epochs"]) - len(curve))


def parse_seeds(text: str) -> list[int]:
    """ "0-5,1001-1005" -> [0, 1, 2, 3, 4, 5, 1001, ..., 1005]."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    p.add_argument("--low", type=float, default=1e-4)
    p.add_argument("--high", type=float, default=0.12)
    p.add_argument("--per-decade", type=float, default=15)
    p.add_argument("--seeds", default="0-5,1001-1005")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--epochs", type=int, default=MAX_EPOCHS, help="epochs a run (a landscape holds one value)")
    p.add_argument("--workload", default="digits_mlp", help="a built-in workload (default: %(default)s)")
    p.add_argument("--name", default=None, help="the landscape's name (default: the optimizer)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=YAML", help="override a trial config key")
    add_results_option(p)
    args = p.parse_args(argv)

    base = {**digits_trial(args.optimizer, args.epochs), "workload": args.workload}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or not key:
            p.error(f"--set {item!r}: expected KEY=YAML, e.g. momentum=0.0")
        base[key] = read_yaml(value)
    top = 10.0 ** max(0, math.ceil(math.log10(args.high)))  # whole decades from 1e-4: landscapes share lrs
    grid = log_grid(1e-4, top, args.per_decade)
    lrs = [lr for lr in grid if args.low * 0.999 <= lr <= args.high * 1.001]
    seeds = parse_seeds(args.seeds)
    path = path_for(args.name or args.optimizer, args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    have = read(path)
    todo = [(lr, s) for s in seeds for lr in lrs if (lr, s) not in have]
    print(f"{len(lrs)} lrs x {len(seeds)} seeds; {len(todo)} runs to do", flush=True)
    t0 = time.time()
    new = not path.exists()
    with path.open("a", newline="") as f, ProcessPoolExecutor(max_workers=args.workers) as pool:
        w = csv.writer(f)
        if new:
            w.writerow(["lr", "seed", "epoch", "val_loss"])
        configs = [{**base, "lr": lr, "seed": s, "seed_offset": 0} for lr, s in todo]
        for i, ((lr, s), curve) in enumerate(zip(todo, pool.map(_curve, configs, chunksize=1))):
            w.writerows([lr, s, e + 1, v] for e, v in enumerate(curve))
            f.flush()
            have[(lr, s)] = curve
            if i % 20 == 0:
                print(f"  {i + 1}/{len(todo)} runs, {time.time() - t0:.0f} s", flush=True)
    # one seed's noise at each lr: the spread of the final loss across seeds, as % of the mean
    print("lr | seeds | mean final | sd % of mean")
    for lr in lrs:
        finals = [have[(lr, s)][-1] for s in seeds if (lr, s) in have]
        if all(map(math.isfinite, finals)) and len(finals) > 1:
            m = statistics.fmean(finals)
            print(f"{lr:.4g} | {len(finals)} | {m:.4f} | {100 * statistics.stdev(finals) / m:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
