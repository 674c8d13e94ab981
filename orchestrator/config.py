"""Sweep YAML -> validated, frozen ``SweepConfig`` (pydantic v2). Errors name the file, the key and what was
expected."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator import space as grids, storage as stores
from orchestrator.errors import MAX_MESSAGE, ConfigError  # noqa: F401  (re-exported: one home in errors.py)

Scalar = bool | int | float | str


MAX_NODES = 10_000  # a sweep config is a few dozen nodes; more than this after alias expansion is refused
SHOWN = 200  # characters of a value an error message shows
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 6, 6, 6
_repr.maxstring, _repr.maxother, _repr.maxlong = SHOWN // 2, SHOWN // 2, SHOWN // 2


def shown(value: Any) -> str:
    """``repr(value)`` cut to about ``SHOWN`` characters, for error messages (nested or long values too)."""
    text = _repr.repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogRange(_Frozen):
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


class LinearRange(_Frozen):
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


class Asha(_Frozen):
    """Early stopping with Ray's ASHAScheduler. ``grace_period`` defaults to a third of ``max_epochs``:
    with a grace period of 1 epoch ASHA prefers too-large learning rates (their loss falls faster at first)."""

    enabled: bool = True
    grace_period: int | None = Field(default=None, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1.0, le=100.0)
    coarse_only: bool = Field(default=True, description="stop early in round 0 only; refinement rounds run to the end")


class Zoom(_Frozen):
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


class Notify(_Frozen):
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


class WarmStart(_Frozen):
    """Seed round 0 with an old sweep's pick (``orchestrator.warm``)."""

    run: str = Field(min_length=1, description="the old sweep's folder or URI (STORAGE/NAME)")
    scaling: Literal["linear", "sqrt"] = Field(
        default="linear", description="how the old pick moves when the global batch (batch_size x workers) changed"
    )
    width: float = Field(default=1.0, gt=0, le=10, description="decades round 0 looks either side of the prior")


class Resources(_Frozen):
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


class Cost(_Frozen):
    """Money per hour of what trials hold (``orchestrator.cost``): the report's money figure."""

    gpu_hour: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False, description="money per GPU-hour")
    cpu_hour: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False, description="money per CPU-hour")
    currency: str = Field(default="USD", pattern=r"^[A-Za-z$€£¥]{1,8}$", description="the money's unit, as printed")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SweepConfig(_Frozen):
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


# --- loading -----------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


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


def count_nodes(data: Any, limit: int = MAX_NODES) -> int:
    """How many nodes (mappings, lists, scalars; a mapping's keys too) ``data`` holds once every shared
    part (a YAML alias) is counted each time it appears; stops counting past ``limit``. Shared parts are
    counted once each (memoised), so a document of nested aliases costs its own size, not its expansion.
    Raises ``ValueError`` for a document that contains itself (a recursive alias)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list, tuple)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ValueError("the document contains itself (a recursive alias)")
        open_.add(key)
        total = 1
        items = [x for kv in node.items() for x in kv] if isinstance(node, dict) else node
        for item in items:
            total += size(item)
            if total > limit:
                break
        open_.discard(key)
        sizes[key] = total
        return total

    return size(data)


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
    _check_space_keys(cfg, source, {what: reader})
    _check_trials(cfg, source)
    return cfg


def _trial_keys() -> frozenset[str]:
    """The ``space`` keys the trial itself reads (``trial.run_epochs``: optimizer and batches; every decay
    law's parameters), besides the zoomed one and what the workload declares."""
    import schedules

    laws = {f.name for law in schedules.LAWS.values() for f in dataclasses.fields(law)}
    return frozenset(
        {
            "lr",
            "optimizer",
            "momentum",
            "weight_decay",
            "batch_size",
            "seed",
            "checkpoint_every",
            "schedule",
            "warmup",
            *laws,
            *(f.name for f in dataclasses.fields(LoopOptions)),
        }
    )


class Amp(str, Enum):
    """Mixed precision of the built-in loop: ``off`` (fp32), ``bf16`` (autocast, CPU or GPU), ``fp16``
    (autocast with a gradient scaler; CUDA only)."""

    OFF = "off"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """The built-in loop's options, space keys like ``batch_size``: ``amp``; ``grad_clip`` (clip the
    gradient norm to it before each optimizer step; None: no clipping); ``grad_accum`` (the optimizer steps
    every N batches on their mean gradient; the lr is not rescaled); ``num_workers``, ``pin_memory`` (the
    DataLoader of a dataset that is not an in-memory ``TensorDataset``; pin_memory None: pinned on a GPU)."""

    amp: Amp = Amp.OFF
    grad_clip: float | None = None
    grad_accum: int = 1
    num_workers: int = 0
    pin_memory: bool | None = None


def loop_options(config: dict[str, Any]) -> LoopOptions:
    """The ``LoopOptions`` of a trial config; ValueError naming the key and value for a bad one (YAML reads
    ``amp: off`` as false: taken as off)."""
    amp = config.get("amp", Amp.OFF.value)
    amp = Amp.OFF.value if amp is False or amp is None else amp
    if amp not in {a.value for a in Amp}:
        raise ValueError(f"amp={shown(amp)}: expected one of {', '.join(a.value for a in Amp)}")
    clip = config.get("grad_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < math.inf):
        raise ValueError(f"grad_clip={shown(clip)}: expected a number > 0, or null for no clipping")
    accum, workers = config.get("grad_accum", 1), config.get("num_workers", 0)
    for key, value, low in (("grad_accum", accum, 1), ("num_workers", workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key}={shown(value)}: expected an integer >= {low}")
    pin = config.get("pin_memory")
    if pin is not None and not isinstance(pin, bool):
        raise ValueError(f"pin_memory={shown(pin)}: expected true, false or null (pinned on a GPU)")
    return LoopOptions(Amp(amp), None if clip is None else float(clip), accum, workers, pin)


def declared_keys(reader: Any, what: str) -> frozenset[str] | None:
    """The ``space`` keys ``reader`` (a workload or training callable) says it reads: its ``space_keys``
    attribute, else its module's; None when neither declares any (then no key is refused on its account).
    Raises ``ConfigError`` for a declaration that is not a collection of strings."""
    keys = getattr(reader, "space_keys", None)
    if keys is None:
        keys = getattr(sys.modules.get(getattr(reader, "__module__", "") or ""), "space_keys", None)
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{what}: space_keys={shown(keys)}: expected a set of key names such as {{'width'}}")
    return frozenset(keys)


def _check_space_keys(cfg: SweepConfig, source: str, readers: dict[str, Any]) -> None:
    """Refuse a ``space`` key that nothing reads (a typo such as ``optimiser``), naming the nearest known
    key. ``readers`` maps a description (for the message) to each callable that gets the trial config
    besides the trial itself; when any of them declares no ``space_keys``, every key is taken as read."""
    known = set(_trial_keys()) | {cfg.zoom.param}
    for what, reader in readers.items():
        keys = declared_keys(reader, f"{source}: {what}")
        if keys is None:
            return
        known |= keys
    for key in cfg.space:
        if key in known:
            continue
        near = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(known))}"
        names = " nor ".join(["the trial", *readers])
        label = key if re.fullmatch(r"[\w.-]{1,100}", key) else shown(key)
        raise ConfigError(
            f"{source}: space.{label}: unknown key, neither {names} reads it; {hint} "
            f"(a plugin declares the keys it reads: space_keys = {{...}})"
        )


PLUGIN_HINT = (
    "; a plugin module is looked for next to the config file (sweep run, sweep check) and on "
    "sys.path: put it there, or add its folder to PYTHONPATH"
)

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")


def _check_trials(cfg: SweepConfig, source: str) -> None:
    """Every combination the sweep will cross gets a valid optimizer and decay law, checked now rather
    than as failed trials on the cluster."""
    import schedules

    for group in cfg.groups():
        trial = {**cfg.base_config(), **group}
        where = {k: f"space.{k}" for k in trial}
        name = str(trial.get("optimizer", "sgd")).lower()
        if name not in OPTIMIZERS:
            raise ConfigError(f"{source}: space.optimizer: {shown(name)} is not one of {', '.join(OPTIMIZERS)}")
        try:
            schedules.law_from_config(trial)
            if cfg.workload is not None:  # a training function reads its own keys
                loop_options(trial)
        except (ValueError, TypeError) as exc:
            text = str(exc)
            key = next((k for k in sorted(trial, key=len, reverse=True) if text.startswith(k)), "schedule")
            raise ConfigError(f"{source}: {where.get(key, 'space.' + key)}: {text}") from None


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


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: YAML syntax error at {where}{problem}") from None


def loads(text: str, source: str = "<config>") -> SweepConfig:
    """Validate a sweep YAML document given as text; ``source`` names it in errors."""
    return parse(_yaml(text, source), source)


def with_sets(text: str, sets: list[str], source: str = "<config>", name: str | None = None) -> str:
    """The sweep YAML ``text`` with ``name`` (taken as it is) and each ``KEY=VALUE`` of ``sets`` applied in
    order, as YAML text (for ``loads``, and to store as the effective config). ``KEY`` is dotted
    (``space.optimizer``, ``zoom.max_rounds``; missing mappings are created); ``VALUE`` is read as YAML (``5``
    an int, ``1e-3`` a float, ``adam`` a string). Raises ``ConfigError`` naming the setting for one that is
    not ``KEY=VALUE`` or whose key passes through a value that is not a mapping; the result is validated by
    ``loads``, not here."""
    if not sets and name is None:
        return text
    data = _yaml(text, source)
    try:
        plain = isinstance(data, dict) and count_nodes(data) <= MAX_NODES
    except ValueError:  # a recursive alias
        plain = False
    if not plain:
        return text  # loads refuses it with its own message
    if name is not None:
        data["name"] = name
    for item in sets:
        key, sep, value = str(item).partition("=")
        parts = key.split(".")
        if not sep or not all(re.fullmatch(r"[A-Za-z_][\w-]{0,99}", part) for part in parts):
            raise ConfigError(
                f"--set {shown(item)}: expected KEY=VALUE with a dotted key, "
                f"such as space.optimizer=adam or zoom.max_rounds=3"
            )
        target = data
        for i, part in enumerate(parts[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(
                    f"--set {shown(item)}: {'.'.join(parts[: i + 1])} is {shown(target)} in "
                    f"{source}, not a mapping of keys"
                )
        target[parts[-1]] = _yaml(value, f"--set {shown(item)}")
    flags = ([f"--name {name}"] if name is not None else []) + [f"--set {item}" for item in sets]
    return f"# {source} with {' '.join(' '.join(str(f).split()) for f in flags)}\n" + yaml.safe_dump(
        data, sort_keys=False
    )


API_HEADER = "# config given through the Python API (storage: left out)\n"


def dump(cfg: SweepConfig) -> str:
    """``cfg`` as YAML that ``loads`` reads back to an equal config (``storage`` left out: it may hold
    credentials, and it says where the sweep is, not what it trains)."""
    unused = {"train"} if cfg.train is None else {"workload"}  # the one of the two a config does not give
    return API_HEADER + yaml.safe_dump(cfg.model_dump(mode="json", exclude={"storage", *unused}), sort_keys=False)


# --- resuming with an edited config ------------------------------------------------------------------
RESUME_MAY_GROW = (
    "zoom.max_rounds",
    "zoom.budget_fte",
    "zoom.budget_wall_s",  # more rounds, a larger
    "zoom.budget_gpu_hours",
)  # budget: the sweep extends
RESUME_MAY_CHANGE = ("resources.", "max_trials_per_round", "zoom.on_budget", "notify", "cost")  # nothing trained moves
RESUME_NOT_COMPARED = ("name", "storage")  # how the sweep folder was found


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and (data or not prefix):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def resume_changes(stored: SweepConfig, new: SweepConfig) -> tuple[list[str], dict[str, tuple[Any, Any]]]:
    """Compare the config a sweep was started with (``stored``) with the one it is resumed with (``new``).

    Returns ``(refused, allowed)``: ``refused`` lists each change that alters what was already trained or
    how the search goes on from it, as ``"key: old -> new"`` (any key but those below); ``allowed`` maps
    each allowed change to ``(old, new)``: ``RESUME_MAY_GROW`` keys raised (a null budget is no limit),
    ``RESUME_MAY_CHANGE`` keys changed either way. ``RESUME_NOT_COMPARED`` keys are not compared."""
    old, cur = _flat(stored.model_dump(mode="json")), _flat(new.model_dump(mode="json"))
    refused: list[str] = []
    allowed: dict[str, tuple[Any, Any]] = {}
    missing = object()
    for key in sorted(set(old) | set(cur)):
        a, b = old.get(key, missing), cur.get(key, missing)
        if a == b or key in RESUME_NOT_COMPARED:
            continue
        if key in RESUME_MAY_GROW and a is not missing and b is not missing and _grows(a, b):
            allowed[key] = (a, b)
        elif key.startswith(RESUME_MAY_CHANGE):
            allowed[key] = (None if a is missing else a, None if b is missing else b)
        else:
            refused.append(
                f"{key}: {'(absent)' if a is missing else shown(a)} -> {'(absent)' if b is missing else shown(b)}"
            )
    return refused, allowed


def _grows(old: Any, new: Any) -> bool:
    inf = math.inf
    return (inf if new is None else new) >= (inf if old is None else old)
