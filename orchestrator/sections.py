"""The sections of a sweep config as frozen pydantic models (``space`` ranges, ``asha``, ``zoom``, ``notify``,
``warm_start``, ``resources``, ``cost``), each validating its own fields; ``shown`` cuts a value for an error
message. Pure: imports neither Ray nor torch."""

from __future__ import annotations

import math
import reprlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator import space as grids

Scalar = bool | int | float | str

SHOWN = 200  # characters of a value an error message shows
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 6, 6, 6
_repr.maxstring, _repr.maxother, _repr.maxlong = SHOWN // 2, SHOWN // 2, SHOWN // 2


def shown(value: Any) -> str:
    """``repr(value)`` cut to about ``SHOWN`` characters, for error messages (nested or long values too)."""
    text = _repr.repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


class Frozen(BaseModel):
    """A model that refuses unknown keys and cannot be changed once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LogRange(Frozen):
    """``{log: [low, high], per_decade: N}``: log-spaced values, N per decade (the zoom refines these)."""

    log: tuple[float, float]
    per_decade: float = 1.0

    @field_validator("log")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        low, high = v
        if not (math.isfinite(low) and math.isfinite(high)) or low <= 0:
            raise ValueError(f"expected finite 0 < low <= high, got [{low}, {high}]")
        if high < low:
            raise ValueError(f"range is inverted: [{low}, {high}], expected low <= high")
        return v

    @field_validator("per_decade")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (v > 0 and v <= 100):
            raise ValueError(f"per_decade={v}: expected 0 < per_decade <= 100")
        return v

    def values(self) -> list[float]:
        return grids.log_grid(self.log[0], self.log[1], self.per_decade)


class LinearRange(Frozen):
    """``{linear: [low, high], points: N}``: N evenly spaced values."""

    linear: tuple[float, float]
    points: int = Field(default=3, ge=1, le=1000)

    @field_validator("linear")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (math.isfinite(v[0]) and math.isfinite(v[1])) or v[1] < v[0]:
            raise ValueError(f"expected finite low <= high, got [{v[0]}, {v[1]}]")
        return v

    def values(self) -> list[float]:
        return grids.linear_grid(self.linear[0], self.linear[1], self.points)


Dimension = LogRange | LinearRange | list[Scalar] | Scalar


class Asha(Frozen):
    """Early stopping with Ray's ASHAScheduler. ``grace_period`` defaults to a third of ``max_epochs``:
    with a grace period of 1 epoch ASHA prefers too-large learning rates (their loss falls faster at first)."""

    enabled: bool = True
    grace_period: int | None = Field(default=None, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1.0, le=100.0)
    coarse_only: bool = Field(default=True, description="stop early in round 0 only; refinement rounds run to the end")


class Zoom(Frozen):
    """Coarse-then-fine refinement of ``param`` (a log range in ``space``)."""

    param: str = "lr"
    max_rounds: int = Field(default=2, ge=1, le=50)  # why 2: docs/decisions.md, "Two zoom rounds"
    points_per_round: int = Field(default=4, ge=1, le=1000)
    resolution: float = Field(
        default=0.1, gt=0, le=10, description="stop when the bracket's spacing (decades) falls under this"
    )
    tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="stop when a round improves the best by less than this fraction (0: off; "
        "single-seed noise often exceeds the gain of a finer round)",
    )
    budget_fte: float | None = Field(
        default=None, gt=0, le=10000, description="stop when epochs spent / max_epochs reaches this"
    )
    budget_wall_s: float | None = Field(
        default=None, gt=0, le=1e8, description="start no new round once the sweep has run this many seconds"
    )
    budget_gpu_hours: float | None = Field(
        default=None, gt=0, le=1e7, description="start no new round once trials have held GPUs this long"
    )
    on_budget: Literal["finish", "stop"] = Field(
        default="finish", description="when a budget ends, running trials finish, or stop at their next report"
    )
    groups: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="how many of the best groups (combinations of the other dimensions) to refine",
    )
    cliff_margin: float | None = Field(
        default=1.0,
        ge=0,
        le=10,
        description="decades the refined centre and the pick keep below the "
        "divergence cliff (the first point above the best that is 3x "
        "worse or diverged); null: off",
    )
    decision_epoch: int | None = Field(
        default=None,
        ge=1,
        description="plan the next round once every trial of the current one reached "
        "this epoch (default: ASHA's first rung, a third of max_epochs, "
        "ASHA on or off); max_epochs makes rounds wait for each other",
    )
    coarse_data: float = Field(
        default=1.0,
        description="the first coarse_rounds rounds (round 0 by default) train on this fraction of the training "
        "data (the built-in loop's data_fraction); the later rounds and the pick use the full data; FTE counts "
        "the data a trial saw",
    )
    coarse_rounds: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="how many rounds train on coarse_data (above max_rounds: every round); when no round "
        "trained on all the data, one more trial trains the pick on all of it",
    )

    @field_validator("coarse_data")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 < v <= 1:  # NaN fails too
            raise ValueError(f"coarse_data={v}: expected a fraction of the training data in (0, 1], such as 0.2")
        return v


class Notify(Frozen):
    """Who is told, once, when a sweep ends, fails or is stopped (``orchestrator.notify``)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="an http(s) URL that gets a JSON POST with the one-line summary",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="a command (no shell) that gets the summary on stdin and in SWEEP_SUMMARY",
    )


class WarmStart(Frozen):
    """Seed round 0 with an old sweep's pick (``orchestrator.warm``)."""

    run: str = Field(min_length=1, description="the old sweep's folder or URI (STORAGE/NAME)")
    scaling: Literal["linear", "sqrt"] = Field(
        default="linear", description="how the old pick moves when the global batch (batch_size x workers) changed"
    )
    width: float = Field(default=1.0, gt=0, le=10, description="decades round 0 looks either side of the prior")


class Resources(Frozen):
    cpu: float = Field(default=1.0, gt=0, le=1024)
    gpu: float = Field(default=0.0, ge=0, le=64)
    workers: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="processes per trial (data-parallel, Ray Train); cpu and gpu are per worker",
    )
    custom: dict[str, float] = Field(default_factory=dict)

    @field_validator("gpu")
    @classmethod
    def _gpu_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"gpu={v}: expected a fraction <= 1 or a whole number of GPUs")
        return v


class AutoBatch(Frozen):
    """How ``space.batch_size: auto`` and ``sweep check`` find the largest batch that fits
    (``orchestrator.memprobe``): doubling from ``start``, then bisecting, up to ``max``. ``memory_limit_mb``:
    a memory stand-in (the bytes autograd saves for the backward pass may total at most this); none: the
    device's own memory decides (a GPU's out-of-memory)."""

    memory_limit_mb: float | None = Field(default=None, gt=0, le=1e7, allow_inf_nan=False)
    start: int = Field(default=8, ge=1, le=1 << 20)
    max: int = Field(default=65536, ge=1, le=1 << 24)


class Cost(Frozen):
    """Money per hour of what trials hold (``orchestrator.cost``): the report's money figure."""

    gpu_hour: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False, description="money per GPU-hour")
    cpu_hour: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False, description="money per CPU-hour")
    currency: str = Field(default="USD", pattern=r"^[A-Za-z$€£¥]{1,8}$", description="the money's unit, as printed")
