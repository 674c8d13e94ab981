"""Real sweeps on every landscape x coarse range, judged by the landscape, in ``bench/replay.py``'s rows.

    .venv/bin/python -m bench.real [--landscapes sgd adam ...] [--shifts 0 -0.2 -0.4 0.5] [--ranges LABEL ...]
                                   [--repeats-shift0 6] [--repeats 3] [--set KEY=YAML ...] [--out real_sweeps]

Each sweep runs as a user would run it: ``tuning.run`` on an embedded local Ray (one ``ray_session`` for the
whole batch, quiet), examples/digits.yaml's settings (ASHA, zoom rules) with ``--set`` applied to them first,
then the landscape's trial config (``bench.replay.TRIALS[name]``) put in: its keys that are top-level keys of
the example (``workload``, ``max_epochs``) replace those, the others replace the example's space keys (the
example's ``optimizer`` and ``momentum`` are dropped first: they belong to the trial config), and
``space.lr = {log: [10**low, 10**high], per_decade: 1}`` for each coarse range of ``bench.replay.ranges``
(shifts, miss low, miss high). Sweep seeds 0..N-1: N = ``--repeats-shift0`` at shift 0, ``--repeats``
elsewhere. ``--ranges`` keeps the ranges whose label starts with one of the given prefixes ("shift +0.0",
"miss") and runs them in that order (``plan``: seed by seed over the landscapes), so that a batch stopped
early has the first prefixes' sweeps on every landscape.

Per sweep: the sweep's own pick (``Summary.lr``, as best.json gives it), its regret against the landscape's
all-seed mean (``Landscape.regret`` of log10 lr, interpolated; inf for a sweep that failed), FTE, epochs,
wall seconds. Rows go to ``results/<out>_runs.csv`` as each sweep ends; a row already there (same landscape,
range, seed and ``--set`` overrides) is not rerun, so a stopped batch continues where it stopped.
Per landscape x range (every row of the runs file with this batch's overrides): mean / p90 / worst regret
(``yardstick.spread``) and mean FTE in ``replay.HEADER``'s columns, method "sweep, default rules (real
runs)" (the overrides named instead when there are some): ``results/<out>.csv``; both tables and the
command in ``results/<out>.md``.
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from bench.common import add_results_option, example, markdown_table, pct, sweep_config as build_config, write_results
from bench.replay import HEADER, TRIALS, cells, ranges
from bench.yardstick import Landscape, path_for, spread

LANDSCAPES = ["sgd", "adam", "diabetes_sgd", "diabetes_linear", "digits_linear", "digits_cnn"]
SHIFTS = [0.0, -0.2, -0.4, 0.5]
SHIFT0 = "shift +0.0"
METHOD = "sweep, default rules (real runs)"
DROPPED = ("optimizer", "momentum")  # the example's optimizer keys: the landscape's trial config sets its own


@dataclass(frozen=True)
class Run:
    """One real sweep: where it ran (landscape, range label, low/high in log10 lr, seed, the ``--set``
    overrides as one shell-quoted string) and what it gave: the pick's lr (None: the sweep failed, ``error``
    says why), its regret (%), FTE, epochs and wall seconds."""

    landscape: str
    range: str
    low: float
    high: float
    seed: int
    sets: str
    lr: float | None
    regret: float
    fte: float
    epochs: int
    wall_s: float
    error: str = ""

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.landscape, self.range, self.seed, self.sets)


RUN_HEADER = [f.name for f in fields(Run)]


def sets_text(sets: Sequence[str]) -> str:
    """The ``--set`` overrides as the one string that keys a run (shell-quoted, in order; "" for none)."""
    return " ".join(shlex.quote(s) for s in sets)


def method_name(sets: Sequence[str]) -> str:
    return METHOD if not sets else f"sweep, {', '.join(sets)} (real runs)"


def read_runs(path: Path) -> list[Run]:
    """The runs in ``path`` (``RUN_HEADER`` columns); empty when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open() as f:
        return [
            Run(
                r["landscape"],
                r["range"],
                float(r["low"]),
                float(r["high"]),
                int(r["seed"]),
                r["sets"],
                float(r["lr"]) if r["lr"] else None,
                float(r["regret"]),
                float(r["fte"]),
                int(r["epochs"]),
                float(r["wall_s"]),
                r["error"],
            )
            for r in csv.DictReader(f)
        ]


def append_run(path: Path, run: Run) -> None:
    """Add ``run`` to the runs file (the header written with the first row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(RUN_HEADER)
        w.writerow(["" if v is None else v for v in astuple(run)])


def summary_rows(runs: Sequence[Run], order: Sequence[str] = (), labels: Sequence[str] = ()) -> list[list]:
    """Per landscape x range: [landscape, range, method, mean, p90, worst regret (%), mean FTE, no pick, n]
    (``replay.HEADER``'s order, numbers unformatted; method from each run's overrides). Landscapes in
    ``order`` first, in that order, then the others by name; ranges in the order of ``labels`` (as
    ``replay.ranges`` lists them), then in the order they first appear."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.landscape, r.range, r.sets), []).append(r)
    rank = {name: i for i, name in enumerate(order)}
    where = {label: i for i, label in enumerate(labels)}
    out = []
    for land, label, sets in sorted(
        groups, key=lambda k: (rank.get(k[0], len(rank)), k[0], where.get(k[1], len(where)))
    ):
        group = groups[(land, label, sets)]
        with np.errstate(invalid="ignore"):
            s = spread(r.regret for r in group)
        ftes = [r.fte for r in group if math.isfinite(r.fte)]
        out.append(
            [
                land,
                label,
                method_name(shlex.split(sets)),
                s.mean,
                math.inf if math.isnan(s.p90) else s.p90,  # numpy's percentile interpolates inf to nan
                s.worst,
                float(np.mean(ftes)) if ftes else math.nan,
                sum(r.lr is None for r in group),
                s.n,
            ]
        )
    return out


def readable(space: dict, workload: str) -> dict:
    """``space`` without the keys that neither the trial nor ``workload`` reads (a landscape's trial config
    carries the digits trial's width and depth also to a workload without them, which a sweep refuses)."""
    from orchestrator import trialkeys, workloads

    declared = trialkeys.declared_keys(workloads.resolve(workload), workload)
    if declared is None:
        return space
    known = trialkeys.trial_keys() | declared
    return {k: v for k, v in space.items() if k in known}


def sweep_config(name: str, seed: int, low: float, high: float, storage: str, sets: Sequence[str] = ()):
    """examples/digits.yaml with ``sets`` applied, then landscape ``name``'s trial config and the coarse range
    10**low..10**high, one point a decade (the module docstring); ValueError for a landscape without one."""
    if name not in TRIALS:
        raise ValueError(
            f"landscape={name!r}: no trial config in bench.replay.TRIALS (expected one of {sorted(TRIALS)})"
        )
    data = example(sets)
    space = {k: v for k, v in data["space"].items() if k not in DROPPED}
    for key, value in TRIALS[name].items():
        if key in data and key != "space":
            data[key] = value
        else:
            space[key] = value
    space["lr"] = {"log": [10.0**low, 10.0**high], "per_decade": 1}
    data["space"], data["seed"] = readable(space, data["workload"]), seed
    tag = f"{low:+.2f}_{high:+.2f}".replace("+", "p").replace("-", "m").replace(".", "")
    return build_config(data, f"real-{name}-{tag}-s{seed}", storage)


def run_sweep(name: str, land: Landscape, label: str, low: float, high: float, seed: int, sets, storage) -> Run:
    """One real sweep (``tuning.run``, quiet) on the Ray this process is connected to, judged on ``land``;
    a sweep that raises is a row with no pick and the error's last line, except one stopped by Ctrl-C
    (``SweepInterrupted``, raised). Its folder is removed afterwards."""
    from orchestrator import tuning
    from orchestrator.errors import SweepInterrupted

    cfg = sweep_config(name, seed, low, high, storage, sets)
    start = time.time()
    try:
        s = tuning.run(cfg, tuning.RunOptions(quiet=True))
    except SweepInterrupted:  # stopped (Ctrl-C): the batch ends, the sweep is not a row and runs next time
        raise
    except Exception as exc:  # a failed sweep is a result of the batch, not its end
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        error = f"{type(exc).__name__}: {lines[-1]}"[:300]
        return Run(
            name, label, low, high, seed, sets_text(sets), None, math.inf, math.nan, 0, time.time() - start, error
        )
    finally:
        shutil.rmtree(Path(storage) / cfg.name, ignore_errors=True)
    wall = time.time() - start
    return Run(
        name, label, low, high, seed, sets_text(sets), s.lr, land.regret(math.log10(s.lr)), s.fte, s.epochs, wall
    )


def run_cells(r: Run) -> list[str]:
    return [
        r.landscape,
        r.range,
        str(r.seed),
        "-" if r.lr is None else f"{r.lr:.4g}",
        pct(r.regret),
        f"{r.fte:.2f}",
        str(r.epochs),
        f"{r.wall_s:.0f}",
        r.error or "",
    ]


def render(
    runs: Sequence[Run], order: Sequence[str], command: str, results: Path, out: str, labels: Sequence[str] = ()
) -> str:
    """Write ``results/<out>.md`` and ``.csv`` (the summary in ``replay.HEADER``'s layout) from ``runs``;
    returns the Markdown."""
    rows = [[r[0], *cells(r[1:])] for r in summary_rows(runs, order, labels)]
    rank = {name: i for i, name in enumerate(order)}
    where = {label: i for i, label in enumerate(labels)}
    ordered = sorted(
        runs, key=lambda r: (rank.get(r.landscape, len(rank)), r.landscape, where.get(r.range, len(where)), r.seed)
    )
    walls: dict[str, list[float]] = {}
    for r in runs:
        walls.setdefault(r.landscape, []).append(r.wall_s)
    wall_text = "; ".join(f"{k} {np.mean(v):.0f} s ({len(v)})" for k, v in walls.items())
    text = (
        f"# Real sweeps judged on the landscapes ({len(runs)} sweeps)\n\n"
        f"Reproduce: `{command}` (resumable: rows in {out}_runs.csv are kept, only missing sweeps run). How the "
        f"sweeps are configured: the docstring of bench/real.py. Regret of the sweep's own pick against the "
        f"landscape's all-seed mean, interpolated in log lr (bench/yardstick.py); a failed sweep counts as inf.\n\n"
        f"Mean wall per sweep (sweeps), 2-core machine shared with other jobs: {wall_text or '-'}.\n\n"
        "## Per landscape x range (replay.md's columns)\n\n"
        + markdown_table(HEADER, rows)
        + "\n\n## Every sweep\n\n"
        + markdown_table(
            ["landscape", "range", "seed", "chosen lr", "regret", "FTE", "epochs", "wall s", "error"],
            [run_cells(r) for r in ordered],
        )
        + "\n"
    )
    write_results(out, text, HEADER, rows, results=results)
    return text


def plan(
    names: Sequence[str], lands: dict[str, Landscape], shifts, prefixes, repeats0: int, repeats: int
) -> list[tuple[str, str, float, float, int]]:
    """(landscape, label, low, high, seed) of every sweep of the batch, in the order they run: the ranges
    (``replay.ranges``) whose label starts with the first of ``prefixes``, seed 0 on every landscape, then
    seed 1, ...; then those of the next prefix. No prefixes: every range, one range index at a time."""
    per_land = {n: ranges(lands[n], shifts) for n in names}
    if prefixes:
        groups = [{n: [r for r in per_land[n] if r[0].startswith(p)] for n in names} for p in prefixes]
    else:
        most = max((len(v) for v in per_land.values()), default=0)
        groups = [{n: per_land[n][i : i + 1] for n in names} for i in range(most)]
    jobs: list[tuple[str, str, float, float, int]] = []
    for group in groups:
        for seed in range(max(repeats0, repeats)):
            for n in names:
                for label, low, high in group[n]:
                    job = (n, label, low, high, seed)
                    if seed < (repeats0 if label == SHIFT0 else repeats) and job not in jobs:
                        jobs.append(job)
    return jobs


def pending(jobs: Sequence[tuple[str, str, float, float, int]], runs: Sequence[Run], sets: Sequence[str]) -> list:
    """The ``jobs`` (``plan``) that no run with the same landscape, range, seed and overrides has done."""
    done = {r.key for r in runs}
    key = sets_text(sets)
    return [j for j in jobs if (j[0], j[1], j[4], key) not in done]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Real sweeps judged on the recorded landscapes (bench/real.py).")
    p.add_argument("--landscapes", nargs="+", default=LANDSCAPES, help="(default: %(default)s)")
    p.add_argument("--shifts", type=float, nargs="+", default=SHIFTS, help="grid shifts (default: %(default)s)")
    p.add_argument("--ranges", nargs="+", default=[], metavar="LABEL", help="only ranges whose label starts so")
    p.add_argument("--repeats-shift0", type=int, default=6, help="sweeps at shift 0 (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="sweeps on every other range (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="override a key of the example")
    p.add_argument("--out", default="real_sweeps", help="results file stem (default: %(default)s)")
    add_results_option(p)
    args = p.parse_args(argv)
    lands = {}
    try:
        example(args.set)
        for name in args.landscapes:
            if name not in TRIALS:
                raise ValueError(f"--landscapes {name}: no trial config in bench.replay.TRIALS ({sorted(TRIALS)})")
            lands[name] = Landscape.load(path_for(name, args.results))
    except ValueError as exc:
        print(f"bench.real: {exc}", file=sys.stderr)
        return 2
    runs_path = Path(args.results) / f"{args.out}_runs.csv"
    key = sets_text(args.set)
    jobs = plan(args.landscapes, lands, args.shifts, args.ranges, args.repeats_shift0, args.repeats)
    todo = pending(jobs, read_runs(runs_path), args.set)
    labels = list(dict.fromkeys(label for n in args.landscapes for label, _, _ in ranges(lands[n], args.shifts)))
    command = "python -m bench.real " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{len(jobs)} sweeps, {len(jobs) - len(todo)} already in {runs_path.name}, {len(todo)} to run", flush=True)

    def rewrite() -> None:
        runs = [r for r in read_runs(runs_path) if r.sets == key]
        if runs:
            render(runs, args.landscapes, command.strip(), args.results, args.out, labels)

    if todo:
        from cluster.connect import ray_session
        from orchestrator.errors import SweepInterrupted

        try:
            with tempfile.TemporaryDirectory(prefix="bench-real-") as storage, ray_session(None):
                for name, label, low, high, seed in todo:
                    run = run_sweep(name, lands[name], label, low, high, seed, args.set, storage)
                    append_run(runs_path, run)
                    print(" | ".join(run_cells(run)), flush=True)
                    rewrite()
        except (SweepInterrupted, KeyboardInterrupt):
            rewrite()
            print(f"bench.real: stopped; the sweeps done are in {runs_path} (run again to continue)", file=sys.stderr)
            return 130
    rewrite()
    summary = [r for r in read_runs(runs_path) if r.sets == key]
    if summary:
        print(markdown_table(HEADER, [[r[0], *cells(r[1:])] for r in summary_rows(summary, args.landscapes, labels)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
