"""Trials per minute on one real GPU at 1, 2 and 4 trials per GPU (fractional ``gpu:`` per trial).

    python -m bench.gpu [--workloads digits_mlp,digits_cnn] [--epochs 10] [--per-decade 2] [--out gpu.md]

One embedded Ray session (all CPUs, the GPUs torch sees). For each workload and each share in
1, 0.5, 0.25 (plus a CPU-only row: ``gpu: 0``, 1 CPU a trial) a one-round sweep runs: the log grid
1e-6..1e-1 at ``--per-decade`` points a decade, every trial ``--epochs`` epochs (ASHA off, so all trials
do the same work). trials/min = trials / wall of the sweep (set-up, worker
start and report included); "in span" = per training span, from the first epoch's start to the last
epoch's end (the steady rate a longer sweep approaches). The report's ``device`` column says where
each trial trained. Writes bench/results/<out> (and a copy to $OUT when set: the device machine's outbox).
``--low/--high`` narrow the lr range (a smoke run: ``--epochs 2 --low 1e-2 --high 1e-1 --per-decade 1``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import add_results_option, markdown_table, sweep_config as build_config


def sweep_config(
    workload: str,
    share: float,
    epochs: int,
    per_decade: int,
    storage: str,
    cpus: int,
    low: float = 1e-6,
    high: float = 1e-1,
):
    """A one-round sweep, ASHA off, over the log grid low..high; ``share`` GPUs and ``cpus`` CPUs a trial."""
    return build_config(
        {
            "workload": workload,
            "max_epochs": epochs,
            "space": {"lr": {"log": [low, high], "per_decade": per_decade}, "optimizer": "sgd", "momentum": 0.9},
            "asha": {"enabled": False},
            "zoom": {"max_rounds": 1},
            "resources": {"cpu": cpus, "gpu": share},
        },
        f"{workload}-gpu{share:g}",
        storage,
        source="bench/gpu.py",
    )


def measure(workload: str, share: float, summary, wall: float) -> dict:
    """One table row from a finished sweep (its ``report.Summary``) and its wall seconds."""
    import pyarrow.parquet as pq

    table = pq.read_table(summary.folder / "trials.parquet").to_pylist()
    trials = len({r["trial_id"] for r in table})
    epochs = sum(1 for r in table if r.get("epoch"))
    devices = sorted({str(r.get("device")) for r in table if r.get("device")})
    per_gpu = f"{1 / share:g}" if share else "CPU only"
    # training span: first epoch's start to last epoch's end (no driver set-up, no cold start)
    timed = [r for r in table if r.get("ended_at")]
    span = (
        (max(r["ended_at"] for r in timed) - min(r["ended_at"] - r["epoch_seconds"] for r in timed))
        if timed
        else math.nan
    )
    return {
        "workload": workload,
        "gpu per trial": f"{share:g}",
        "trials per GPU": per_gpu,
        "trials": trials,
        "epochs": epochs,
        "wall s": round(wall, 1),
        "trials/min": round(60 * trials / wall, 1),
        "train span s": round(span, 1),
        "trials/min in span": round(60 * trials / span, 1),
        "epochs/s in span": round(epochs / span, 1),
        "compute s": round(sum(r.get("epoch_seconds") or 0 for r in table), 1),
        "devices": ",".join(devices),
        "chosen lr": f"{summary.lr:.3g}",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--workloads", default="digits_mlp")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--per-decade", type=int, default=2)
    p.add_argument("--out", default="gpu.md")
    p.add_argument("--low", type=float, default=1e-6)
    p.add_argument("--high", type=float, default=1e-1)
    add_results_option(p)
    args = p.parse_args(argv)

    import ray
    import torch

    from cluster.connect import ray_session
    from orchestrator import tuning

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    storage = tempfile.mkdtemp(prefix="sweep-gpu-")
    rows = []
    try:
        with ray_session():
            res = ray.cluster_resources()
            cpus, gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
            print(f"[gpu] {gpu}: Ray sees {cpus} CPUs, {gpus} GPUs", flush=True)
            for workload in args.workloads.split(","):
                for share in ([1.0, 0.5, 0.25] if gpus else []) + [0.0]:
                    cfg = sweep_config(workload, share, args.epochs, args.per_decade, storage, 1, args.low, args.high)
                    t0 = time.perf_counter()
                    summary = tuning.run(cfg, tuning.RunOptions(quiet=True))
                    rows.append(measure(workload, share, summary, time.perf_counter() - t0))
                    print(f"[gpu] {rows[-1]}", flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    span = "1e-6..1e-1" if (args.low, args.high) == (1e-6, 1e-1) else f"{args.low:g}..{args.high:g}"
    head = (
        f"# Trials per minute on one GPU\n\nMachine: {gpu}, {cpus} CPUs; torch {torch.__version__}, "
        f"ray {ray.__version__}. One-round sweep, {args.per_decade} points a decade over {span}, "
        f"{args.epochs} epochs a trial, ASHA off, 1 CPU a trial. Command: `python -m bench.gpu "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
    )
    header = list(rows[0]) if rows else []
    text = head + markdown_table(header, [list(r.values()) for r in rows]) + "\n"
    print(text)
    for folder in [args.results] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else []):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
