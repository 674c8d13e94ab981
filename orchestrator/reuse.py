"""Reusing what a finished sweep learned: ``extension`` checks that a finished sweep can go on with raised
limits (``sweep extend``), ``warm_prior`` reads an old sweep for a new one's warm start (``warm_start.run``,
``sweep run CONFIG --from RUN``); ``locate`` finds a sweep given as its folder or its URI. Reads the sweep
folders (downloading a URI's files into the local copy or a cache); imports neither Ray nor torch (the
restored Tuner is built in ``orchestrator.tuning``, the warm start's arithmetic is ``orchestrator.warm``)."""

from __future__ import annotations

import math
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator import analysis, budget, config as configs, results, storage, warm
from orchestrator.budget import Budget, OnBudget
from orchestrator.config import SweepConfig
from orchestrator.folder import NO_CONFIG, read_or_empty

# the stop reasons (zoom.next_round, budget.ended) a raised limit ends, and the flag that raises each
EXTENDABLE = ("round budget spent", "epoch budget spent", budget.WALL, budget.GPU)
FLAGS = ("--rounds N", "--budget-fte X", "--budget-wall-s S", "--budget-gpu-hours H")


@dataclass(frozen=True)
class Limits:
    """What ``sweep extend`` raises, each a new total (None: left as it is): ``rounds`` (more than it ran),
    ``budget_fte`` (full trainings), ``wall_s`` and ``gpu_hours`` (``zoom.budget_wall_s``,
    ``zoom.budget_gpu_hours``: above the limit that ended it). ValueError for a value out of range."""

    rounds: int | None = None
    budget_fte: float | None = None
    wall_s: float | None = None
    gpu_hours: float | None = None

    def __post_init__(self) -> None:
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"rounds={self.rounds}: expected >= 1")
        for name in ("budget_fte", "wall_s", "gpu_hours"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value}: expected > 0")

    def given(self) -> tuple[bool, ...]:
        """Which limits are raised, in the order of ``EXTENDABLE``."""
        return tuple(v is not None for v in (self.rounds, self.budget_fte, self.wall_s, self.gpu_hours))


def locate(run_at: str | os.PathLike) -> storage.Target:
    """The ``storage.Target`` of a sweep given as its folder or its URI (``STORAGE/NAME``)."""
    text = str(run_at)
    if storage.is_uri(text):
        return storage.target(_parent_uri(text), storage.name_of(text))
    path = storage.local_path(text)
    return storage.Target(folder=path)


def extension(
    where: storage.Target, limits: Limits, quiet: bool = False, record: bool = True
) -> tuple[SweepConfig, dict[str, Any]]:
    """Check that the finished sweep at ``where`` can go on with ``limits``, and record the extension in
    ``resume.log`` (unless not ``record``: a check only). Returns the sweep's config (from its
    ``sweep.yaml``, with the raised limits; its storage and name from ``where``) and the ``zoom.Rules``
    fields to raise (``Reconcile.grown``; ``budget``: the raised ``budget.Budget``).

    Raises ``ConfigError`` (one line, nothing touched) for a folder holding no finished sweep (an interrupted
    one: use --resume), for limits that would add nothing, and for a search that ended for a reason the
    given limits do not change (the bracket reached the resolution, a round gained too little, a budget
    not raised)."""
    shown = where.shown
    if not any(limits.given()):
        raise configs.ConfigError(
            f"extend {shown}: nothing to extend; give {', '.join(FLAGS[:-1])} or {FLAGS[-1]} (a new total)"
        )
    if where.uri:
        if not storage.exists(where.uri):
            raise configs.ConfigError(f"{shown}: no sweep there to extend")
        storage.download(where.uri, where.folder, names=(*storage.INPUTS, "best.json", "resume.log"))
    elif not (where.folder / "sweep.yaml").is_file():
        raise configs.ConfigError(f"{shown}: no sweep there to extend (no sweep.yaml)")
    meta = results.read_json(where.folder / results.ROUNDS) or {}
    best = results.read_json(where.folder / "best.json") if (where.folder / "best.json").is_file() else None
    reason = meta.get("stop_reason")
    if not reason or not best or best.get("stop_reason") != reason:
        raise configs.ConfigError(
            f"{shown}: the sweep did not finish (interrupted, or still running); continue it "
            f"with: sweep run CONFIG --resume"
        )
    text = (where.folder / "sweep.yaml").read_text()
    if not text.strip() or text.startswith(NO_CONFIG):
        raise configs.ConfigError(
            f"{where.folder / 'sweep.yaml'}: holds no config (a sweep started from Python "
            f"before configs were stored); it cannot be extended"
        )
    stored = configs.loads(text, str(where.folder / "sweep.yaml"))
    ran = len(meta.get("rounds") or [])
    spent = sum(1 for r in results.read_trials(where.folder) if r.get("epoch") is not None) / stored.max_epochs
    z = stored.zoom
    flag = f"extend {shown}"
    if limits.rounds is not None and limits.rounds <= ran:
        raise configs.ConfigError(
            f"{flag} --rounds {limits.rounds}: it already ran {ran} round(s); expected more than {ran}"
        )
    if limits.budget_fte is not None and limits.budget_fte <= spent:
        raise configs.ConfigError(
            f"{flag} --budget-fte {limits.budget_fte:g}: it already spent {spent:.3g} full "
            f"trainings; expected more than that"
        )
    for name, new, old, unit in (
        ("--budget-wall-s", limits.wall_s, z.budget_wall_s, "s"),
        ("--budget-gpu-hours", limits.gpu_hours, z.budget_gpu_hours, "GPU-hours"),
    ):
        if new is not None and old is not None and new <= old:
            raise configs.ConfigError(
                f"{flag} {name} {new:g}: its limit was {old:g} {unit} (a total over the sweep); expected more "
                f"than {old:g}"
            )
    ended = [i for i, why in enumerate(EXTENDABLE) if why in reason]
    if not ended:
        raise configs.ConfigError(
            f"{flag}: its search ended because {reason}; more rounds or budget would not change that"
        )
    missing = [i for i in ended if not limits.given()[i]]
    if missing:
        hint = {0: f"more than {ran}", 1: f"more than {spent:.3g}"}
        wants = " and ".join(f"{FLAGS[i]}" + (f" ({hint[i]})" if i in hint else " (a larger total)") for i in missing)
        raise configs.ConfigError(f"{flag}: its search ended because {reason}; give {wants} to add rounds")
    raised = {
        "max_rounds": limits.rounds,
        "budget_fte": limits.budget_fte,
        "budget_wall_s": limits.wall_s,
        "budget_gpu_hours": limits.gpu_hours,
    }
    zoom = z.model_copy(update={k: v for k, v in raised.items() if v is not None})
    storage_at = _parent_uri(where.uri) if where.uri else str(where.folder.parent)
    cfg = stored.model_copy(update={"zoom": zoom, "name": where.folder.name, "storage": storage_at})
    grown: dict[str, Any] = {}
    changes = []
    if limits.rounds is not None:
        grown["max_rounds"] = limits.rounds
        changes.append(f"zoom.max_rounds -> {limits.rounds} ({ran} round(s) had run)")
    if limits.budget_fte is not None:
        grown["budget_epochs"] = limits.budget_fte * stored.max_epochs
        changes.append(f"zoom.budget_fte -> {limits.budget_fte:g} ({spent:.3g} spent)")
    if limits.wall_s is not None or limits.gpu_hours is not None:
        grown["budget"] = Budget(
            wall_s=zoom.budget_wall_s, gpu_hours=zoom.budget_gpu_hours, on_end=OnBudget(z.on_budget)
        )
        for key, new, old in (
            ("zoom.budget_wall_s", limits.wall_s, z.budget_wall_s),
            ("zoom.budget_gpu_hours", limits.gpu_hours, z.budget_gpu_hours),
        ):
            if new is not None:
                changes.append(f"{key} {'none' if old is None else f'{old:g}'} -> {new:g}")
    line = f"extended with {', '.join(changes)}; it had stopped: {reason}"
    if not record:
        return cfg, grown
    log = where.folder / "resume.log"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results.atomic_write_bytes(log, (read_or_empty(log) + f"{stamp} {line}\n").encode())
    if not quiet:
        print(f"[sweep] {line} (recorded in {where.folder / 'resume.log'})", flush=True)
    return cfg, grown


def warm_prior(cfg: SweepConfig, source: str = "warm_start.run") -> warm.Prior | None:
    """The prior of ``cfg.warm_start`` (None without one), from the old sweep's ``best.json``, ``sweep.yaml``
    and trials (its cliff; a folder, or a URI: downloaded into a cache). Raises ``ConfigError`` (one line
    starting with ``source``, the key or flag that named the old sweep) when there is no finished sweep there
    or its metric or direction differs from ``cfg``'s."""
    ws = cfg.warm_start
    if ws is None:
        return None
    where = locate(ws.run)
    if where.uri:
        if not storage.exists(where.uri):
            raise configs.ConfigError(f"{source}: {where.shown}: no sweep there")
        uri = where.uri
        where = storage.Target(folder=storage.cache_dir("warm", uri) / where.folder.name, uri=uri)
        storage.download(uri, where.folder, names=("best.json", "sweep.yaml", results.TRIALS, results.ROUNDS))
    best = results.read_json(where.folder / "best.json") if (where.folder / "best.json").is_file() else None
    if not isinstance(best, dict) or not isinstance(best.get("lr"), (int, float)):
        raise configs.ConfigError(f"{source}: {where.shown}: no finished sweep there (no best.json with a chosen lr)")
    old_metric, old_mode = best.get("metric"), best.get("mode") or "min"
    if old_metric != cfg.metric or old_mode != cfg.mode:
        raise configs.ConfigError(
            f"{source}: {where.shown} picked for {old_metric} ({old_mode}); this sweep "
            f"optimises {cfg.metric} ({cfg.mode}): a warm start needs the same metric and "
            f"direction"
        )
    try:
        old = yaml.safe_load(read_or_empty(where.folder / "sweep.yaml")) or {}
    except yaml.YAMLError:
        old = {}
    old = old if isinstance(old, dict) else {}
    old_space: dict[str, Any] = old["space"] if isinstance(old.get("space"), dict) else {}
    old_workers = (old.get("resources") or {}).get("workers", 1) if isinstance(old.get("resources"), dict) else 1
    rng = cfg.zoom_range
    return warm.prior(
        float(best["lr"]),
        warm.global_batch(old_space, int(old_workers or 1)),
        warm.global_batch(dict(cfg.space), getattr(cfg.resources, "workers", 1)),
        math.log10(rng.log[0]),
        math.log10(rng.log[1]),
        ws.scaling,
        ws.width,
        cliff=old_cliff(where, old_metric, old_mode),
        run=where.shown,
    )


def old_cliff(where: storage.Target, metric: str, mode: str) -> float | None:
    """log10 of the divergence cliff of the sweep in ``where.folder`` (``warm.cliff_of`` over its trials);
    None when its trials cannot be read or show no cliff."""
    try:
        rows = results.read_trials(where.folder)
        table = analysis.trial_curves(rows, metric, mode)
    except (results.ResultsError, ValueError, KeyError):
        return None
    return warm.cliff_of(analysis.observations(table))


def _parent_uri(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(path=parts.path.rstrip("/").rpartition("/")[0]).geturl()
