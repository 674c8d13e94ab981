"""Trial start-up and per-epoch time: trials that build their workload (before) against trials that take the
driver's, built once and shared through Ray's object store (after: ``orchestrator.trial.trainable``).

    .venv/bin/python -m bench.startup [--repeats 3] [--trials 2] [--only NAME ...] [--quick]

Each fit is a raw Ray Tune grid of ``--trials`` learning rates, 1 CPU a trial, in one embedded Ray session:
``tune.with_resources(train_trial)`` (before) or the same over ``tune.with_parameters(train_trial,
shared=...)`` (after). Per trial: start-up = the first iteration's ``time_this_iter_s`` less its
``epoch_seconds`` (the time in the trial before its first epoch: building or fetching the workload, the
model to the device, the optimizer); epoch = the mean ``epoch_seconds``. The driver's one-off build and put
is timed apart. Each before/after pair runs back to back (the order alternating by repeat); the load
average is read before each pair. Writes results/startup.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from bench.common import add_results_option, markdown_table

WORKLOADS = {
    "digits_cnn": {"workload": "digits_cnn", "max_epochs": 3, "batch_size": 32, "channels": 16},
    # the generated CIFAR-shaped set (orchestrator.workloads.images), a small ResNet: sized for a loaded CPU
    "images_6k": {
        "workload": "orchestrator.workloads.images:cifar_resnet",
        "max_epochs": 1,
        "batch_size": 256,
        "n_train": 5000,
        "width": 2,
        "blocks": 1,
    },
    "images_24k": {
        "workload": "orchestrator.workloads.images:cifar_resnet",
        "max_epochs": 1,
        "batch_size": 256,
        "n_train": 20000,
        "width": 2,
        "blocks": 1,
    },
}
QUICK = {"digits_cnn": {"max_epochs": 1}, "images_6k": {"n_train": 200}, "images_24k": {"n_train": 200}}


def fit(trainable, base: dict, lrs: list[float], storage: str, name: str) -> tuple[float, list[tuple[float, float]]]:
    """(wall, [(start-up, mean epoch seconds) per trial]) of one grid fit."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={**base, "lr": tune.grid_search(lrs)},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min"),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    )
    start = time.time()
    grid = tuner.fit()
    wall = time.time() - start
    out = []
    for r in grid:  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
        if r.error is not None:
            raise SystemExit(f"bench.startup: trial {name} errored: {r.error}")
        df = r.metrics_dataframe
        first = df.iloc[0]
        out.append((float(first["time_this_iter_s"] - first["epoch_seconds"]), float(df["epoch_seconds"].mean())))
    return wall, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2, help="learning rates (trials) a fit")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(WORKLOADS),
        default=["digits_cnn", "images_6k"],
        help="the workloads measured (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny data and one epoch (the test's run)")
    add_results_option(parser)
    args = parser.parse_args(argv)
    import ray
    from ray import tune

    from orchestrator.sharing import share_workloads
    from orchestrator.trial import train_trial

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    lrs = [0.01 * 3**i for i in range(args.trials)]
    rows, lines = [], []
    storage = tempfile.mkdtemp(prefix="startup")
    for label in args.only:
        base = WORKLOADS[label]
        base = {**base, **(QUICK[label] if args.quick else {}), "seed": 0, "optimizer": "momentum", "_cpus": 1}
        samples: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        walls: dict[str, list[float]] = {"before": [], "after": []}
        shares, loads = [], []
        for rep in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for mode in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                trainable = train_trial
                if mode == "after":
                    t0 = time.perf_counter()
                    shared = share_workloads([base], "lr")
                    shares.append(time.perf_counter() - t0)
                    assert shared is not None, f"{label}: nothing shared"
                    trainable = tune.with_parameters(train_trial, shared=shared)
                wall, per_trial = fit(trainable, base, lrs, storage, f"{label}-{mode}-{rep}")
                walls[mode].append(wall)
                samples[mode] += per_trial
        for mode in ("before", "after"):
            starts = [s for s, _ in samples[mode]]
            epochs = [e for _, e in samples[mode]]
            rows.append(
                {
                    "workload": label,
                    "trials": mode + (" (built in each trial)" if mode == "before" else " (shared, object store)"),
                    "start-up s (median)": f"{statistics.median(starts):.2f}",
                    "start-up s (min-max)": f"{min(starts):.2f}-{max(starts):.2f}",
                    "epoch s (median)": f"{statistics.median(epochs):.2f}",
                    "fit wall s (median)": f"{statistics.median(walls[mode]):.1f}",
                    "driver build+put s": f"{statistics.median(shares):.2f}" if mode == "after" else "-",
                }
            )
        lines.append(
            f"- {label}: {base}; load average (1 min) before each pair: {', '.join(f'{x:.1f}' for x in loads)}"
        )
    ray.shutdown()
    table = markdown_table(list(rows[0]), [list(r.values()) for r in rows])
    text = (
        f"# Trial start-up and epoch time: workload built in each trial vs shared through the object store\n\n"
        f"`.venv/bin/python -m bench.startup {' '.join(argv if argv is not None else sys.argv[1:])}`, "
        f"{args.repeats} repeats x {args.trials} trials a fit, each before/after pair back to back (order "
        f"alternating), on {os.cpu_count()} CPUs shared with other jobs.\n\n{table}\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        with open(os.path.join(args.results, "startup.md"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
