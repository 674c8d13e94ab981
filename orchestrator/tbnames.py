"""What TensorBoard calls the parts of a sweep, with no Ray in it: the sweep-level run ``SWEEP_RUN``;
``Searched`` (what the sweep varies: the HParams columns) and the run name of a trial (``run_name``); the tag
of each trial scalar (``trial_scalars``, ``tag_of``); a trial config as HParams values (``hparams_of``).
``board``'s callbacks, ``tbsummary`` and ``tbserver`` name runs, tags and columns through these.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

SWEEP_RUN = "_sweep"  # the sweep-level TensorBoard run, beside the trial runs


@dataclass(frozen=True)
class Searched:
    """What a sweep varies: the zoomed parameter ``param`` over ``low..high`` (the config's range), the
    crossed dimensions ``grid`` (``(key, values)`` pairs) and at most ``max_rounds`` rounds. TensorBoard
    declares these (and ``round``) as the HParams columns and names trial runs by them."""

    param: str = "lr"
    low: float = math.nan
    high: float = math.nan
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    max_rounds: int = 0

    @classmethod
    def of(cls, cfg: Any) -> Searched:
        """From a ``config.SweepConfig``."""
        low, high = cfg.zoom_range.log
        return cls(
            param=cfg.zoom.param,
            low=float(low),
            high=float(high),
            grid=tuple((k, tuple(v)) for k, v in cfg.grid_dimensions().items()),
            max_rounds=int(cfg.zoom.max_rounds),
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """The HParams columns: ``round``, the zoomed parameter, the crossed dimensions."""
        return ("round", self.param, *(k for k, _ in self.grid))


# (key in the trial's result, TensorBoard tag): what a trial run holds, step = epoch. TensorBoard's Time
# Series page orders its sections by tag: "loss" before "lr", "sweep", "time", "val_error".
TRIAL_SCALARS = (
    ("val_loss", "loss/val_loss"),
    ("train_loss", "loss/train_loss"),
    ("val_error", "val_error"),
    ("lr_epoch", "lr"),
    ("epoch_seconds", "time/epoch_seconds"),
)


def trial_scalars(metric: str) -> tuple[tuple[str, str], ...]:
    """``TRIAL_SCALARS``, with the sweep's metric added (tag: its name) when it is another."""
    return TRIAL_SCALARS if any(k == metric for k, _ in TRIAL_SCALARS) else (*TRIAL_SCALARS, (metric, metric))


def tag_of(key: str, metric: str = "val_loss") -> str:
    """The TensorBoard tag of a trial's result ``key`` (``val_loss`` -> ``loss/val_loss``)."""
    return dict(trial_scalars(metric)).get(key, key)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")


def run_name(trial_id: str, config: dict[str, Any], searched: Searched | None = None) -> str:
    """A trial's TensorBoard run (a folder name): ``r<round> <param>=<value> [<key>=<value> ...] <trial id>``,
    e.g. ``r1 lr=0.00316 optimizer=adam 3f2a1b9c``: the round, the zoomed value, the crossed dimensions'
    values, the id. Characters other than letters, digits and ``_.,=+-`` become ``_``; at most 120."""
    s = searched or Searched()
    parts = [f"r{int(number(config.get('round', 0)) or 0)}", _pair(s.param, config.get(s.param))]
    parts += [_pair(k, config.get(k)) for k, _ in s.grid]
    name = " ".join(_UNSAFE.sub("_", p) for p in parts)[:110]
    return f"{name} {_UNSAFE.sub('_', str(trial_id))[:40]}"


def _pair(key: str, value: Any) -> str:
    shown = (
        f"{value:.3g}"
        if isinstance(value, float)
        else json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))
        if isinstance(value, dict)
        else str(value)
    )
    return f"{key}={shown}"


def number(value: Any) -> float:
    """``float(value)``, or NaN for what is not a number (``None``, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def hparams_of(config: dict[str, Any], keys: tuple[str, ...] | None = None) -> dict[str, str | float | bool]:
    """A trial config as TensorBoard HParams values: nested dicts flattened to ``a/b``; numbers as floats;
    strings and booleans as they are; lists and other values as JSON text; ``None`` and ``_``-private keys
    left out; ``schedule`` = ``constant`` when absent (the trial's default decay law). ``keys``: only
    these (``Searched.keys``), when given, a mapping among them as one JSON text."""
    out: dict[str, str | float | bool] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(f"{prefix}/{k}" if prefix else str(k), v)
            return
        if prefix.startswith("_") or value is None:
            return
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
            value = value.item()
        if isinstance(value, (bool, str)):
            out[prefix] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix] = float(value)
        else:
            out[prefix] = (
                json.dumps(value, default=str, sort_keys=True) if isinstance(value, (list, tuple)) else str(value)
            )

    visit("", config)
    out.setdefault("schedule", "constant")
    if keys is None:
        return out
    picked: dict[str, str | float | bool] = {}
    for k in keys:  # a searched value that is a mapping (a decay law with its arguments): one JSON text
        if isinstance(config.get(k), dict):
            picked[k] = json.dumps(config[k], default=str, sort_keys=True)
        elif k in out:
            picked[k] = out[k]
    return picked
