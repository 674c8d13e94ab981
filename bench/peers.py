"""Peers on the sweep's own workload: which learning rate does each pick, at what cost, with what regret.

    .venv/bin/python -m bench.peers [--repeats 1] [--shifts 0.0 ...] [--methods grid asha ...] [--budget-fte F]

Workload: digits_mlp, SGD momentum 0.9, batch 32, width 64, depth 2, 27 epochs (bench/regret.py's).
Each method searches with seed ``repeat`` and picks one lr; the pick is retrained on the 5 fresh seeds of
bench/common.py and compared with the dense reference grid (regret, within 5%).

Methods (``--methods``; all by default):
  grid        Ray Tune grid over 6 decades (1e-6..1e-1, one point a decade), no early stopping
  asha        the same grid + Ray's ASHAScheduler(grace_period=1, reduction_factor=3)
  two_stage   stage 1 = ``asha``; barrier; stage 2 = 5 points log-spaced +-0.5 decade around the stage-1
              best, with ASHA; the pick is the best completed trial of both stages
  optuna      Optuna TPE (default settings, seeded) + HyperbandPruner(1, 27, 3), in-process, log-uniform
              1e-6..1e-1, until the epochs spent reach the budget (the last trial may overshoot it)
  random      random log-uniform lrs over 1e-6..1e-1, full runs, round(budget) of them, on Ray Tune
  range_test  one LR range test run (lr x exp per batch, 1e-6 -> 1, 100 batches, EMA 0.98 as fastai);
              two rows: pick = min-loss lr / 10, and pick = steepest descent of the smoothed loss
The budget (``--budget-fte``) defaults to the mean FTE of this project's sweep in results/regret_sgd.csv.
``--shifts s``: every grid and range is multiplied by 10**s.

Ray Tune peers: ``tune.Tuner(tune.with_resources(train_trial, {"cpu": 1}))``, metric val_loss/min,
time_attr epoch, reuse_actors=True, storage in a temp dir, one embedded Ray session for the whole run.
Pick = the best final val_loss among trials that completed all 27 epochs.
Writes results/peers_sgd.md, results/peers_sgd.csv and results/regret_vs_cost.png (``--tag T``: peers_sgdT.md,
...). ``--replot`` rebuilds the plot and the sweep part of the Markdown from the CSVs, without running.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from bench.common import (
    MAX_EPOCHS,
    RESULTS,
    add_results_option,
    digits_trial,
    markdown_table,
    mean_loss,
    parse_pct,
    pct,
    reference_grid,
    regret,
    write_results,
)
from bench.regret import REFERENCE_LRS

BASE = digits_trial("sgd")
METHODS = ["grid", "asha", "two_stage", "optuna", "random", "range_test"]
LABELS = {
    "grid": "Ray Tune grid",
    "asha": "Ray Tune grid + ASHA(gp=1)",
    "two_stage": "two-stage grid, ASHA",
    "optuna": "Optuna TPE + Hyperband",
    "random": "random search (full runs)",
    "range_test_min10": "LR range test (min/10)",
    "range_test_steepest": "LR range test (steepest)",
}
RANGE_TEST_BATCHES = 100


# ---------------------------------------------------------------------------------------------- Ray Tune
def tune_fit(name: str, lrs: list[float], seed: int, asha: bool, storage: str) -> dict:
    """Run a grid of lrs on Ray Tune; return trials [(lr, epochs, final val_loss)] and the wall time."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from orchestrator.trial import train_trial

    scheduler = ASHAScheduler(time_attr="epoch", max_t=MAX_EPOCHS, grace_period=1, reduction_factor=3) if asha else None
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1}),
        param_space={**BASE, "seed": seed, "_cpus": 1, "lr": tune.grid_search(list(lrs))},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    )
    start = time.time()
    grid = tuner.fit()
    wall = time.time() - start
    trials = []
    for r in grid:  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
        m = r.metrics or {}
        trials.append((float(r.config["lr"]), int(m.get("epoch", 0)), float(m.get("val_loss", math.inf))))
    return {"trials": trials, "wall": wall}


def best_completed(trials: list[tuple[float, int, float]]) -> float | None:
    done = [t for t in trials if t[1] >= MAX_EPOCHS and math.isfinite(t[2])]
    return min(done, key=lambda t: t[2])[0] if done else None


def coarse_grid(shift: float) -> list[float]:
    return [10.0 ** (e + shift) for e in range(-6, 0)]


def run_grid(seed, shift, storage, asha):
    out = tune_fit(f"{'asha' if asha else 'grid'}-s{seed}-{shift:+.1f}", coarse_grid(shift), seed, asha, storage)
    return {
        "lr": best_completed(out["trials"]),
        "epochs": sum(t[1] for t in out["trials"]),
        "trials": len(out["trials"]),
        "wall": out["wall"],
        "note": "",
    }


def run_two_stage(seed, shift, storage):
    s1 = tune_fit(f"two1-s{seed}-{shift:+.1f}", coarse_grid(shift), seed, True, storage)
    centre = best_completed(s1["trials"])
    if centre is None:
        return {
            "lr": None,
            "epochs": sum(t[1] for t in s1["trials"]),
            "trials": len(s1["trials"]),
            "wall": s1["wall"],
            "note": "no stage-1 trial completed",
        }
    fine = [centre * 10.0 ** (-0.5 + 0.25 * i) for i in range(5)]
    s2 = tune_fit(f"two2-s{seed}-{shift:+.1f}", fine, seed, True, storage)
    trials = s1["trials"] + s2["trials"]
    return {
        "lr": best_completed(trials),
        "epochs": sum(t[1] for t in trials),
        "trials": len(trials),
        "wall": s1["wall"] + s2["wall"],
        "note": f"stage-1 best {centre:.3g}",
    }


def run_random(seed, shift, storage, budget_fte):
    import numpy as np

    n = max(1, round(budget_fte))
    rng = np.random.default_rng(seed)
    lrs = [float(10.0 ** (x + shift)) for x in rng.uniform(-6, -1, n)]
    out = tune_fit(f"random-s{seed}-{shift:+.1f}", lrs, seed, False, storage)
    return {
        "lr": best_completed(out["trials"]),
        "epochs": sum(t[1] for t in out["trials"]),
        "trials": len(out["trials"]),
        "wall": out["wall"],
        "note": f"{n} runs",
    }


# ------------------------------------------------------------------------------------------------ Optuna
def run_optuna(seed, shift, budget_fte):
    import optuna
    import torch

    from orchestrator.trial import run_epochs

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = budget_fte * MAX_EPOCHS
    spent = [0]

    def objective(trial):
        lr = trial.suggest_float("lr", 10.0 ** (-6 + shift), 10.0 ** (-1 + shift), log=True)

        def report(metrics, _save):
            spent[0] += 1
            v = metrics["val_loss"]
            trial.report(v if math.isfinite(v) else 1e9, metrics["epoch"])
            if math.isfinite(v) and trial.should_prune():
                raise optuna.TrialPruned()

        history = run_epochs({**BASE, "seed": seed, "lr": lr}, report)
        v = history[-1]["val_loss"]
        return v if math.isfinite(v) and len(history) == MAX_EPOCHS else 1e9  # diverged: worst, not a failure

    def stop(study, _trial):
        if spent[0] >= budget:
            study.stop()

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=3),
    )
    start = time.time()
    study.optimize(objective, callbacks=[stop])
    wall = time.time() - start
    done = [
        (t.value, t.params["lr"])
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None and t.value < 1e9
    ]
    lr = min(done)[1] if done else None
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {
        "lr": lr,
        "epochs": spent[0],
        "trials": len(study.trials),
        "wall": wall,
        "note": f"{pruned} pruned, {len(done)} completed; serial (1 process)",
    }


# -------------------------------------------------------------------------------------------- range test
def lr_range_test(seed, shift, batches=RANGE_TEST_BATCHES, lo=1e-6, hi=1.0, beta=0.98, base=None):
    """Smith's LR range test with fastai's defaults (100 batches, EMA beta 0.98, stop when the smoothed loss
    exceeds 4x its minimum): lr grows exponentially per batch from lo x 10**shift to hi x 10**shift, training
    the trial config ``base`` (default: this bench's digits SGD trial) with ``seed``.
    Returns (lr at min loss / 10, lr at steepest descent, epochs spent, wall, batches run)."""
    import numpy as np
    import torch

    from orchestrator import workloads
    from orchestrator.optimizers import make_optimizer
    from orchestrator.trial import batches as make_batches

    torch.set_num_threads(1)
    base = BASE if base is None else base
    lo, hi = lo * 10.0**shift, hi * 10.0**shift
    start = time.time()
    torch.manual_seed(seed)
    wl = workloads.build(base["workload"], {**base, "seed": seed})
    model = wl.model
    opt = make_optimizer({**base, "lr": lo}, model.parameters())
    gen = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(cast(Sized, wl.train)) / base["batch_size"])
    lrs, smooth = [], []
    avg, best, i = 0.0, math.inf, 0
    model.train()
    while i < batches:
        for x, y in make_batches(wl.train, base["batch_size"], shuffle=True, generator=gen):
            if i >= batches:
                break
            lr = lo * (hi / lo) ** (i / (batches - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = wl.loss(model(x), y)
            i += 1
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
            avg = beta * avg + (1 - beta) * loss.item()
            s = avg / (1 - beta**i)
            lrs.append(lr)
            smooth.append(s)
            best = min(best, s)
            if s > 4 * best:  # diverging: stop, as fastai does
                break
        else:
            continue
        break
    wall = time.time() - start
    lrs_a, sm = np.array(lrs), np.array(smooth)
    min10 = float(lrs_a[int(np.argmin(sm))] / 10)
    # fastai v1's suggestion: steepest negative slope of the smoothed loss, skipping the first 10 and last 5
    lo_i, hi_i = (10, len(sm) - 5) if len(sm) > 20 else (0, len(sm))
    grad = np.gradient(sm[lo_i:hi_i], np.log10(lrs_a[lo_i:hi_i]))
    steepest = float(lrs_a[lo_i + int(np.argmin(grad))])
    return min10, steepest, i / per_epoch, wall, len(lrs)


# ------------------------------------------------------------------------------------------------- main
class Judge:
    """5-fresh-seed mean of a picked lr; reuses the reference grid's value when the lr is one of its points
    (same config, same seeds: the same deterministic computation), else retrains (cached)."""

    def __init__(self, ref: list[tuple[float, float]]):
        self.ref = ref
        self.cache: dict[float, float] = {}
        self.retrained = 0

    def __call__(self, lr: float | None) -> float:
        if lr is None:
            return math.inf
        for x, m in self.ref:
            if abs(x - lr) <= 1e-6 * lr:
                return m
        key = float(f"{lr:.10g}")
        if key not in self.cache:
            self.cache[key] = mean_loss({**BASE, "lr": lr})
            self.retrained += 1
        return self.cache[key]


@dataclass(frozen=True)
class Row:
    """One method's pick in one repeat, as numbers (``lr`` None: no pick; ``regret`` inf: none or diverged)."""

    method: str
    shift: float
    repeat: int
    lr: float | None
    trials: int
    fte: float
    epochs: float
    wall: float
    mean: float
    regret: float
    hit: bool
    note: str = ""


HEADER = [
    "method",
    "shift",
    "repeat",
    "chosen lr",
    "trials",
    "FTE",
    "epochs",
    "search wall s",
    "5-seed mean",
    "regret",
    "within 5%",
    "note",
]


def cells(r: Row) -> list:
    """``r`` as the cells of ``HEADER`` (the one place rows are formatted)."""
    return [
        r.method,
        f"{r.shift:+.1f}",
        r.repeat,
        f"{r.lr:.4g}" if r.lr else "none",
        r.trials,
        f"{r.fte:.2f}",
        f"{r.epochs:.4g}",
        f"{r.wall:.1f}",
        f"{r.mean:.4f}",
        pct(r.regret) if math.isfinite(r.regret) else "inf",
        "yes" if r.hit else "no",
        r.note,
    ]


def read_rows(path: Path) -> list[Row]:
    """The rows of a stored peers CSV (``HEADER``'s columns)."""
    with Path(path).open() as f:
        return [
            Row(
                method=d["method"],
                shift=float(d["shift"]),
                repeat=int(d["repeat"]),
                lr=None if d["chosen lr"] == "none" else float(d["chosen lr"]),
                trials=int(d["trials"]),
                fte=float(d["FTE"]),
                epochs=float(d["epochs"]),
                wall=float(d["search wall s"]),
                mean=float(d["5-seed mean"]),
                regret=parse_pct(d["regret"]),
                hit=d["within 5%"] == "yes",
                note=d["note"],
            )
            for d in csv.DictReader(f)
        ]


def sweep_rows(shifts=None, results: Path = RESULTS) -> list[dict]:
    """This project's sweep on the same workload (bench/regret.py's output), at the given shifts only."""
    path = Path(results) / "regret_sgd.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if shifts is not None:
        rows = [r for r in rows if any(abs(float(r["shift"]) - float(s)) < 1e-9 for s in shifts)]
    return rows


SWEEP = "sweep (this project)"


def by_method(rows: list[Row], sweep: list[dict]) -> dict[str, list[tuple[float, float, bool]]]:
    """method -> [(FTE, regret %, within 5%)], this project's sweep (regret_sgd.csv rows) last."""
    by: dict[str, list[tuple[float, float, bool]]] = {}
    for r in rows:
        by.setdefault(r.method, []).append((r.fte, r.regret, r.hit))
    if sweep:
        by[SWEEP] = [(float(x["FTE"]), parse_pct(x["regret"]), x["within 5%"] == "yes") for x in sweep]
    return by


def plot(rows: list[Row], sweep: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = iter("os^Dv<>pP*X")
    for label, pts in by_method(rows, sweep).items():
        xs = [f for f, _, _ in pts]
        ys = [max(r, 0.1) if math.isfinite(r) else 250 for _, r, _ in pts]
        ax.scatter(xs, ys, label=label, marker=next(markers), s=50, alpha=0.8)
    ax.axhline(5, color="grey", lw=0.8, ls="--", label="5% regret")
    ax.set_xlabel("cost (FTE: epochs trained / 27)")
    ax.set_ylabel("regret (% over best reference mean)")
    ax.set_yscale("log")
    ax.set_ylim(0.1, 300)
    ax.set_title(
        "digits_mlp, SGD m=0.9: regret vs cost\n(regret < 0.1% drawn at 0.1%; no pick / diverged at 250%)", fontsize=10
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SWEEP_HEADING = "\n## This project's sweep on the same workload"


def summary(rows: list[Row], sweep: list[dict]) -> str:
    """Per method: mean FTE, the regrets, mean regret (inf counts as inf), within-5% hits."""
    out = []
    for label, items in by_method(rows, sweep).items():
        regs = [r for _, r, _ in items]
        out.append(
            [
                label,
                len(items),
                f"{statistics.fmean(f for f, _, _ in items):.2f}",
                ", ".join(pct(r) if math.isfinite(r) else "inf" for r in regs),
                pct(statistics.fmean(regs)),
                f"{sum(hit for _, _, hit in items)} of {len(items)}",
            ]
        )
    return markdown_table(["method", "runs", "mean FTE", "regrets", "mean regret", "within 5%"], out)


def sweep_part(sweep: list[dict], rows: list[Row]) -> str:
    text = f"{SWEEP_HEADING}\n\n"
    if sweep:
        table = markdown_table(list(sweep[0].keys()), [list(s.values()) for s in sweep])
        text += (
            f"From results/regret_sgd.csv (bench/regret.py), rows at the same shifts, "
            f"as the file stood when this was written:\n\n{table}\n\n"
        )
    else:
        text += "results/regret_sgd.csv has no rows at these shifts.\n\n"
    return text + f"### Summary per method (this project's sweep included)\n\n{summary(rows, sweep)}\n"


def replot(tag: str = "", results: Path = RESULTS) -> int:
    """Rebuild the plot and the sweep part of peers_sgdTAG.md from its CSV and the current regret_sgd.csv."""
    results = Path(results)
    rows = read_rows(results / f"peers_sgd{tag}.csv")
    sweep = sweep_rows({f"{r.shift:+.1f}" for r in rows}, results)
    md = results / f"peers_sgd{tag}.md"
    md.write_text(md.read_text().split(SWEEP_HEADING)[0].rstrip("\n") + "\n" + sweep_part(sweep, rows))
    plot(rows, sweep, results / f"regret_vs_cost{tag}.png")
    print(md.read_text())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0])
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--budget-fte", type=float, default=None)
    p.add_argument("--tag", default="", help="suffix of the output files (peers_sgd{TAG}.md, ...)")
    p.add_argument(
        "--replot",
        action="store_true",
        help="no runs: rebuild the plot and the sweep part of peers_sgd.md from peers_sgd.csv and the "
        "current regret_sgd.csv",
    )
    add_results_option(p)
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.tag, args.results)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    from cluster.connect import ray_session

    t_all = time.time()
    ref = reference_grid("digits_sgd", BASE, REFERENCE_LRS, results=args.results)
    best_lr, best = min(ref, key=lambda r: r[1])
    all_sweep = sweep_rows(results=args.results)
    sweep = sweep_rows(args.shifts, args.results)
    budget = args.budget_fte or (statistics.fmean(float(s["FTE"]) for s in all_sweep) if all_sweep else 10.0)
    print(f"reference best {best:.4f} at lr {best_lr:.3g}; budget {budget:.2f} FTE", flush=True)
    judge = Judge(ref)
    rows: list[Row] = []

    def add(method, shift, seed, out):
        m = judge(out["lr"])
        r = regret(m, best)
        rows.append(
            Row(
                LABELS[method],
                shift,
                seed,
                out["lr"],
                out["trials"],
                out["epochs"] / MAX_EPOCHS,
                out["epochs"],
                out["wall"],
                m,
                r,
                r <= 5,
                out["note"],
            )
        )
        print(" | ".join(map(str, cells(rows[-1]))), flush=True)

    with tempfile.TemporaryDirectory(prefix="sweep-peers-") as storage, ray_session(None):
        for shift in args.shifts:
            for seed in range(args.repeats):
                for method in args.methods:
                    if method in ("grid", "asha"):
                        add(method, shift, seed, run_grid(seed, shift, storage, asha=method == "asha"))
                    elif method == "two_stage":
                        add(method, shift, seed, run_two_stage(seed, shift, storage))
                    elif method == "random":
                        add(method, shift, seed, run_random(seed, shift, storage, budget))
                    elif method == "optuna":
                        add(method, shift, seed, run_optuna(seed, shift, budget))
                    elif method == "range_test":
                        min10, steep, epochs, wall, n = lr_range_test(seed, shift)
                        note = f"{n} batches"
                        add(
                            "range_test_min10",
                            shift,
                            seed,
                            {"lr": min10, "epochs": epochs, "trials": 1, "wall": wall, "note": note},
                        )
                        add(
                            "range_test_steepest",
                            shift,
                            seed,
                            {"lr": steep, "epochs": epochs, "trials": 1, "wall": wall, "note": note},
                        )
    table = markdown_table(HEADER, [cells(r) for r in rows])
    text = (
        f"# Peers: digits_mlp, SGD momentum 0.9, batch 32, 27 epochs\n\n"
        f"Reference: {len(ref)} lrs (1e-4..1) x 5 fresh seeds; best mean {best:.4f} at lr {best_lr:.3g}. "
        f"Budget for Optuna / random search: {budget:.2f} FTE (mean FTE of this project's sweep).\n"
        f"Search wall seconds on a 2-core machine shared with other jobs (Ray peers run 2 trials at a "
        f"time; Optuna and the range test run in one process). Regret = (5-seed mean of the pick - best)"
        f" / best. Picks retrained: {judge.retrained} (others are reference-grid points).\n\n"
        f"{table}\n\nTotal bench wall: {time.time() - t_all:.0f} s.\n{sweep_part(sweep, rows)}"
    )
    print(text)
    write_results(f"peers_sgd{args.tag}", text, HEADER, [cells(r) for r in rows], results=args.results)
    plot(rows, sweep, args.results / f"regret_vs_cost{args.tag}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
