"""What ``sweep run`` and ``sweep extend`` check before Ray starts, and what they say when they stop early.

``refuse`` raises (one line) for a bad address, a sweep folder that is taken, a bad warm start or a sweep
another driver is running; ``first_trial_checks`` runs the pre-flight checks on the config's first trial;
``extension_limits`` checks a ``sweep extend``; ``resumable`` and ``interrupted`` say whether and how an
interrupted sweep resumes. The Ray edge: Ray and torch are imported inside the functions that need them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig
    from orchestrator.reuse import Limits
    from orchestrator.storage import Target


def present(where: Target) -> bool:
    """Whether the sweep folder ``where`` exists (a local folder, or anything stored under its URI)."""
    from orchestrator import storage

    return storage.exists(where.uri) if where.uri else where.folder.is_dir()


def resumable(where: Target) -> bool:
    """Whether ``--resume`` can continue the sweep at ``where`` (a ``storage.Target``): a local folder where
    Tune saved its experiment state; anything at a URI (read by the resume itself)."""
    if not present(where):
        return False
    if where.uri:
        return True
    from ray import tune

    return tune.Tuner.can_restore(str(where.folder))


def nothing_to_resume(where: Target) -> str:
    """The refusal of ``--resume`` where ``present(where)`` is false."""
    return f"{where.shown}: nothing to resume (no sweep folder there); start the sweep without --resume"


def interrupted(where: Target, resume_command: str) -> str:
    """What an interrupted ``sweep run`` says: how to resume it, or why there is nothing to resume."""
    if resumable(where):
        return f"interrupted; resume with: {resume_command}"
    if present(where):
        return (
            f"interrupted before training began: {where.shown} holds no Tune state to resume "
            f"(remove the folder to start again)"
        )
    return f"interrupted before {where.shown} was created; nothing to resume"


def refuse(cfg: SweepConfig, where: Target, address: str | None, resume: bool, warm_source: str) -> None:
    """Raise (one line) before the checks and before Ray starts for a bad ``address``; when starting, a
    sweep folder that is taken and a bad warm start (the message starts with ``warm_source``, the key or
    flag that named the old sweep); when resuming, a sweep another driver is running."""
    from cluster.connect import resolve_address

    resolve_address(address)
    if not resume:
        from orchestrator import reuse
        from orchestrator.folder import refuse_taken

        refuse_taken(cfg)
        reuse.warm_prior(cfg, warm_source)
    else:
        from orchestrator import lease

        lease.check(lease.store_for(where.folder, where.uri))


def first_trial_checks(cfg: SweepConfig, batch: bool = False) -> list[Any]:
    """The babysitting checks on the config's first trial (middle of the learning-rate grid); none for a
    training function (``train:``): the checks need a ``Workload``. ``batch``: also the largest batch that
    fits here (batch_fit; ``sweep check``)."""
    from orchestrator import preflight as checks

    if cfg.workload is None:
        return []
    grid = cfg.zoom_range.values()
    trial = {**cfg.base_config(), **cfg.groups()[0], cfg.zoom.param: grid[len(grid) // 2]}
    search = None
    if batch:
        from orchestrator.memprobe import Search

        search = Search.of(cfg)
    return checks.run_checks(cfg.workload, trial, lr_grid=grid, batch_search=search)


def checks_failed(bad: list[Any]) -> str:
    """The one-line error for the failed pre-flight checks ``bad``."""
    return f"{len(bad)} pre-flight check(s) failed: {', '.join(c.name for c in bad)}"


def checks_passed(results: list[Any]) -> str:
    """The progress line of pre-flight checks that all passed (some with warnings)."""
    warned = [c.name for c in results if c.status == "warn"]
    return f"[sweep] pre-flight: {len(results) - len(warned)} passed" + (
        f", warnings: {', '.join(warned)}" if warned else ""
    )


def extension_limits(
    run: str, rounds: int | None, budget_fte: float | None, wall_s: float | None, gpu_hours: float | None
) -> Limits:
    """The ``reuse.Limits`` of ``sweep extend RUN``, checked against the finished sweep at ``run`` (nothing
    recorded). ValueError (one line) for a value out of range or a sweep that cannot go on with them."""
    from orchestrator import reuse

    limits = reuse.Limits(rounds, budget_fte, wall_s, gpu_hours)
    reuse.extension(reuse.locate(run), limits, quiet=True, record=False)
    return limits
