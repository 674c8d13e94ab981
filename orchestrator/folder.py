"""The life of a sweep folder, local or at a URI: claim it for a new sweep (or refuse it, before Ray
starts), check a resume against the config the sweep was started with, write the searcher's results into
it, and publish it to its URI. Imports neither Ray nor torch (Tune is wired in ``orchestrator.tuning``).

A sweep at a URI is written to a local copy (``storage.Target.folder``) and uploaded to ``URI/NAME``
(``storage.Target.uri``); ``claim``, ``present`` and ``publish`` take the ``Target`` and hide the fork."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator import config as configs, results, resume, storage
from orchestrator.budget import Budget, OnBudget
from orchestrator.config import SweepConfig
from orchestrator.errors import SweepExistsError
from orchestrator.state import SweepState

NO_CONFIG = "# config given through the Python API\n"  # sweep.yaml of a sweep started without a config text


def sweep_folder(cfg: SweepConfig) -> Path:
    """The local folder the sweep's own files are written to: ``storage/name``, or for a URI ``storage``
    the local copy that is uploaded to ``storage/name`` (see ``orchestrator.storage``)."""
    return storage.target(cfg.storage, cfg.name).folder


# --- a new sweep: claim the folder, or refuse it ------------------------------------------------------
def claim(where: storage.Target, config_text: str, checks: list | None = None) -> None:
    """Claim ``where`` for a new sweep (``claim_folder``, or ``claim_uri`` for a URI) with ``sweep.yaml``
    holding ``config_text``, and ``preflight.json`` holding ``checks`` (the checks run before it), if any.

    Raises ``SweepExistsError`` if it is taken, ``storage.StorageError`` (one line) if it cannot be
    written; a failed claim leaves nothing behind."""
    if where.uri is None:
        made = claim_folder(where.folder, config_text)
        _write_preflight(where.folder, made, checks)
    else:
        claim_uri(where.folder, where.uri, config_text, checks)


def claim_folder(folder: Path, config_text: str) -> list[Path]:
    """Create the sweep folder, or fail if another sweep has it: ``sweep.yaml`` is created with O_EXCL,
    so two sweeps started with the same name at the same moment never share a folder. Returns the
    folders the claim created (innermost first; ``unclaim`` removes them).

    Raises ``SweepExistsError`` if the folder is taken, ``storage.StorageError`` (one line: the path and
    the cause) if it is a symbolic link or cannot be written (a full disk, no permission); a claim that
    failed leaves nothing behind (no empty ``sweep.yaml`` keeping the name taken)."""
    refuse_symlink(folder)
    made = []
    for p in (folder, *folder.parents):
        if os.path.lexists(p):
            break
        made.append(p)
    path = folder / "sweep.yaml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except FileExistsError:
        if os.path.lexists(path):
            raise SweepExistsError(_taken(str(folder))) from None
        raise storage.StorageError(f"{folder}: cannot claim the sweep folder (a file is in the way)") from None
    except OSError as exc:
        unclaim(folder, made, path=None)
        raise storage.StorageError(
            f"{folder}: cannot claim the sweep folder ({exc.strerror or exc}); nothing was left behind"
        ) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(config_text or NO_CONFIG)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        unclaim(folder, made)
        raise storage.StorageError(
            f"{path}: cannot claim the sweep folder ({exc.strerror or exc}); nothing was left behind"
        ) from None
    return made


def claim_uri(folder: Path, uri: str, config_text: str, checks: list | None = None) -> None:
    """Claim ``uri`` (``STORAGE/NAME``) for a new sweep: refused if anything is there already. The local
    copy starts afresh; ``sweep.yaml`` (and ``preflight.json`` for ``checks``) are uploaded at once.
    Object stores have no create-if-absent: two sweeps started with one name at the same moment are not
    told apart (local folders are)."""
    if storage.exists(uri):
        raise SweepExistsError(_taken(storage.display(uri)))
    refuse_symlink(folder)
    if folder.exists():
        shutil.rmtree(folder)  # a stale local copy (of a sweep since deleted from the storage)
    made = claim_folder(folder, storage.scrub(config_text, uri))  # stored without the URI's credentials
    _write_preflight(folder, made, checks)
    storage.upload(folder, uri)


def _write_preflight(folder: Path, made: list[Path], checks: list | None) -> None:
    if not checks:
        return
    try:
        results.write_json(folder / "preflight.json", [c.__dict__ for c in checks])
    except results.ResultsError as exc:
        unclaim(folder, made)
        raise storage.StorageError(f"{exc}; the sweep was not started and nothing was left behind") from None


def unclaim(folder: Path, made: list[Path], path: Path | str | None = "sweep.yaml") -> None:
    """Undo a claim: remove ``folder/sweep.yaml`` and ``folder/preflight.json``, then the folders in
    ``made`` that are empty (innermost first). Used when a new sweep fails before it started."""
    for name in [path, "preflight.json"] if path else []:
        (folder / name).unlink(missing_ok=True)
    for p in made:
        try:
            p.rmdir()
        except OSError:
            break


def refuse_symlink(folder: Path) -> None:
    """A sweep folder must be a real folder: ``STORAGE/NAME`` as a symbolic link is refused (its files
    would land wherever the link points)."""
    if folder.is_symlink():
        raise storage.StorageError(
            f"{folder}: is a symbolic link (to {configs.shown(os.readlink(folder))}); a "
            f"sweep folder must be a real folder: remove the link or choose another name"
        )


def _taken(where: str) -> str:
    return f"{where}: sweep folder already exists; pass --resume to continue it, or choose another name"


def refuse_taken(cfg: SweepConfig) -> None:
    """Fail at once, before Ray starts, when a new sweep's folder is taken (``claim`` claims it later)."""
    where = storage.target(cfg.storage, cfg.name)
    if where.uri is None:
        refuse_symlink(where.folder)
    if storage.exists(where.uri) if where.uri else os.path.lexists(where.folder / "sweep.yaml"):
        raise SweepExistsError(_taken(where.shown))


# --- a resumed sweep ----------------------------------------------------------------------------------
def present(where: storage.Target) -> bool:
    """Whether a sweep is there to resume: the local folder exists, or anything is at the URI."""
    return storage.exists(where.uri) if where.uri else where.folder.exists()


def check_resume(cfg: SweepConfig, folder: Path, shown: str, quiet: bool = False) -> dict[str, Any]:
    """Before a resume: compare ``cfg`` with the config the sweep was started with (``folder/sweep.yaml``).

    A change that alters what was already trained raises ``ConfigError`` (one line naming each changed
    key; nothing is touched). Allowed changes (``resume.resume_changes``: more rounds, a larger budget,
    resources) are printed, appended to ``folder/resume.log``, and returned as the ``zoom.Rules`` fields
    to raise. A ``sweep.yaml`` written by the Python API before configs were stored cannot be compared:
    said in one line, and the resume goes on."""
    path = folder / "sweep.yaml"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise configs.ConfigError(
            f"{path}: cannot read the config the sweep was started with "
            f"({getattr(exc, 'strerror', None) or exc}); cannot resume"
        ) from None
    if not text.strip() or text == NO_CONFIG:
        if not quiet:
            print(
                f"[sweep] {path} holds no config (an older sweep started from Python): the config is not compared",
                flush=True,
            )
        return {}
    try:
        stored = configs.loads(text, str(path))
    except configs.ConfigError as exc:
        raise configs.ConfigError(
            f"cannot resume {shown}: the config it was started with does not load ({exc})"
        ) from None
    refused, allowed = resume.resume_changes(stored, cfg)
    if refused:
        raise configs.ConfigError(
            f"cannot resume {shown} with an edited config: {'; '.join(refused)} (these change what was already "
            f"trained: put them back as in {path}, or start a new sweep under another name; only "
            f"{', '.join(resume.RESUME_MAY_GROW)} may grow and resources change)"
        )
    if not allowed:
        return {}
    line = ", ".join(f"{k} {configs.shown(a)} -> {configs.shown(b)}" for k, (a, b) in allowed.items())
    ended = (results.read_json(folder / results.ROUNDS) or {}).get("stop_reason")
    if ended and set(allowed) & set(resume.RESUME_MAY_GROW):
        raise configs.ConfigError(
            f"cannot resume {shown} with {line}: its search had already ended ({configs.shown(ended)}); "
            f"continue it with: sweep extend {shown} --rounds N (or --budget-fte X, --budget-wall-s S, "
            f"--budget-gpu-hours H: new totals), or resume it with the values "
            f"in {path}"
        )
    results.atomic_write_bytes(
        folder / "resume.log",
        (
            read_or_empty(folder / "resume.log") + time.strftime("%Y-%m-%dT%H:%M:%S%z") + f" resumed with {line}\n"
        ).encode(),
    )
    if not quiet:
        print(f"[sweep] resumed with {line} (recorded in {folder / 'resume.log'})", flush=True)
    grown: dict[str, Any] = {}
    if "zoom.max_rounds" in allowed:
        grown["max_rounds"] = cfg.zoom.max_rounds
    if "zoom.budget_fte" in allowed:
        grown["budget_epochs"] = cfg.zoom.budget_fte * cfg.max_epochs if cfg.zoom.budget_fte else None
    if {"zoom.budget_wall_s", "zoom.budget_gpu_hours", "zoom.on_budget"} & set(allowed):
        z = cfg.zoom
        grown["budget"] = Budget(wall_s=z.budget_wall_s, gpu_hours=z.budget_gpu_hours, on_end=OnBudget(z.on_budget))
    return grown


def read_or_empty(path: Path) -> str:
    """The text of ``path``; "" when there is no such file."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


# --- the results ----------------------------------------------------------------------------------------
def save(
    folder: Path, cfg: SweepConfig, state: SweepState, errors: dict[str, str], failures: dict[str, int] | None = None
) -> None:
    """trials.parquet and rounds.json from the searcher's state."""
    rows = []
    for r in state.rows:
        t = state.trials[r["trial_id"]]
        status = _status(t, cfg.max_epochs)
        rows.append(
            {
                **r,
                "lr": t.config[state.param],
                "status": status,
                "error": errors.get(t.trial_id),
                "failures": (failures or {}).get(t.trial_id, 0),
                "config": json.dumps(t.config, sort_keys=True, default=str),
            }
        )
    for t in state.trials.values():  # trials that errored before any result still get a row
        if not t.curve:
            rows.append(
                {
                    "trial_id": t.trial_id,
                    "round": t.round,
                    "group": t.group,
                    "lr": t.config[state.param],
                    "status": results.TrialStatus.ERRORED,
                    "error": errors.get(t.trial_id, "no result reported"),
                    "failures": (failures or {}).get(t.trial_id, 0),
                    "config": json.dumps(t.config, sort_keys=True, default=str),
                }
            )
    results.write_trials(folder, rows)
    results.write_json(
        folder / results.ROUNDS,
        results.rounds_document(
            metric=state.metric,
            mode=state.mode,
            param=state.param,
            max_epochs=cfg.max_epochs,
            rounds=state.rounds,
            stop_reason=state.stop_reason,
            groups=state.groups,
            cliff_margin=state.rules.cliff_margin,
            target=state.target,
        ),
    )


def _status(t, max_epochs: int) -> results.TrialStatus:
    return results.TrialStatus.ended(
        diverged=bool(t.curve) and not math.isfinite(t.curve[-1]),
        errored=t.errored,
        epochs=len(t.curve),
        max_epochs=max_epochs,
    )


def publish(folder: Path, uri: str, strict: bool) -> None:
    """Upload the results so far to ``uri``; when another error is on its way (not ``strict``), a failed
    upload is only printed (one line on stderr)."""
    try:
        storage.upload(folder, uri)
    except storage.StorageError as exc:
        if strict:
            raise
        print(f"[sweep] {exc}", file=sys.stderr, flush=True)
