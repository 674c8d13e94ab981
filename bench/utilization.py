"""Utilization of trial slots: this project's sweep (rounds as lineage) against the same rounds run with a
barrier between them (one Tuner.fit per round), on a simulated GPU cluster.

    .venv/bin/python -m bench.utilization [--sleep 0.1] [--epochs 27] [--out utilization.md]

Cluster: ``ray.cluster_utils.Cluster``, a head with 0 CPUs and 2 worker nodes x (2 CPUs, 2 fake GPUs);
each trial takes 1 CPU + 1 GPU: 4 slots. Workload ``bench.trivial:sleepy``: one training batch per epoch
whose loss sleeps ``--sleep`` seconds, so a trial's work is proportional to its epochs. ASHA off (all
trials run ``--epochs`` epochs unless they diverge), 3 rounds (6 + 4 + 4 points).

utilization = busy slot-seconds / (slots x wall), busy = sum of the trials' epoch_seconds (the sleeping
training + a trivial validation), wall = from the start of the (first) fit to the end of the (last) fit.
The barrier variant replays the lrs of each of the sweep's rounds as a Ray Tune grid, with the same trial
config, reuse_actors=True, one fit after another. Writes results/utilization.md (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

from bench.common import add_results_option, markdown_table, sweep_config

SLOTS = 4


@dataclass(frozen=True)
class Measured:
    """One variant's run: trials, epochs, wall seconds (``stages``: each fit's, for the barrier), busy
    slot-seconds (sum of epoch_seconds)."""

    trials: int
    epochs: int
    wall: float
    busy: float
    stages: tuple[float, ...] = ()

    @property
    def utilization(self) -> float:
        return self.busy / (SLOTS * self.wall)


def render(sweep: Measured, barrier: Measured, rounds: list[int], sleep: float, epochs: int, total_s: float) -> str:
    """The Markdown report; ``rounds``: the number of trials in each of the sweep's rounds."""
    rows = [
        [
            "this project's sweep (one Tuner, rounds as lineage)",
            sweep.trials,
            sweep.epochs,
            f"{sweep.wall:.1f}",
            f"{sweep.busy:.1f}",
            f"{sweep.utilization:.0%}",
        ],
        [
            f"same rounds, barrier ({len(barrier.stages)} Tuner.fit calls)",
            barrier.trials,
            barrier.epochs,
            f"{barrier.wall:.1f} ({' + '.join(f'{w:.1f}' for w in barrier.stages)})",
            f"{barrier.busy:.1f}",
            f"{barrier.utilization:.0%}",
        ],
    ]
    header = ["variant", "trials", "epochs", "wall s", "busy slot-s", "utilization"]
    return (
        f"# Slot utilization on a simulated GPU cluster\n\n"
        f"`ray.cluster_utils.Cluster`: head 0 CPUs + 2 nodes x (2 CPUs, 2 fake GPUs); 1 CPU + 1 GPU per "
        f"trial = {SLOTS} slots; all in one process tree on a 2-core machine shared with other jobs. "
        f"Workload `bench.trivial:sleepy`, {sleep} s of sleep per epoch, {epochs} epochs, ASHA "
        f"off, rounds of {rounds} trials. Busy = sum of epoch_seconds. "
        f"A perfect packing of the sweep's busy time would take {sweep.busy / SLOTS:.1f} s.\n\n"
        f"{markdown_table(header, rows)}\n\nTotal bench wall (cluster start included): {total_s:.0f} s.\n"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sleep", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=27)
    p.add_argument("--out", default="utilization.md", help="file name under bench/results/")
    add_results_option(p)
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    import pyarrow.parquet as pq
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster

    from orchestrator import folder, tuning
    from orchestrator.trial import train_trial

    t_all = time.time()
    temp = tempfile.mkdtemp(prefix="su", dir="/tmp")  # short: Ray's socket paths live under it
    storage = tempfile.mkdtemp(prefix="sweep-util-")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "temp_dir": temp, "include_dashboard": False},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, num_gpus=2, temp_dir=temp)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        print(f"cluster up in {time.time() - t_all:.1f} s: {ray.cluster_resources()}", flush=True)
        space = {"lr": {"log": [1e-6, 1e-1], "per_decade": 1}, "optimizer": "sgd", "batch_size": 8, "sleep": args.sleep}
        cfg = sweep_config(
            {
                "workload": "bench.trivial:sleepy",
                "max_epochs": args.epochs,
                "seed": 0,
                "space": space,
                "asha": {"enabled": False},
                "zoom": {"max_rounds": 3, "points_per_round": 4, "resolution": 0.01, "tolerance": 0.0},
                "resources": {"cpu": 1, "gpu": 1},
            },
            "util",
            storage,
        )
        # warm-up: start workers on both nodes (imports), uncounted
        warm = tune.Tuner(
            tune.with_resources(train_trial, {"cpu": 1, "gpu": 1}),
            param_space={
                **cfg.base_config(),
                "_cpus": 1,
                "max_epochs": 1,
                "sleep": 0.0,
                "lr": tune.grid_search([1e-3] * SLOTS),
            },
            tune_config=tune.TuneConfig(metric="val_loss", mode="min", reuse_actors=True),
            run_config=tune.RunConfig(name="warmup", storage_path=storage, verbose=0),
        )
        warm.fit()

        start = time.time()
        tuning.run(cfg, tuning.RunOptions(quiet=True))
        sweep_wall = time.time() - start
        table = pq.read_table(folder.sweep_folder(cfg) / "trials.parquet").to_pandas()
        sweep_busy = float(table["epoch_seconds"].sum())
        sweep_epochs = len(table)
        rounds: dict[int, list[float]] = {}
        for _, t in table.drop_duplicates("trial_id").sort_values(["round", "lr"]).iterrows():
            rounds.setdefault(int(t["round"]), []).append(float(t["lr"]))
        base = {
            k: v
            for k, v in json.loads(table["config"].iloc[0]).items()
            if k not in ("lr", "round", "group", "seed_offset")
        }
        print(
            f"sweep: {len(rounds)} rounds {[len(v) for v in rounds.values()]}, wall {sweep_wall:.1f} s, "
            f"busy {sweep_busy:.1f} slot-s",
            flush=True,
        )

        barrier_busy, barrier_epochs, stage_walls = 0.0, 0, []
        start = time.time()
        for k, lrs in rounds.items():
            s0 = time.time()
            grid = tune.Tuner(
                tune.with_resources(train_trial, {"cpu": 1, "gpu": 1}),
                param_space={**base, "lr": tune.grid_search(lrs)},
                tune_config=tune.TuneConfig(metric="val_loss", mode="min", reuse_actors=True),
                run_config=tune.RunConfig(name=f"barrier-{k}", storage_path=storage, verbose=0),
            ).fit()
            stage_walls.append(time.time() - s0)
            for r in grid:  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
                df = r.metrics_dataframe
                if df is not None and "epoch_seconds" in df:
                    barrier_busy += float(df["epoch_seconds"].sum())
                    barrier_epochs += len(df)
        barrier_wall = time.time() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)

    trials = sum(len(v) for v in rounds.values())
    text = render(
        Measured(trials, sweep_epochs, sweep_wall, sweep_busy),
        Measured(trials, barrier_epochs, barrier_wall, barrier_busy, tuple(stage_walls)),
        [len(v) for v in rounds.values()],
        args.sleep,
        args.epochs,
        time.time() - t_all,
    )
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
