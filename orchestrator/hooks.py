"""The objects Ray Tune calls back during a sweep, handed to it by ``tuning.build_tuner``: ``RoundPrinter``
(the searcher's round lines), ``BudgetStop`` (a real-unit budget ends running trials), ``CoarseOnly`` (ASHA
for round 0 only), ``Reopened`` (a restored, extended searcher asked again), ``FailureCounter`` and
``Reconcile`` (the searcher's state made to agree with Tune's trials on a resumed run's first step). Tune
pickles them with the experiment: each is module-level, and keeps its state in plain attributes. Ray edge."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import SearchGenerator

from orchestrator import zoom
from orchestrator.checkpoints import checkpoint_history, mend_checkpoint
from orchestrator.searcher import ZoomSearcher


@dataclass
class RoundPrinter:
    """Prints one line per round as the searcher plans it (picklable: Tune stores the searcher)."""

    quiet: bool = False

    def __call__(self, event: zoom.Round | zoom.Stop) -> None:
        if self.quiet:
            return
        if isinstance(event, zoom.Stop):
            print(f"[sweep] no more rounds: {event.reason}", flush=True)
        else:
            print(f"[sweep] round {event.index}: {len(event.points)} trials ({event.reason})", flush=True)


class BudgetStop(tune.Stopper):
    """Stops running trials once a real-unit budget ended with ``zoom.on_budget: stop``
    (``SweepState.check_budget``, asked at each result, so a budget ends even while no trial is handed out)."""

    def __init__(self, searcher: ZoomSearcher) -> None:
        self.searcher = searcher

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.searcher.state.check_budget()

    def stop_all(self) -> bool:
        return False


class Reopened(SearchGenerator):
    """Tune's wrapper of the searcher for a restored sweep whose limits were raised (``sweep extend``):
    Tune saved it as finished; restored, it is not, so Tune asks the searcher again (which plans a new round,
    or stops again). Module-level: Tune pickles it."""

    def set_state(self, state: dict) -> None:
        super().set_state({**state, "finished": False})


class CoarseOnly(FIFOScheduler):
    """Early stopping for the coarse scan only: wraps a scheduler (ASHA) and lets it decide for trials of
    the rounds in ``rounds``; later rounds' trials, all near the optimum, run to the end.

    Stopping near-optimal trials at an early rung favours large learning rates (their loss falls faster
    at first) and leaves the final comparison to whichever trials happened to be promoted."""

    def __init__(self, inner, rounds: tuple[int, ...] = (0,)):
        super().__init__()
        self.inner = inner
        self.rounds = rounds

    def _scoped(self, trial) -> bool:
        return trial.config.get("round", 0) in self.rounds

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial) -> None:
        if self._scoped(trial):
            self.inner.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if self._scoped(trial):
            return self.inner.on_trial_result(tune_controller, trial, result)
        return FIFOScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        if self._scoped(trial):
            self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if self._scoped(trial):
            self.inner.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        if self._scoped(trial):
            self.inner.on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return f"CoarseOnly(rounds={self.rounds}): {self.inner.debug_string()}"


class FailureCounter(tune.Callback):
    """Counts each trial's failures (a crashed trainable, a lost node); shown in the results."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.failures[trial.trial_id] = self.failures.get(trial.trial_id, 0) + 1


class Reconcile(tune.Callback):
    """On the first step of a run, makes the searcher's state agree with the trials Tune holds.

    Only a resumed run can disagree (a crash between Tune's two saves; see ``SweepState.reconcile``).
    Holds the searcher itself: Tune pickles the searcher and the callbacks together in one file, so
    after ``Tuner.restore`` this is still the searcher Tune runs."""

    def __init__(self, searcher: ZoomSearcher, quiet: bool = False) -> None:
        self.searcher = searcher
        self.quiet = quiet
        self.checked = False
        self.grown: dict[str, Any] = {}  # zoom.Rules fields a resume with an extended config raises

    def on_step_begin(self, iteration, trials, **info) -> None:
        if self.checked:
            return
        self.checked = True
        state = self.searcher.state
        state.restart_clock()  # a restored sweep's wall-clock budget counts this driver's time, not the pause
        grown = getattr(self, "grown", None)  # absent from a Reconcile pickled before it existed
        if grown:
            state.extend(grown)
        open_ = [t for t in trials if t.trial_id not in state.trials or not state.trials[t.trial_id].done]
        for t in open_:
            source = mend_checkpoint(t.checkpoint)
            if source and not self.quiet:
                print(
                    f"[sweep] resumed: trial {t.trial_id}'s checkpoint was deleted by Tune before the crash; "
                    f"it resumes from {os.path.basename(source)}",
                    flush=True,
                )
        changes = state.reconcile(
            {t.trial_id: t.config for t in trials},
            {t.trial_id: checkpoint_history(t.checkpoint) for t in open_},
            {t.trial_id for t in trials if t.status == "TERMINATED"},
        )
        if any(changes.values()) and not self.quiet:
            print(
                "[sweep] resumed: the search state was a step apart from Tune's: "
                + ", ".join(f"{len(v)} trial(s) {k}" for k, v in changes.items()),
                flush=True,
            )

    def get_state(self) -> dict | None:
        return None  # nothing to carry over: each run checks once, at its start
