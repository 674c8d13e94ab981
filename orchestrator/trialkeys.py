"""What the keys of a trial config mean to the built-in loop, and the checks ``config.parse`` makes of them:
``loop_options`` (``Amp``, ``LoopOptions``: ValueError naming the key and value), ``OPTIMIZERS``, the space
keys each reader declares (``declared_keys``), and ``check_space_keys`` / ``check_trials`` (``ConfigError``
for a key nothing reads or a combination that would fail as a trial). Importing this module needs neither Ray
nor torch; the checks import ``schedules`` when called."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
from enum import Enum
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError
from orchestrator.sections import shown

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig


def trial_keys() -> frozenset[str]:
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
    DataLoader of a dataset that is not an in-memory ``TensorDataset``; pin_memory None: pinned on a GPU);
    ``data_fraction`` (train on this fraction of the training set, the same samples in every trial:
    ``trial.data_subset``; the validation set stays whole)."""

    amp: Amp = Amp.OFF
    grad_clip: float | None = None
    grad_accum: int = 1
    num_workers: int = 0
    pin_memory: bool | None = None
    data_fraction: float = 1.0


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
    fraction = config.get("data_fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"data_fraction={shown(fraction)}: expected a number in (0, 1]")
    return LoopOptions(Amp(amp), None if clip is None else float(clip), accum, workers, pin, float(fraction))


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


def check_space_keys(cfg: SweepConfig, source: str, readers: dict[str, Any]) -> None:
    """Refuse a ``space`` key that nothing reads (a typo such as ``optimiser``), naming the nearest known
    key. ``readers`` maps a description (for the message) to each callable that gets the trial config
    besides the trial itself; when any of them declares no ``space_keys``, every key is taken as read."""
    known = set(trial_keys()) | {cfg.zoom.param}
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


def check_trials(cfg: SweepConfig, source: str) -> None:
    """Every combination the sweep will cross gets a valid optimizer and decay law, checked now rather
    than as failed trials on the cluster."""
    import schedules

    check_batch_size(cfg, source)
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


AUTO = "auto"  # space.batch_size: auto: the largest batch that fits (orchestrator.memprobe)


def check_batch_size(cfg: SweepConfig, source: str) -> None:
    """``space.batch_size``: a positive integer, a list (or range) of them, or ``auto`` alone (with ``workload:``,
    and with a GPU per trial or ``autobatch.memory_limit_mb``: something must bound the batch); ``ConfigError``
    otherwise."""
    value, a = cfg.space.get("batch_size"), cfg.autobatch
    if a.max < a.start:
        raise ConfigError(f"{source}: autobatch.max={a.max}: expected >= autobatch.start={a.start}")
    values = value if isinstance(value, list) else [value]
    if value != AUTO and any(isinstance(v, (str, bool)) or (isinstance(v, (int, float)) and v < 1) for v in values):
        raise ConfigError(
            f"{source}: space.batch_size: {shown(value)}: expected a positive integer, a list of them, or auto"
        )
    if value != AUTO:
        return
    if cfg.train is not None:
        raise ConfigError(
            f"{source}: space.batch_size: auto: needs workload: (the search steps its model); "
            f"train: {cfg.train} sizes its own batches: give a number"
        )
    if not cfg.resources.gpu and a.memory_limit_mb is None:
        raise ConfigError(
            f"{source}: space.batch_size: auto: the trials have no GPU (resources.gpu: 0) and no "
            f"autobatch.memory_limit_mb (a memory stand-in): nothing bounds the batch; give one, or a number"
        )
