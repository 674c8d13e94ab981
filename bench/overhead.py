"""Per-trial orchestration overhead of this project's sweep against raw Ray Tune, on trivial trials.

    .venv/bin/python -m bench.overhead [--per-decade 8] [--no-demo] [--skip-a]

All variants run the same trials in ONE embedded Ray session (ray.init is timed once and reported apart):
``orchestrator.trial.train_trial`` on ``bench.trivial:workload`` (a 4->2 Linear model on 8 samples),
3 epochs each, 1 CPU per trial, lrs = the log grid 1e-6..1e-1 at ``--per-decade`` points a decade
(8: 41 trials).

  (a) raw Ray Tune, grid_search over the lrs, reuse_actors=False (Tune's default for function trainables)
  (b) raw Ray Tune, the same, reuse_actors=True
  (c) this project's sweep: orchestrator.tuning.run with per_decade as above, asha off, max_rounds 1
      (writes trials.parquet, rounds.json, report.md and its plots, as a user's sweep does)

overhead per trial = (wall of the fit - compute) / trials, compute = sum of the trials' epoch_seconds.
A warm-up fit of 2 trials runs first (worker start-up and imports), uncounted.
Unless ``--no-demo``: the digits demo sweep (examples/digits.yaml) runs too: its wall against its compute.
Writes results/overhead.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from bench.common import add_results_option, example, markdown_table, sweep_config

TRIAL = {
    "workload": "bench.trivial:workload",
    "max_epochs": 3,
    "seed": 0,
    "_cpus": 1,
    "optimizer": "sgd",
    "batch_size": 8,
}


def raw_tune(lrs: list[float], reuse: bool, storage: str, name: str) -> tuple[float, float, int]:
    from ray import tune

    from orchestrator.trial import train_trial

    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1}),
        param_space={**TRIAL, "lr": tune.grid_search(list(lrs))},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", reuse_actors=reuse),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    )
    start = time.time()
    grid = tuner.fit()
    wall = time.time() - start
    compute = 0.0
    for r in grid:  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
        df = r.metrics_dataframe
        if df is not None and "epoch_seconds" in df:
            compute += float(df["epoch_seconds"].sum())
    return wall, compute, len(grid)


def project_sweep(cfg) -> tuple[float, float, int, int, float | None]:
    """(wall, compute, trials, epochs, report seconds) of ``tuning.run``: the last is how long its closing
    report (tables + plots) took, a one-off cost per sweep like ray.init, not a per-trial one."""
    import pyarrow.parquet as pq

    from orchestrator import folder, report, tuning

    build, seconds = report.build, []

    def timed(*args, **kwargs):
        start = time.time()
        try:
            return build(*args, **kwargs)
        finally:
            seconds.append(time.time() - start)

    report.build = timed
    try:
        start = time.time()
        tuning.run(cfg, tuning.RunOptions(quiet=True))
        wall = time.time() - start
    finally:
        report.build = build
    table = pq.read_table(folder.sweep_folder(cfg) / "trials.parquet").to_pandas()
    return (
        wall,
        float(table["epoch_seconds"].sum()),
        int(table["trial_id"].nunique()),
        len(table),
        seconds[0] if seconds else None,
    )


def render(measured: dict, init_s: float, demo: tuple | None, total_s: float, report_s: float | None = None) -> str:
    """The Markdown report; ``measured``: variant -> (wall, compute, trials); ``demo``: (wall, compute,
    trials, epochs) or None; ``report_s``: seconds the project's sweep spent on its closing report."""
    per = {k: (w - c) / n for k, (w, c, n) in measured.items()}
    a, b = per.get("(a) raw Ray Tune, reuse_actors=False"), per["(b) raw Ray Tune, reuse_actors=True"]
    rows = [
        [
            label,
            n,
            f"{w:.1f}",
            f"{c:.2f}",
            f"{per[label]:.3f}",
            f"{per[label] / a:.2f}x" if a else "-",
            f"{per[label] / b:.2f}x",
        ]
        for label, (w, c, n) in measured.items()
    ]
    sweep = "(c) this project's sweep (tuning.run)"
    if report_s is not None and sweep in measured:
        w, c, n = measured[sweep]
        once = report_s
        o = (w - once - c) / n
        rows.append(
            [
                f"(c) without its closing report ({once:.1f} s once: tables, 2 plots)",
                n,
                f"{w - once:.1f}",
                f"{c:.2f}",
                f"{o:.3f}",
                f"{o / a:.2f}x" if a else "-",
                f"{o / b:.2f}x",
            ]
        )
    header = ["variant", "trials", "wall s", "compute s", "overhead s / trial", "vs (a)", "vs (b)"]
    text = (
        f"# Orchestration overhead on trivial trials (3 epochs, no real compute)\n\n"
        f"One embedded Ray session, 2 CPUs, 1 CPU per trial, on a 2-core machine shared with other jobs. "
        f"ray.init took {init_s:.1f} s (once, not in the walls below). overhead = (wall - compute) / trials; "
        f"compute = sum of epoch_seconds.\n\n{markdown_table(header, rows)}\n"
    )
    if demo:
        wall, compute, trials, epochs = demo
        text += (
            "\n## The digits demo sweep (examples/digits.yaml)\n\n"
            + markdown_table(
                [
                    "trials",
                    "epochs",
                    "wall s (tuning.run)",
                    "compute s (sum epoch_seconds)",
                    "ray.init s",
                    "wall + ray.init",
                    "compute / (wall + ray.init)",
                    "compute / (2 CPUs x (wall + ray.init))",
                ],
                [
                    [
                        trials,
                        epochs,
                        f"{wall:.1f}",
                        f"{compute:.1f}",
                        f"{init_s:.1f}",
                        f"{wall + init_s:.1f}",
                        f"{compute / (wall + init_s):.2f}",
                        f"{compute / (2 * (wall + init_s)):.0%}",
                    ]
                ],
            )
            + "\n"
        )
    return text + f"\nTotal bench wall: {total_s:.0f} s.\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--per-decade", type=float, default=8)
    p.add_argument("--no-demo", action="store_true")
    p.add_argument("--skip-a", action="store_true", help="skip (a), Tune's default (slow: ~12 s a trial here)")
    add_results_option(p)
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    from cluster.connect import ray_session
    from orchestrator.space import log_grid

    lrs = log_grid(1e-6, 1e-1, args.per_decade)
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as storage:
        t0 = time.time()
        with ray_session(None):
            init_s = time.time() - t0
            print(f"ray.init (embedded, 2 CPUs): {init_s:.1f} s; {len(lrs)} trials x 3 epochs", flush=True)
            raw_tune(lrs[:2], True, storage, "warmup")
            measured = {}
            if not args.skip_a:
                measured["(a) raw Ray Tune, reuse_actors=False"] = raw_tune(lrs, False, storage, "raw-noreuse")
                print(measured, flush=True)
            measured["(b) raw Ray Tune, reuse_actors=True"] = raw_tune(lrs, True, storage, "raw-reuse")
            print(measured, flush=True)
            cfg = sweep_config(
                {
                    "workload": TRIAL["workload"],
                    "max_epochs": 3,
                    "seed": 0,
                    "space": {
                        "lr": {"log": [1e-6, 1e-1], "per_decade": args.per_decade},
                        "optimizer": "sgd",
                        "batch_size": 8,
                    },
                    "asha": {"enabled": False},
                    "zoom": {"max_rounds": 1},
                    "resources": {"cpu": 1, "gpu": 0},
                },
                "overhead",
                storage,
            )
            wall, compute, trials, _, report_s = project_sweep(cfg)
            measured["(c) this project's sweep (tuning.run)"] = (wall, compute, trials)
            print(measured, flush=True)
            demo = None
            if not args.no_demo:
                demo = project_sweep(sweep_config(example(), "demo", storage))[:4]
                print("demo", demo, flush=True)
    text = render(measured, init_s, demo, time.time() - t_all, report_s)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "overhead.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
