"""Is the GPU the limit? Trials per hour and GPU busy fraction for the image workload (``cifar_resnet``
trained by ``orchestrator.workloads.images:train``: data on the device, channels_last, cudnn benchmark, amp)
at 1, 2 and 4 trials per GPU, for one 2-worker data-parallel trial, and for raw Ray Tune running the same
trainable (``orchestrator.trial.train_trial``, a plain grid, no zoom or callbacks) in the same run; and
one trial trained outside any sweep, the per-trial time the others are compared with.

    python -m bench.gpu_busy [--epochs 4] [--trials 4] [--n-train 20000] [--name h100]   # on a GPU machine
    python -m bench.gpu_busy --cpu                                                      # dry run, < 60 s idle

Busy fraction: ``nvidia-smi --query-gpu=utilization.gpu`` sampled every 200 ms, averaged over each run's
training span (first epoch's start to last epoch's end, from the trials' own reports). trials/hour: trials
over the run's wall time (set-up included). "epoch s vs solo": the mean epoch time of the run's trials over
the solo trial's (1.00 = no slower than alone). Writes bench/results/gpu_<name>.md (and a copy to $OUT).
``--cpu``: a tiny model and data, one trial per CPU, the DDP row on 2 CPU workers; the busy column n/a.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import add_results_option, markdown_table, sweep_config as build_config

TRAIN = "orchestrator.workloads.images:train"


@dataclass(frozen=True)
class Scenario:
    """One measured run: ``per_device`` trials share a device (a GPU, or a CPU in the dry run), each with
    ``workers`` processes; ``raw``: run by plain Ray Tune instead of the sweep."""

    label: str
    per_device: int = 1
    workers: int = 1
    raw: bool = False


SCENARIOS = (
    Scenario("sweep, 1 trial/GPU", 1),
    Scenario("sweep, 2 trials/GPU", 2),
    Scenario("sweep, 4 trials/GPU", 4),
    Scenario("sweep, 1 trial x 2 DDP workers", 1, workers=2),
    Scenario("raw Tune, 2 trials/GPU", 2, raw=True),
)
DRY_SCENARIOS = (
    Scenario("sweep, 1 trial/CPU", 1),
    Scenario("sweep, 1 trial x 2 DDP workers", 1, workers=2),
    Scenario("raw Tune, 1 trial/CPU", 1, raw=True),
)


@dataclass
class Sampler:
    """GPU utilisation (%) sampled by ``nvidia-smi -lms`` in a thread: ``(time, percent)`` pairs."""

    period_ms: int = 200
    samples: list[tuple[float, float]] = field(default_factory=list)
    _proc: subprocess.Popen | None = None

    def start(self) -> bool:
        """Start sampling; False when there is no ``nvidia-smi``."""
        if shutil.which("nvidia-smi") is None:
            return False
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"-lms={self.period_ms}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return True

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            values = [float(v) for v in line.split(",") if v.strip().replace(".", "", 1).isdigit()]
            if values:
                self.samples.append((time.time(), statistics.mean(values)))

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def busy(self, start: float, end: float) -> float:
        """The mean utilisation in ``[start, end]`` as a fraction; nan without samples there."""
        inside = [u for t, u in self.samples if start <= t <= end]
        return statistics.mean(inside) / 100 if inside else math.nan


def trial_data(args) -> dict:
    """The searched-over trial's fixed keys (the image workload's size and the GPU path)."""
    return {
        "n_train": args.n_train,
        "width": args.width,
        "blocks": args.blocks,
        "batch_size": args.batch_size,
        "amp": not args.cpu,
        "optimizer": "momentum",
    }


def lrs(trials: int) -> list[float]:
    """``trials`` rates spread over 1e-3..1e-1 (one decade a point at 3, finer with more)."""
    if trials < 1:
        raise ValueError(f"trials={trials}: expected >= 1")
    return [10 ** (-3 + 2 * i / max(1, trials - 1)) for i in range(trials)]


def sweep_config(s: Scenario, args, storage: str, devices: int):
    """A one-round sweep of ``args.trials`` rates (ASHA off: equal work a trial) for scenario ``s``."""
    share = 1.0 / s.per_device
    low, high = lrs(args.trials)[0], lrs(args.trials)[-1]
    per_decade = max(1, math.ceil((args.trials - 1) / 2))
    resources = {"cpu": 1, "gpu": 0.0} if args.cpu else {"cpu": 1, "gpu": share}
    if s.workers > 1:
        resources = {
            "cpu": 1,
            "gpu": 0.0 if args.cpu else share / s.workers if devices < s.workers else 1.0,
            "workers": s.workers,
        }
    name = "".join(c if c.isalnum() else "-" for c in s.label).strip("-")
    return build_config(
        {
            "train": TRAIN,
            "max_epochs": args.epochs,
            "metric": "val_loss",
            "space": {"lr": {"log": [low, high], "per_decade": per_decade}, **trial_data(args)},
            "asha": {"enabled": False},
            "zoom": {"max_rounds": 1},
            "resources": resources,
        },
        name,
        storage,
        source="bench/gpu_busy.py",
    )


def run_raw(s: Scenario, args, storage: str) -> list[dict]:
    """Plain Ray Tune: ``train_trial`` over a grid of the same rates, same resources; per-epoch rows."""
    from ray import tune

    from orchestrator.trial import train_trial

    share = 0.0 if args.cpu else 1.0 / s.per_device
    space = {
        "train": TRAIN,
        "max_epochs": args.epochs,
        "seed": 0,
        "checkpoint_every": 0,
        "_cpus": 1,
        **trial_data(args),
        "lr": tune.grid_search(lrs(args.trials)),
    }
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1, "gpu": share}),
        param_space=space,
        run_config=tune.RunConfig(name="raw", storage_path=storage, verbose=0),
    )
    grid = tuner.fit()
    rows = []
    for i in range(len(grid)):
        frame = grid[i].metrics_dataframe
        if frame is not None:
            rows += frame.to_dict("records")
    return rows


def sweep_rows(summary) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(summary.folder / "trials.parquet").to_pylist()


def span(rows: list[dict]) -> tuple[float, float]:
    timed = [r for r in rows if r.get("ended_at") and r.get("epoch_seconds") is not None]
    if not timed:
        return math.nan, math.nan
    return min(r["ended_at"] - r["epoch_seconds"] for r in timed), max(r["ended_at"] for r in timed)


def solo_epoch_seconds(args) -> float:
    """One trial trained in this process, outside any sweep: its mean epoch time (after the first)."""
    import torch

    from orchestrator import session
    from orchestrator.workloads import images

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial with cpu: 1 runs
    config = {"train": TRAIN, "max_epochs": args.epochs, "lr": lrs(args.trials)[0], **trial_data(args)}
    history = session.run(images.train, session.Trial(config, function="solo", device=device))
    torch.set_num_threads(threads)
    times = [h["epoch_seconds"] for h in history]
    return statistics.mean(times[1:] or times)


def row(s: Scenario, rows: list[dict], wall: float, solo: float, sampler: Sampler | None) -> dict:
    start, end = span(rows)
    trials = len({r["trial_id"] for r in rows})
    epoch_s = [r["epoch_seconds"] for r in rows if r.get("epoch") and int(r["epoch"]) > 1] or [
        r["epoch_seconds"] for r in rows if r.get("epoch_seconds") is not None
    ]
    busy = sampler.busy(start, end) if sampler is not None else math.nan
    return {
        "run": s.label,
        "trials": trials,
        "epochs": sum(1 for r in rows if r.get("epoch")),
        "wall s": round(wall, 1),
        "trials/hour": round(3600 * trials / wall, 1),
        "train span s": round(end - start, 1),
        "GPU busy": "n/a" if math.isnan(busy) else f"{busy:.0%}",
        "epoch s vs solo": round(statistics.mean(epoch_s) / solo, 2) if epoch_s and solo else "n/a",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--cpu",
        "--dry-run",
        dest="cpu",
        action="store_true",
        help="tiny model and data on CPUs (checks the script, measures nothing about a GPU)",
    )
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--trials", type=int, default=None, help="trials a run (rates over 1e-3..1e-1)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--name", default=None, help="machine name in the file name (default: the GPU's, or cpu)")
    add_results_option(p)
    args = p.parse_args(argv)
    small = args.cpu
    args.epochs = args.epochs or (2 if small else 4)
    args.trials = args.trials or (1 if small else 4)
    args.n_train = args.n_train or (64 if small else 20000)
    args.width = args.width or (4 if small else 64)
    if small:
        args.blocks, args.batch_size = 1, 32

    import ray
    import torch

    from cluster.connect import ray_session
    from orchestrator import tuning

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not small else "no GPU"
    name = args.name or ("cpu" if small else "".join(c if c.isalnum() else "_" for c in gpu.lower()))
    storage = tempfile.mkdtemp(prefix="sweep-gpubusy-")
    sampler = Sampler()
    sampling = not small and sampler.start()
    rows = []
    try:
        solo = solo_epoch_seconds(args)
        print(f"[gpu_busy] {gpu}: solo epoch {solo:.2f} s", flush=True)
        with ray_session():
            devices = int(ray.cluster_resources().get("GPU", 0))
            if not small and devices == 0:
                print("[gpu_busy] Ray sees no GPU: run with --cpu for the dry run", file=sys.stderr)
                return 2
            for s in DRY_SCENARIOS if small else SCENARIOS:
                t0 = time.perf_counter()
                if s.raw:
                    measured = run_raw(s, args, storage)
                else:
                    measured = sweep_rows(
                        tuning.run(sweep_config(s, args, storage, devices), tuning.RunOptions(quiet=True))
                    )
                rows.append(row(s, measured, time.perf_counter() - t0, solo, sampler if sampling else None))
                print(f"[gpu_busy] {rows[-1]}", flush=True)
    finally:
        sampler.stop()
        shutil.rmtree(storage, ignore_errors=True)
    head = (
        f"# Is the GPU the limit? cifar_resnet on {gpu}\n\nMachine: {gpu}; torch {torch.__version__}, ray "
        f"{ray.__version__}. {args.trials} trials a run, {args.epochs} epochs each, ASHA off; ResNet width "
        f"{args.width}, {args.blocks} blocks a stage, {args.n_train} images, batch {args.batch_size} a worker "
        f"(DDP: global {2 * args.batch_size}), amp {'on' if not small else 'off'}. GPU busy: nvidia-smi "
        f"utilization.gpu every 200 ms over the training span. Command: `python -m bench.gpu_busy "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
    )
    text = head + markdown_table(list(rows[0]) if rows else [], [list(r.values()) for r in rows]) + "\n"
    print(text)
    for folder in [args.results] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else []):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"gpu_{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
