"""Shared pieces of the benchmarks: retraining a configuration on fresh seeds, the dense reference grid,
regret. Plain torch in worker processes (one torch thread each), no Ray: these are the yardstick."""
from __future__ import annotations

import csv
import math
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FRESH_SEEDS = (1001, 1002, 1003, 1004, 1005)  # never used by a sweep: picks are judged on new seeds


def _final_val_loss(config: dict) -> float:
    import torch

    torch.set_num_threads(1)
    from orchestrator.trial import run_epochs

    history = run_epochs(config)
    last = history[-1]
    return last["val_loss"] if len(history) == int(config["max_epochs"]) else math.inf


def final_losses(configs: list[dict], workers: int | None = None) -> list[float]:
    """Final validation loss of each config trained fully (inf if it diverged), in parallel processes."""
    workers = workers or max(1, min(len(configs), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_final_val_loss, configs, chunksize=1))


def seeded(config: dict, seeds=FRESH_SEEDS) -> list[dict]:
    return [{**config, "seed": s, "seed_offset": 0} for s in seeds]


def mean_loss(config: dict, seeds=FRESH_SEEDS) -> float:
    losses = final_losses(seeded(config, seeds))
    return statistics.fmean(losses) if all(map(math.isfinite, losses)) else math.inf


def reference_grid(name: str, base: dict, lrs: list[float], seeds=FRESH_SEEDS) -> list[tuple[float, float]]:
    """(lr, mean final val loss over seeds) on a dense grid; cached in results/reference_NAME.csv."""
    path = RESULTS / f"reference_{name}.csv"
    if path.exists():
        with path.open() as f:
            rows = [(float(r["lr"]), float(r["mean_val_loss"])) for r in csv.DictReader(f)]
        if [round(r[0], 12) for r in rows] == [round(x, 12) for x in lrs]:
            return rows
    configs = [c for lr in lrs for c in seeded({**base, "lr": lr}, seeds)]
    losses = final_losses(configs)
    k = len(seeds)
    rows = []
    for i, lr in enumerate(lrs):
        chunk = losses[i * k:(i + 1) * k]
        rows.append((lr, statistics.fmean(chunk) if all(map(math.isfinite, chunk)) else math.inf))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lr", "mean_val_loss"])
        w.writerows(rows)
    return rows


def regret(mean: float, best: float) -> float:
    """Regret as a percentage of the best mean on the reference grid."""
    return 100.0 * (mean - best) / best


def markdown_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_results(stem: str, text: str, header: list[str], rows: list[list]) -> None:
    """results/STEM.md (the printed text) and results/STEM.csv (the table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text)
    with (RESULTS / f"{stem}.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
