"""Sweep YAML -> validated, frozen ``SweepConfig`` (pydantic v2): ``load`` (a file), ``loads`` (text),
``parse`` (loaded data) and ``dump`` (back to YAML). Errors are one-line ``ConfigError`` naming the file, the
key and what was expected. The sections are in ``sections``, the YAML mechanics in ``yamldoc``, the trial-key
checks in ``trialkeys``, resume comparisons in ``resume``. Importing it needs neither Ray nor torch; ``parse``
imports the workload and ``schedules`` to check them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from orchestrator import space as grids, storage as stores
from orchestrator.errors import ConfigError  # also importable from here; its one home is errors.py
from orchestrator.sections import (
    SHOWN,
    Asha,
    AutoBatch,
    Cost,
    Dimension,
    Frozen,
    LinearRange,
    LogRange,
    Notify,
    Resources,
    WarmStart,
    Zoom,
    shown,
)
from orchestrator.trialkeys import PLUGIN_HINT, check_space_keys, check_trials
from orchestrator.yamldoc import MAX_NODES, count_nodes, load_yaml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SweepConfig(Frozen):
    name: str
    workload: str | None = None
    train: str | None = Field(
        default=None,
        description="'package.module:function': a training function train(config, trial), instead of workload:",
    )
    metric: str = Field(
        default="val_loss",
        pattern=r"^[A-Za-z_][A-Za-z0-9_./-]{0,99}$",
        description="any key the training reports each epoch (val_loss, val_accuracy, ...)",
    )
    mode: Literal["min", "max"] = Field(default="min", description="min: lower metric is better; max: higher")
    target: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="the best value the metric can take (accuracy: 1.0); the zoom then "
        "minimises the distance to it, so '3x worse' reads as on a loss",
    )
    max_epochs: int = Field(ge=1, le=100000)
    seed: int = Field(default=0, ge=0)
    storage: str = Field(
        default="runs", description="a local or shared folder, or a URI pyarrow opens (s3://bucket/prefix)"
    )
    checkpoint_every: int = Field(default=0, ge=0, le=100000, description="epochs between checkpoints; 0: none")
    max_failures: int = Field(default=1, ge=0, le=100)
    max_trials_per_round: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="the most trials one round may hold (round 0: every group x every "
        "value of the zoomed range); a larger space is refused",
    )
    space: dict[str, Dimension]
    asha: Asha = Asha()
    zoom: Zoom = Zoom()
    resources: Resources = Resources()
    cost: Cost | None = None  # rates: the report gives the sweep's cost in money
    notify: Notify | None = None
    warm_start: WarmStart | None = None
    autobatch: AutoBatch = AutoBatch()  # space.batch_size: auto, and sweep check: the largest batch that fits

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if ".." in v or not _NAME.fullmatch(v):  # fullmatch: `$` would let a trailing newline through
            raise ValueError(
                f"name={shown(v)}: expected letters, digits, '.', '_' or '-' (no path separators or '..', at most 100)"
            )
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str) -> str:
        return stores.check(v)

    @model_validator(mode="after")
    def _zoom_param_is_log_range(self) -> SweepConfig:
        if (self.workload is None) == (self.train is None):
            raise ValueError(
                "train: give either workload: (a built-in or 'package.module:callable' returning a Workload) or "
                "train: ('package.module:function', a training function), not both"
                if self.workload
                else "workload: required key is missing (or train: 'package.module:function' for a training function)"
            )
        dim = self.space.get(self.zoom.param)
        if not isinstance(dim, LogRange):
            raise ValueError(
                f"space.{self.zoom.param}: expected a log range such as {{log: [1e-6, 1e-1], per_decade: 1}} "
                f"(zoom.param={self.zoom.param!r} is refined coarse-then-fine)"
            )
        if self.asha.grace_period is not None and self.asha.grace_period > self.max_epochs:
            raise ValueError(f"asha.grace_period={self.asha.grace_period}: expected <= max_epochs={self.max_epochs}")
        if self.zoom.decision_epoch is not None and self.zoom.decision_epoch > self.max_epochs:
            raise ValueError(
                f"zoom.decision_epoch={self.zoom.decision_epoch}: expected <= max_epochs={self.max_epochs}"
            )
        if self.zoom.coarse_data < 1 and self.train is not None:
            raise ValueError(
                f"zoom.coarse_data={self.zoom.coarse_data:g}: expected 1 with train: (a training function of your "
                f"own does not read data_fraction); the built-in loop (workload:) is what trains round 0 on a "
                f"fraction of the data"
            )
        if self.zoom.coarse_data < 1 and "data_fraction" in self.space:
            raise ValueError(
                f"space.data_fraction: set with zoom.coarse_data={self.zoom.coarse_data:g}, which gives round 0 "
                f"its data_fraction; expected one of the two"
            )
        if self.zoom.coarse_rounds > 1 and self.zoom.coarse_data >= 1:
            raise ValueError(
                f"zoom.coarse_rounds={self.zoom.coarse_rounds}: expected 1 with zoom.coarse_data 1 (every round "
                f"trains on all the data); set zoom.coarse_data to a fraction such as 0.2"
            )
        reserved = {"workload", "train", "max_epochs", "round", "group", "seed_offset"} & set(self.space)
        if reserved:
            raise ValueError(f"space.{sorted(reserved)[0]}: reserved key, set it at the top level instead")
        self._refuse_oversized()
        return self

    def _refuse_oversized(self) -> None:
        """Round 0 runs every group at every value of the zoomed range; later rounds ``zoom.groups`` groups
        at ``zoom.points_per_round`` values (and one more past an edge). Counted, not built."""
        groups = 1
        for k, v in self.space.items():
            if k != self.zoom.param:
                groups *= (
                    len(v.values()) if isinstance(v, (LogRange, LinearRange)) else len(v) if isinstance(v, list) else 1
                )
        cap = self.max_trials_per_round
        first = groups * len(self.zoom_range.values())
        if first > cap:
            raise ValueError(
                f"space: round 0 would hold {first} trials ({groups} groups x {len(self.zoom_range.values())} "
                f"values of {self.zoom.param}), more than max_trials_per_round={cap}; narrow the space, or raise "
                f"max_trials_per_round (a top-level key, at most 1000000) if you mean it"
            )
        later = min(self.zoom.groups, groups) * (self.zoom.points_per_round + 1)
        if later > cap:
            raise ValueError(
                f"zoom: a refinement round would hold up to {later} trials ({min(self.zoom.groups, groups)} groups "
                f"x {self.zoom.points_per_round}+1 points), more than max_trials_per_round={cap}; lower "
                f"zoom.groups or zoom.points_per_round, or raise max_trials_per_round"
            )

    # --- derived views -------------------------------------------------------------------------------
    @property
    def grace_period(self) -> int:
        return self.asha.grace_period or max(1, self.max_epochs // 3)

    @property
    def decision_epoch(self) -> int:
        """When the next round is planned: ``zoom.decision_epoch``, else ASHA's first rung."""
        return self.zoom.decision_epoch or self.grace_period

    @property
    def zoom_range(self) -> LogRange:
        return self.space[self.zoom.param]  # type: ignore[return-value]

    def fixed(self) -> dict[str, Any]:
        """The dimensions that hold one value."""
        return {k: v for k, v in self.space.items() if not isinstance(v, (LogRange, LinearRange, list))}

    def grid_dimensions(self) -> dict[str, list[Any]]:
        """The crossed dimensions other than the zoomed one, each as a list of values."""
        out: dict[str, list[Any]] = {}
        for k, v in self.space.items():
            if k == self.zoom.param:
                continue
            if isinstance(v, (LogRange, LinearRange)):
                out[k] = v.values()
            elif isinstance(v, list):
                out[k] = list(v)
        return out

    def groups(self) -> list[dict[str, Any]]:
        """Every combination of the crossed dimensions (``[{}]`` when there are none)."""
        return grids.cross(self.grid_dimensions())

    def base_config(self) -> dict[str, Any]:
        """What every trial's config holds besides its group and zoomed value."""
        what = {"workload": self.workload} if self.workload is not None else {"train": self.train}
        return {
            **what,
            "max_epochs": self.max_epochs,
            "seed": self.seed,
            "checkpoint_every": self.checkpoint_every,
            "_metric": self.metric,
            "_mode": self.mode,
            **self.fixed(),
        }


def _where(loc: tuple[Any, ...]) -> str:
    parts = [
        str(p)
        for p in loc
        if not (
            isinstance(p, str)
            and p in {"LogRange", "LinearRange", "list[union[bool,int,float,str]]", "bool", "int", "float", "str"}
        )
    ]
    return ".".join(parts) or "(top level)"


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    # A union reports one error per branch: prefer a branch's own message over "not a bool/int/...".
    best = min(
        errors,
        key=lambda e: (
            e["type"]
            in {
                "bool_type",
                "int_type",
                "float_type",
                "string_type",
                "list_type",
                "model_type",
                "bool_parsing",
                "int_parsing",
                "float_parsing",
                "dict_type",
                "model_attributes_type",
            },
            len(e["loc"]),
        ),
    )
    msg = best["msg"].removeprefix("Value error, ")
    if best["type"] == "extra_forbidden":
        msg = "unknown key"
    elif best["type"] == "missing":
        msg = "required key is missing"
    where = _where(best["loc"])
    if not best["loc"] and re.match(r"^[A-Za-z_][\w.]*[:=]", msg):
        where = ""  # a check across keys names its own key
    got = f" (got {shown(best['input'])})" if best["type"].endswith(("_type", "_parsing")) else ""
    return (f"{where}: " if where else "") + msg + got


def parse(data: Any, source: str = "<config>") -> SweepConfig:
    """Validate an already-loaded document. Raises ``ConfigError`` with a one-line message; a document of
    more than ``MAX_NODES`` nodes once its aliases are expanded (an alias bomb) is refused unread."""
    source = str(source)[:SHOWN]
    try:
        nodes = count_nodes(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}; expected a plain sweep config") from None
    if nodes > MAX_NODES:
        raise ConfigError(
            f"{source}: more than {MAX_NODES} values once its aliases (*name) are expanded; "
            f"expected a sweep config of a few dozen (an alias bomb?)"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys (name, workload, max_epochs, space, ...), got {type(data).__name__}"
        )
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}".replace("\n", " ")) from None
    from orchestrator import workloads

    try:
        if cfg.workload is not None:
            what, reader = f"the workload {cfg.workload}", workloads.resolve(cfg.workload)
        else:
            what, reader = f"the training function {cfg.train}", workloads.resolve(str(cfg.train), key="train")
    except workloads.WorkloadError as exc:
        hint = PLUGIN_HINT if "No module named" in str(exc) else ""
        raise ConfigError(f"{source}: {exc}{hint}") from None
    check_space_keys(cfg, source, {what: reader})
    check_trials(cfg, source)
    return cfg


def load(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file."""
    return loads(read(path), str(path))


def read(path: str | Path) -> str:
    """The text of a sweep YAML file; ``ConfigError`` naming the file when it cannot be read."""
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (expected a sweep YAML such as examples/digits.yaml)") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None


def loads(text: str, source: str = "<config>") -> SweepConfig:
    """Validate a sweep YAML document given as text; ``source`` names it in errors."""
    return parse(load_yaml(text, source), source)


API_HEADER = "# config given through the Python API (storage: left out)\n"


def dump(cfg: SweepConfig) -> str:
    """``cfg`` as YAML that ``loads`` reads back to an equal config (``storage`` left out: it may hold
    credentials, and it says where the sweep is, not what it trains)."""
    unused = {"train"} if cfg.train is None else {"workload"}  # the one of the two a config does not give
    return API_HEADER + yaml.safe_dump(cfg.model_dump(mode="json", exclude={"storage", *unused}), sort_keys=False)
