"""Shared pieces of the benchmarks: the digits trial and sweep configs, retraining a configuration on fresh
seeds, the dense reference grid, Markdown/CSV writers. Retraining runs plain torch in worker processes (one
torch thread each), no Ray: it is the yardstick's side that trains."""

from __future__ import annotations

import copy
import csv
import math
import os
import re
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench.yardstick import RESULTS, regret  # noqa: F401 - regret: one home, re-exported for the scripts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits.yaml"
FRESH_SEEDS = (1001, 1002, 1003, 1004, 1005)  # never used by a sweep: picks are judged on new seeds
MAX_EPOCHS = 27  # the digits workload's epochs (examples/digits.yaml)
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd", "momentum": 0.9},
    "adam": {"optimizer": "adam"},
}


def digits_trial(optimizer: str, max_epochs: int = MAX_EPOCHS) -> dict:
    """The trial config every digits bench trains and judges: digits_mlp, batch 32, width 64, depth 2."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: expected one of {sorted(OPTIMIZERS)}")
    return {
        "workload": "digits_mlp",
        "max_epochs": max_epochs,
        "batch_size": 32,
        "width": 64,
        "depth": 2,
        **OPTIMIZERS[optimizer],
    }


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float, as sweep configs are read."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_yaml(text: str) -> Any:
    """A YAML document as sweep configs read it (``1e-6`` is a float)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def example(sets: Sequence[str] = (), path: Path = EXAMPLE) -> dict:
    """The mapping of ``examples/digits.yaml`` with each ``KEY=YAML`` of ``sets`` applied in order (dotted
    keys reach into nested mappings, created when missing). ValueError for an item without ``=``."""
    data = read_yaml(Path(path).read_text())
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"set={item!r}: expected KEY=YAML, e.g. zoom.max_rounds=2")
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = read_yaml(value)
    return data


def sweep_config(data: dict, name: str, storage: str, source: str = "bench"):
    """The one builder of the benches' sweep configs: ``data`` (a sweep YAML's mapping) with ``name`` and
    ``storage`` set, validated by ``orchestrator.config.parse`` (``source`` names it in errors)."""
    from orchestrator.config import parse

    return parse({**copy.deepcopy(data), "name": name, "storage": storage}, source)


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
    """``config`` once per seed (``seed_offset`` 0: the seed is used as given)."""
    return [{**config, "seed": s, "seed_offset": 0} for s in seeds]


def mean_loss(config: dict, seeds=FRESH_SEEDS) -> float:
    """Mean final validation loss of ``config`` over ``seeds``; inf when any of them diverged."""
    losses = final_losses(seeded(config, seeds))
    return statistics.fmean(losses) if all(map(math.isfinite, losses)) else math.inf


def reference_grid(
    name: str, base: dict, lrs: list[float], seeds=FRESH_SEEDS, results: Path = RESULTS
) -> list[tuple[float, float]]:
    """(lr, mean final val loss over seeds) on a dense grid; cached in RESULTS/reference_NAME.csv (reused
    when its lrs are ``lrs``)."""
    path = Path(results) / f"reference_{name}.csv"
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
        chunk = losses[i * k : (i + 1) * k]
        rows.append((lr, statistics.fmean(chunk) if all(map(math.isfinite, chunk)) else math.inf))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lr", "mean_val_loss"])
        w.writerows(rows)
    return rows


def pct(value: float) -> str:
    """A regret (or any percentage) as the tables print it: one decimal and a % sign."""
    return f"{value:.1f}%"


def parse_pct(text: str) -> float:
    """A percentage cell of a stored table ("6.0%", "inf", "inf%") back to a number."""
    return float(text.strip().rstrip("%"))


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; cells are written with ``str``."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_results(stem: str, text: str, header: list[str], rows: list[list], results: Path = RESULTS) -> None:
    """RESULTS/STEM.md (the printed text) and RESULTS/STEM.csv (the table)."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.md").write_text(text)
    with (results / f"{stem}.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def add_results_option(parser) -> None:
    """``--results DIR``: where a bench reads and writes its tables (default bench/results)."""
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of the result tables (default: %(default)s)"
    )
