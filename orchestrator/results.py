"""The stored results: one Parquet row per trial and epoch. pyarrow only (no Ray).

Files in a sweep folder (``STORAGE/NAME``, also Ray Tune's experiment folder):
- ``trials.parquet``: the rows (schema below);
- ``rounds.json``: the zoom's rounds (brackets, reasons) and why it stopped;
- ``sweep.yaml``: the config the sweep ran with.
Writes are atomic: a temporary file in the same folder, then ``os.replace``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TRIALS = "trials.parquet"
ROUNDS = "rounds.json"

SCHEMA = pa.schema([
    ("trial_id", pa.string()),
    ("round", pa.int32()),
    ("group", pa.int32()),
    ("lr", pa.float64()),  # the zoomed parameter's value for the trial
    ("epoch", pa.int32()),
    ("train_loss", pa.float64()),
    ("val_loss", pa.float64()),
    ("val_error", pa.float64()),
    ("lr_epoch", pa.float64()),  # the learning rate used during this epoch (after decay)
    ("diverged", pa.bool_()),
    ("status", pa.string()),  # of the trial: completed | stopped | diverged | errored
    ("error", pa.string()),
    ("failures", pa.int32()),  # times the trial crashed or lost its node and was retried
    ("device", pa.string()),
    ("node_ip", pa.string()),
    ("epoch_seconds", pa.float64()),
    ("ended_at", pa.float64()),  # unix time the epoch ended (utilization, throughput)
    ("config", pa.string()),  # the trial's whole config, JSON
])


class ResultsError(ValueError):
    """A results folder is missing, empty or corrupt."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it owner-only; results on shared storage are for the team
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_trials(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """Write the rows (keys as in SCHEMA; missing keys become nulls) atomically."""
    columns = {name: [r.get(name) for r in rows] for name in SCHEMA.names}
    table = pa.table(columns, schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    target = Path(folder) / TRIALS
    atomic_write_bytes(target, sink.getvalue().to_pybytes())
    return target


def read_trials(folder: str | Path) -> list[dict[str, Any]]:
    """Rows of ``folder/trials.parquet``. Raises ``ResultsError`` (one line) when absent or unreadable."""
    path = Path(folder) / TRIALS
    if not Path(folder).is_dir():
        raise ResultsError(f"{folder}: no such sweep folder (expected STORAGE/NAME, e.g. runs/digits-lr)")
    if not path.exists():
        raise ResultsError(f"{path}: no results yet (expected a folder written by 'sweep run')")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(f"{path}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None
    missing = {"trial_id", "round", "group", "lr", "epoch", "val_loss", "status"} - set(table.column_names)
    if missing:
        raise ResultsError(f"{path}: missing columns {sorted(missing)}: not a sweep results file")
    rows = table.to_pylist()
    if not rows:
        raise ResultsError(f"{path}: holds no trial results")
    return rows


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: corrupt JSON ({exc})") from None
