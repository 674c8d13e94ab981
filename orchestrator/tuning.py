"""Runs a sweep on Ray Tune: ``run(cfg, RunOptions)`` starts or resumes one, ``extend(run_at, reuse.Limits)``
continues a finished one; both write the results and the report, upload them to a URI ``storage``, and
notify (``notified``). The one place that builds Ray Tune's Tuner, TuneConfig, RunConfig and scheduler
(``build_tuner``, ``make_scheduler``) and reaches Ray's private ``_local_tuner`` (``_searcher_of``,
``_run_callbacks``). What Tune calls back is in ``hooks``; what trials ask of the cluster in ``placement``."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator

from orchestrator import (
    atomicfs,
    board,
    config as configs,
    credfs,
    folder as folders,
    notify,
    placement,
    report,
    reuse,
    storage,
)
from orchestrator.config import SweepConfig
from orchestrator.errors import LeaseHeldError, SweepExistsError, SweepInterrupted  # re-exported; home: errors.py
from orchestrator.hooks import (  # also Tune's pickles' names for them: orchestrator.tuning.*
    BudgetStop,
    CoarseOnly,
    FailureCounter,
    Reconcile,
    Reopened,
    RoundPrinter,
)
from orchestrator.results import write_json
from orchestrator.runoptions import RunOptions
from orchestrator.searcher import ZoomSearcher
from orchestrator.searchstate import make_state
from orchestrator.warm import Prior


def trial_dirname(trial) -> str:  # module-level: Tune pickles it
    return trial.trial_id


def make_scheduler(cfg: SweepConfig):
    if not cfg.asha.enabled:
        return FIFOScheduler()
    asha = ASHAScheduler(
        time_attr="epoch",
        max_t=cfg.max_epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.asha.reduction_factor,
    )
    return CoarseOnly(asha) if cfg.asha.coarse_only else asha


def build_tuner(
    cfg: SweepConfig,
    folder: Path,
    quiet: bool = False,
    verbose: bool = False,
    storage_path: str | None = None,
    start: Prior | None = None,
) -> tune.Tuner:
    """``storage_path``: where Tune writes the experiment (default: ``folder``'s parent, ``folder`` then
    being the experiment folder); a URI for a sweep stored at a URI (its credentials kept out of Tune's
    pickles: ``credfs.for_tune``)."""
    searcher = ZoomSearcher(make_state(cfg, start), RoundPrinter(quiet))
    path, filesystem = credfs.for_tune(storage_path) if storage_path else (str(folder.parent), atomicfs.local())
    return tune.Tuner(
        placement.trainable_with_resources(cfg),
        tune_config=tune.TuneConfig(
            metric=cfg.metric,
            mode=cfg.mode,
            search_alg=searcher,
            scheduler=make_scheduler(cfg),
            num_samples=-1,
            reuse_actors=cfg.resources.workers == 1,  # a stopped data-parallel trial's driver ends, its trainer too
            trial_dirname_creator=trial_dirname,
            max_concurrent_trials=placement.data_parallel_slots(cfg),
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=path,
            storage_filesystem=filesystem,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            stop=BudgetStop(searcher),
            callbacks=[
                FailureCounter(),
                Reconcile(searcher, quiet),
                *board.callbacks(
                    folder,
                    quiet=quiet,
                    verbose=verbose,
                    metric=cfg.metric,
                    searched=board.Searched.of(cfg),
                    mode=cfg.mode,
                    target=cfg.target,
                ),
            ],
        ),
    )


def run(cfg: SweepConfig, options: RunOptions | None = None) -> report.Summary:
    """Run (or resume: ``options.resume``) the sweep on the Ray this process is connected to; write results
    and the report. ``options``: ``RunOptions`` (None: the defaults; ValueError for anything else).

    Raises ``SweepExistsError`` if the folder is taken (without ``resume``), ``SweepInterrupted`` if the
    run was stopped before the search finished (results so far are saved; ``resume`` continues it).
    With a URI ``storage``, the results are uploaded to ``storage/name`` when the run ends, however it ends.
    Raises ``lease.LeaseHeldError`` while another driver runs the same sweep (``orchestrator.lease``)."""
    from orchestrator import lease  # one driver at a time: held from before Tune trains until the end

    options = RunOptions() if options is None else options
    if not isinstance(options, RunOptions):
        raise ValueError(f"options={configs.shown(options)}: expected a tuning.RunOptions")
    where = storage.target(cfg.storage, cfg.name)
    with notified(cfg, where) as lines:
        tuner = _tuner(cfg, where, options)
        with lease.held(lease.store_for(where.folder, where.uri), quiet=options.quiet):
            summary = _fit_and_publish(cfg, tuner, where, options.quiet)
        lines.append(f"{cfg.name}: {summary.line()}")
    return summary


def _fit_and_publish(cfg: SweepConfig, tuner: tune.Tuner, where: storage.Target, quiet: bool) -> report.Summary:
    if where.uri is None:
        return _fit(cfg, tuner, where, quiet)
    try:
        summary = _fit(cfg, tuner, where, quiet)
    except BaseException as exc:
        folders.publish(where.folder, where.uri, strict=isinstance(exc, SweepInterrupted))
        raise
    storage.upload(where.folder, where.uri)
    return summary


@contextmanager
def notified(cfg: SweepConfig, where: storage.Target):
    """Send ``cfg.notify`` (``notify.Notifier``) once when the block ends: finished (the summary line),
    stopped (interrupted: ``SweepInterrupted``, Ctrl-C) or failed (any other error, its first line). A
    sweep refused before it started (its folder taken, another driver running it) is not notified."""
    notifier = notify.Notifier.of(cfg)
    lines: list[str] = []  # the block appends the finished sweep's summary line
    if notifier == notify.Notifier():
        yield lines
        return
    try:
        yield lines
    except (SweepExistsError, configs.ConfigError, LeaseHeldError):  # refused before it started
        raise
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else f"{where.shown}: sweep interrupted"
        notifier.send(notify.Event.STOPPED, cfg.name, storage.redact(line))
        raise
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        notifier.send(
            notify.Event.FAILED,
            cfg.name,
            storage.redact(f"{where.shown}: sweep failed: {type(exc).__name__}: {first}"[:500]),
        )
        raise
    else:
        notifier.send(
            notify.Event.FINISHED, cfg.name, storage.redact(lines[-1] if lines else f"{where.shown}: sweep finished")
        )


def _tuner(cfg: SweepConfig, where: storage.Target, options: RunOptions) -> tune.Tuner:
    """The restored Tuner when ``options.resume`` finds the sweep at ``where``, else a new one in a freshly
    claimed folder. With a URI, Tune's experiment goes straight to the URI; the sweep's own files to the local
    copy."""
    if where.uri is None:
        folders.refuse_symlink(where.folder)
    quiet = options.quiet
    if options.resume and folders.present(where):
        return _restore(cfg, where, quiet)
    start = reuse.warm_prior(cfg)  # a warm start that cannot be made is refused before the claim
    folders.claim(where, options.config_text or configs.dump(cfg), list(options.checks))
    if start is not None:
        run_at = storage.display(cfg.warm_start.run) if cfg.warm_start else ""
        write_json(where.folder / "warm_start.json", {"run": run_at, **dataclasses.asdict(start)})
        if not quiet:
            print(f"[sweep] warm start: {start.note}", flush=True)
    return build_tuner(
        cfg, where.folder, quiet, options.verbose, storage_path=cfg.storage if where.uri else None, start=start
    )


def _restore(cfg: SweepConfig, where: storage.Target, quiet: bool, grown: dict[str, Any] | None = None) -> tune.Tuner:
    """The restored Tuner of the sweep at ``where``. ``grown``: the limits ``sweep extend`` raises (the
    folder already checked and downloaded); None: a resume, its config checked by ``folder.check_resume``."""
    path, filesystem = credfs.for_tune(where.uri) if where.uri else (str(where.folder), atomicfs.local())
    if not tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        raise SweepExistsError(f"{where.shown}: cannot resume: no Ray Tune experiment state in it")
    if grown is None:
        if where.uri:
            storage.download(where.uri, where.folder)  # sweep.yaml, preflight.json, results so far: not Tune's
        grown = folders.check_resume(cfg, where.folder, where.shown, quiet)
    tuner = tune.Tuner.restore(
        path,
        placement.trainable_with_resources(cfg),
        resume_unfinished=True,
        resume_errored=True,
        storage_filesystem=filesystem,
    )
    if where.uri:
        for c in _run_callbacks(tuner):
            if isinstance(c, (board.SweepBoard, board.TrialBoard)):
                c.folder = where.folder  # the pickled path may be another machine's local copy
    _extend(tuner, grown)
    searcher: Any = _searcher_of(tuner)
    tc = tuner._local_tuner._tune_config  # type: ignore[union-attr]
    limit = getattr(tc, "max_concurrent_trials", None)
    if grown and limit:  # Tune adds the limiter to a Searcher only: add it here
        searcher, tc.max_concurrent_trials = ConcurrencyLimiter(searcher, max_concurrent=int(limit)), None
    tc.search_alg = Reopened(searcher) if grown else searcher
    return tuner


def extend(run_at: str, limits: reuse.Limits, quiet: bool = False) -> report.Summary:
    """Continue the finished sweep at ``run_at`` (a folder or a URI) with the raised ``limits``
    (``reuse.Limits``, frozen: more rounds, a larger epoch, wall-clock or GPU-hour budget, each a new total;
    ValueError for anything else), on the Ray this process is connected to: no trial runs again, the zoom
    plans from where it stopped, the new rounds are written as rounds (results, report, TensorBoard), and the
    extension is recorded in ``resume.log``.

    Raises ``ConfigError`` (one line) when nothing would change or the sweep is not finished (an interrupted
    one is continued with ``sweep run CONFIG --resume``), ``lease.LeaseHeldError`` while a driver runs it."""
    from orchestrator import lease

    if not isinstance(limits, reuse.Limits):
        raise ValueError(f"limits={configs.shown(limits)}: expected a reuse.Limits")
    where = reuse.locate(run_at)
    lease.check(lease.store_for(where.folder, where.uri))
    cfg, grown = reuse.extension(where, limits, quiet)
    with notified(cfg, where) as lines:
        tuner = _restore(cfg, where, quiet, grown=grown)
        with lease.held(lease.store_for(where.folder, where.uri), quiet=quiet):
            summary = _fit_and_publish(cfg, tuner, where, quiet)
        lines.append(f"{cfg.name}: {summary.line()}")
    return summary


def _extend(tuner: tune.Tuner, grown: dict[str, Any]) -> None:
    """Hand the raised ``zoom.Rules`` fields to the restored ``Reconcile``: it applies them to the
    searcher's state once Tune has restored it (at the run's first step)."""
    for c in _run_callbacks(tuner):
        if isinstance(c, Reconcile):
            c.grown = dict(grown)


def _fit(cfg: SweepConfig, tuner: tune.Tuner, where: storage.Target, quiet: bool) -> report.Summary:
    folder = where.folder
    start = time.time()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray's own tables off: we print rounds ourselves
    with placement.pending_trials(placement.trial_slots(cfg)):
        grid = tuner.fit()
    state = _searcher_of(tuner).state
    errors = {Path(r.path).name: str(r.error).strip().splitlines()[-1][:500] for r in grid if r.error is not None}  # type: ignore[attr-defined]  # iterates by __getitem__
    failures = next((c.failures for c in _run_callbacks(tuner) if isinstance(c, FailureCounter)), {})
    folders.save(folder, cfg, state, errors, failures)
    unfinished = sorted(tid for tid, t in state.trials.items() if not t.done)
    if state.stop_reason is None or unfinished:
        why = (
            "the search had not ended"
            if state.stop_reason is None
            else f"{len(unfinished)} trial(s) had not finished: {', '.join(unfinished[:3])}"
        )
        raise SweepInterrupted(
            f"{where.shown}: sweep interrupted ({why}); results so far are saved. Resume with: "
            f"sweep run CONFIG --resume"
        )
    summary = report.build(folder)
    board.write_pick(summary)  # the chosen rate into TensorBoard's _sweep run
    if where.uri:
        summary.where = f"{where.shown} (local copy: {folder})"
    if not quiet:
        print(f"[sweep] finished in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return summary


def _searcher_of(tuner) -> ZoomSearcher:
    # The searcher Tune ran (after Tuner.restore: the unpickled copy, restored from the experiment
    # folder). Ray has no public getter for it; this private path is the one place that relies on it.
    search = tuner._local_tuner._tune_config.search_alg
    while isinstance(search, (SearchGenerator, ConcurrencyLimiter)):
        search = search.searcher
    if not isinstance(search, ZoomSearcher):
        raise RuntimeError(f"expected the ZoomSearcher in the Tuner, found {type(search).__name__}")
    return search


def _run_callbacks(tuner: tune.Tuner) -> list:
    """The callbacks of the Tuner's run config (the same private path as ``_searcher_of``)."""
    local = tuner._local_tuner
    if local is None:
        raise RuntimeError("expected a Tuner that runs in this process, found one without a local tuner")
    return local.get_run_config().callbacks or []
