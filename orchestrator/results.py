"""The stored results: one Parquet row per trial and epoch. pyarrow only (no Ray).

Files in a sweep folder (``STORAGE/NAME``, also Ray Tune's experiment folder):
- ``trials.parquet``: the rows (schema below);
- ``rounds.json``: the sweep's metric and mode, the zoom's rounds (each group's bracket: the range of
  rates the zoom searched that round, ``{"low", "high"}`` in the parameter's units, and the reason) and why it
  stopped (``rounds_document``; ``documents.bracket_of`` also reads the older unlabelled
  ``[centre, half-width]``; ``documents`` holds the shape checks ``read_json`` applies);
- ``sweep.yaml``: the config the sweep ran with.
Writes are atomic: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import enum
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.documents import Bracket, cut, preflight_problem, rounds_problem
from orchestrator.errors import NoMetricError, ResultsError  # noqa: F401  (re-exported: one home in errors.py)

TRIALS = "trials.parquet"
ROUNDS = "rounds.json"


class TrialStatus(str, enum.Enum):
    """A trial's status. An ended trial is stored with one of the last four (the ``status`` column);
    ``pending`` and ``running`` are only seen while a sweep runs. A string: ``str()`` and f-strings give
    the value (``enum.StrEnum``'s behaviour, which needs Python 3.11)."""

    PENDING = "pending"  # created, waiting for resources
    RUNNING = "running"
    COMPLETED = "completed"  # trained every epoch
    STOPPED = "stopped"  # stopped early by the scheduler (ASHA)
    DIVERGED = "diverged"  # its last reported metric is not finite
    ERRORED = "errored"  # raised, or lost and out of retries

    @classmethod
    def ended(cls, *, diverged: bool, errored: bool, epochs: int, max_epochs: int) -> TrialStatus:
        """The status of a trial that ended: diverged (last metric not finite) before errored, then
        completed when it reached ``max_epochs`` (0: unknown, never reached), else stopped."""
        if diverged:
            return cls.DIVERGED
        if errored:
            return cls.ERRORED
        if max_epochs and epochs >= max_epochs:
            return cls.COMPLETED
        return cls.STOPPED

    def __str__(self) -> str:
        return self.value


class Mode(str, enum.Enum):
    """Which way the sweep's metric is better. The zoom always minimises: ``loss`` turns a metric value into
    the score it compares (the value itself, or its negation for ``max``), ``metric`` turns a score back."""

    MIN = "min"
    MAX = "max"

    def loss(self, value: float) -> float:
        return value if self is Mode.MIN else -value

    metric = loss  # the negation is its own inverse

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Goal:
    """The sweep's metric as the zoom minimises it: ``mode``, and ``target``, the best value the metric can
    take when it has one (accuracy 1.0). ``loss`` is the distance from the target (``target - value`` for
    max, ``value - target`` for min), or without a target the value itself (min) or its negation (max); the
    zoom's ratio rules ("3x worse": the cliff) then read as they do on a loss. ``metric`` turns a loss back."""

    mode: Mode = Mode.MIN
    target: float | None = None

    def loss(self, value: float) -> float:
        if self.mode is Mode.MIN:
            return value - (self.target or 0.0)
        return self.target - value if self.target is not None else -value

    def metric(self, loss: float) -> float:
        if self.mode is Mode.MIN:
            return loss + (self.target or 0.0)
        return self.target - loss if self.target is not None else -loss


def rounds_document(
    *,
    metric: str,
    mode: Mode | str,
    param: str,
    max_epochs: int,
    rounds: list[Any],
    stop_reason: str | None,
    groups: list[dict[str, Any]] | None,
    cliff_margin: float | None,
    target: float | None = None,
) -> dict[str, Any]:
    """What ``rounds.json`` holds, from the zoom's rounds (``zoom.Round``: index, points, brackets as
    (centre, half-width), reason)."""
    return {
        "metric": metric,
        "mode": str(Mode(mode)),
        "target": target,
        "param": param,
        "max_epochs": max_epochs,
        "rounds": [
            {
                "index": r.index,
                "points": len(r.points),
                "reason": r.reason,
                "brackets": {str(g): Bracket.of(*b).stored() for g, b in r.brackets.items()},
            }
            for r in rounds
        ],
        "stop_reason": stop_reason,
        "groups": groups,
        "cliff_margin": cliff_margin,
    }


SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("round", pa.int32()),
        ("group", pa.int32()),
        ("lr", pa.float64()),  # the zoomed parameter's value for the trial
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("val_error", pa.float64()),
        ("metric", pa.float64()),  # the sweep's metric (rounds.json ``metric``, any key reported) as reported
        ("lr_epoch", pa.float64()),  # the learning rate used during this epoch (after decay)
        ("diverged", pa.bool_()),
        ("status", pa.string()),  # of the trial: a TrialStatus that ended (completed | stopped | diverged | errored)
        ("error", pa.string()),
        ("failures", pa.int32()),  # times the trial crashed or lost its node and was retried
        ("device", pa.string()),
        ("node_ip", pa.string()),
        ("epoch_seconds", pa.float64()),
        ("ended_at", pa.float64()),  # unix time the epoch ended (utilization, throughput)
        ("config", pa.string()),  # the trial's whole config, JSON
    ]
)
# the columns the driver fills per trial; every other column of SCHEMA is a key of what a trial reports
# each epoch, kept from its result as it comes (``EPOCH_KEYS``), anything else in the result dropped
TRIAL_KEYS = ("trial_id", "round", "group", "lr", "status", "error", "failures", "config")
EPOCH_KEYS = tuple(name for name in SCHEMA.names if name not in TRIAL_KEYS)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once (a temporary file in the same folder, then ``os.replace``).
    Raises ``ResultsError`` (one line: the path and the cause, e.g. no space left) when it cannot be
    written; the temporary file is removed and ``path`` keeps what it held."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp makes it owner-only; results on shared storage are for the team
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise ResultsError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None
    except BaseException:
        if tmp:
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


# the columns every stored row has a value in (an errored trial's only row has no epoch or metric)
REQUIRED = ("trial_id", "round", "group", "lr", "status")


def read_trials(folder: str | Path) -> list[dict[str, Any]]:
    """Rows of ``folder/trials.parquet``. Raises ``ResultsError`` (one line) when absent or unreadable, when
    a column of ``SCHEMA`` holds another type (integers of another width, and integers where floats are
    expected, are read as ``SCHEMA`` says), when a ``REQUIRED`` column holds a null, or when a ``config``
    is not a JSON object."""
    path = Path(folder) / TRIALS
    if not Path(folder).is_dir():
        raise ResultsError(f"{folder}: no such sweep folder (expected STORAGE/NAME, e.g. runs/digits-lr)")
    if not path.exists():
        raise ResultsError(f"{path}: no results yet (expected a folder written by 'sweep run')")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(f"{path}: corrupt Parquet file ({_first_line(exc)})") from None
    missing = {"trial_id", "round", "group", "lr", "epoch", "val_loss", "status"} - set(table.column_names)
    if missing:
        raise ResultsError(f"{path}: missing columns {sorted(missing)}: not a sweep results file")
    table = _as_schema(table, path)
    for name in REQUIRED:
        if table.column(name).null_count:
            raise ResultsError(
                f"{path}: column {name} has {table.column(name).null_count} empty value(s); "
                f"every row needs one: not a sweep results file"
            )
    rows = table.to_pylist()
    if not rows:
        raise ResultsError(f"{path}: holds no trial results")
    for r in rows:
        text = r.get("config")
        try:
            ok = text is None or isinstance(json.loads(text), dict)
        except ValueError:
            ok = False
        if not ok:
            raise ResultsError(
                f"{path}: trial {cut(str(r['trial_id']))}: config is not a JSON object (got {cut(repr(text))})"
            )
    return rows


def _as_schema(table: pa.Table, path: Path) -> pa.Table:
    """``table`` with each column ``SCHEMA`` names cast to its type when that loses nothing (int64 to
    int32, int to float); any other type difference raises ``ResultsError`` naming the column."""
    for name in table.column_names:
        if name not in SCHEMA.names:
            continue
        want, have = SCHEMA.field(name).type, table.schema.field(name).type
        if have == want or pa.types.is_null(have):
            if pa.types.is_null(have):
                table = table.set_column(table.column_names.index(name), name, pa.nulls(len(table), want))
            continue
        numeric = (pa.types.is_integer(want) or pa.types.is_floating(want)) and (
            pa.types.is_integer(have) or (pa.types.is_floating(have) and pa.types.is_floating(want))
        )
        text = pa.types.is_string(want) and pa.types.is_large_string(have)
        try:
            if not (numeric or text):
                raise pa.ArrowInvalid("not castable")
            column = table.column(name).cast(want, safe=True)
        except pa.ArrowException:
            raise ResultsError(
                f"{path}: column {name} holds {have}, expected {want}: not a sweep results file "
                f"(or one written by another program)"
            ) from None
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return cut(text.splitlines()[0]) if text else type(exc).__name__


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when there is no such file. Raises ``ResultsError`` (one line naming
    the file and what is wrong) when it cannot be read, is not JSON, or, for a file whose shape is known
    (``rounds.json``, ``preflight.json``: ``SHAPES``), does not have that shape."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ResultsError(f"{path}: corrupt JSON ({_first_line(exc)})") from None
    check = SHAPES.get(path.name)
    if check is not None:
        problem = check(data)
        if problem:
            raise ResultsError(f"{path}: {problem}: not a file written by 'sweep run'")
    return data


SHAPES = {ROUNDS: rounds_problem, "preflight.json": preflight_problem}  # the documents ``read_json`` checks
