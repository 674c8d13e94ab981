"""Ray Tune callbacks that watch a sweep: one TensorBoard run per trial, one for the sweep as a whole, the
HParams declaration, and a compact progress view. What they know of the sweep is a ``progress.Tally`` (no
Ray); the summaries they write are built in ``tbsummary`` (no Ray); the server behind ``sweep tensorboard``
is ``tbserver.py``.

Everything goes into the sweep folder itself (written by the driver, so TensorBoard sees it at once):

- ``TrialBoard``: per trial a run named ``tbnames.run_name`` (``r1 lr=0.00316 optimizer=adam 3f2a1b9c``)
  with the scalars ``TRIAL_SCALARS`` a user reads (``loss/val_loss``, ``loss/train_loss``, ``val_error``,
  ``lr`` (the rate that epoch, after decay), ``time/epoch_seconds``; the sweep's metric too if it is
  another), step = epoch; non-finite values (a diverged trial's ``inf``) left out. Its HParams session starts when
  the trial starts (the searched values only, when ``searched`` is known) and ends when it ends
  (failure for an errored or diverged trial). It is a subclass of Ray's ``TBXLoggerCallback`` only so
  that Tune adds no TBX logger of its own (Tune adds one unless a callback is one): none of Ray's
  writing is used, so no ``ray/tune/*`` counters reach TensorBoard.
- ``SweepBoard``: the run ``_sweep``. Against cumulative epochs spent: ``sweep/best_<metric>`` (the
  best any trial reached at any epoch: lowest, or highest for ``mode: max``) and ``sweep/best_lr``,
  ``sweep/round``, ``sweep/trials_running``, ``sweep/trials_ended``. Text: ``sweep/rounds`` (a table of the
  rounds, written when a round closes and at the end). The HParams experiment (``hparams_experiment``:
  ``round``, the searched parameters and the metrics, nothing else) when ``searched`` is known; a Custom Scalars layout.
- ``write_pick`` (``tbsummary.write_pick``, after the report is built): the chosen rate into ``_sweep``:
  ``chosen/lr``, ``chosen/lr_low``, ``chosen/lr_high``, ``chosen/<metric>`` (step = epochs spent), the Text
  ``chosen/summary``, and the metric-vs-lr plot for rounds 0..k as the image ``chosen/<metric>_vs_lr`` at step k.

``Progress`` prints one status line when a round starts, then at most one every ``interval`` seconds
while something changes, and a last one when the sweep ends (``verbose``: also one line per trial end;
``quiet``: nothing). All three callbacks are picklable (Tune stores the RunConfig for ``Tuner.restore``)
and keep their tallies across a resume through Tune's callback state.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from orchestrator import atomicfs
from orchestrator.progress import Tally
from orchestrator.tbnames import SWEEP_RUN, Searched, number, run_name, trial_scalars
from orchestrator.tbsummary import (
    add_text,
    hparams_experiment,
    session_end_summary,
    session_start_summary,
    write_pick as write_pick,  # re-exported: tuning calls board.write_pick
)


def _experiment_folder(trial, folder: Path | None) -> Path | None:
    """The experiment folder Tune persists to, for a local storage (after ``Tuner.restore`` of a folder
    that was moved or copied: the new place rather than the pickled one); else ``folder``. Never Tune's
    driver staging folder: Tune copies that to storage for the last time *before* ``on_experiment_end``."""
    storage = getattr(trial, "storage", None)
    if atomicfs.is_local(getattr(storage, "storage_filesystem", None)):
        return Path(trial.remote_experiment_path)
    return folder


# --- the callbacks -----------------------------------------------------------------------------------
class TrialBoard(TBXLoggerCallback):
    """One TensorBoard run per trial, with its HParams session (see the module doc). ``folder``: the
    sweep folder (followed to where Tune persists, for a local storage); ``searched``: what the sweep varies
    (names the runs and limits the HParams to it; ``None``: the run name holds round and lr, the HParams
    the whole config)."""

    def __init__(self, folder: str | Path | None = None, searched: Searched | None = None, metric: str = "val_loss"):
        super().__init__()
        self.folder = Path(folder) if folder is not None else None
        self.searched = searched
        self.metric = metric
        self._writers: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_writers"], state["_trial_writer"], state["_trial_result"] = {}, {}, {}  # no live file handle
        return state

    def _open(self, trial):
        writers = self.__dict__.setdefault("_writers", {})  # absent from a TrialBoard pickled before it existed
        if trial.trial_id not in writers:
            from tensorboardX import SummaryWriter

            folder = _experiment_folder(trial, getattr(self, "folder", None))
            searched = getattr(self, "searched", None)
            path = folder / run_name(trial.trial_id, trial.config, searched) if folder else Path(trial.local_path)
            writers[trial.trial_id] = SummaryWriter(str(path), flush_secs=10)
        return writers[trial.trial_id]

    def log_trial_start(self, trial) -> None:
        old = self.__dict__.setdefault("_writers", {}).pop(trial.trial_id, None)
        if old is not None:  # restarted after a failure: a fresh session
            old.close()
        searched = getattr(self, "searched", None)
        writer = self._open(trial)
        writer.file_writer.add_summary(session_start_summary(trial.config, keys=searched.keys if searched else None))
        writer.flush()

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        writer = self._open(trial)
        step = int(number(result.get("epoch") or result.get("training_iteration") or iteration))
        for key, tag in trial_scalars(getattr(self, "metric", "val_loss")):
            value = number(result.get(key))
            if math.isfinite(value):
                writer.add_scalar(tag, value, step)
        writer.flush()

    def log_trial_end(self, trial, failed: bool = False) -> None:
        writer = self.__dict__.setdefault("_writers", {}).pop(trial.trial_id, None)
        if writer is None:
            return
        last = trial.last_result or {}
        diverged = bool(last.get("diverged")) or not math.isfinite(number(last.get("val_loss", 0.0)))
        writer.file_writer.add_summary(session_end_summary(failed or diverged))
        writer.close()

    def on_experiment_end(self, trials, **info) -> None:
        for writer in self.__dict__.setdefault("_writers", {}).values():
            writer.close()
        self._writers = {}


class SweepBoard(tune.Callback):
    """The sweep-level TensorBoard run ``FOLDER/_sweep`` (see the module doc)."""

    def __init__(
        self,
        folder: str | Path,
        metric: str = "val_loss",
        searched: Searched | None = None,
        mode: str = "min",
        target: float | None = None,
    ):
        self.folder = Path(folder)
        self.searched = searched
        self.tally = Tally(metric=metric, mode=mode, target=target)
        self.emitted: list[int] = []  # rounds whose table row was written
        self._writer: Any = None  # a tensorboardX SummaryWriter once opened

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_writer"] = None  # a live file handle never travels
        return state

    @property
    def writer(self):
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.folder / SWEEP_RUN), flush_secs=10)
            m = self.tally.metric
            searched = getattr(self, "searched", None)
            if searched is not None:
                self._writer.file_writer.add_summary(hparams_experiment(searched, m))
            self._writer.add_custom_scalars(
                {
                    "sweep (x: epochs spent)": {
                        f"{self.tally.best_word} {m} so far": ["Multiline", [f"^sweep/best_{m}$"]],
                        "its learning rate, and the chosen one with its band": [
                            "Multiline",
                            [r"^sweep/best_lr$", r"^chosen/lr"],
                        ],
                    },
                    "trials (x: epoch)": {
                        "train and validation loss": ["Multiline", [r"^loss/(train|val)_loss$"]],
                        "learning rate per epoch": ["Multiline", [r"^lr$"]],
                    },
                }
            )
        return self._writer

    def _follow(self, trial) -> None:
        if self._writer is None:
            self.folder = _experiment_folder(trial, self.folder) or self.folder

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._follow(trial)
        self.tally.know(trials)
        self.tally.start(trial.trial_id, trial.config)
        self._emit_closed_rounds(final=False)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._follow(trial)
        if not self.tally.result(trial.trial_id, result):
            return
        t, step, w = self.tally, self.tally.epochs, self.writer
        if t.best_trial:
            w.add_scalar(f"sweep/best_{t.metric}", t.best, step)
            w.add_scalar("sweep/best_lr", t.best_lr(), step)
        w.add_scalar("sweep/round", t.current_round, step)
        w.add_scalar("sweep/trials_running", t.count("running"), step)
        w.add_scalar("sweep/trials_ended", t.ended(), step)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.tally.end(trial.trial_id, trial.last_result)
        self._emit_closed_rounds(final=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.tally.end(trial.trial_id, trial.last_result, errored=True)
        self._emit_closed_rounds(final=False)

    def on_experiment_end(self, trials, **info) -> None:
        self._emit_closed_rounds(final=True)
        add_text(self.writer, "sweep/rounds", self.summary_markdown(), self.tally.epochs)
        self.writer.close()
        self._writer = None

    def _emit_closed_rounds(self, final: bool) -> None:
        """The table of rounds (Text tab, step = epochs spent), each time a round closes: all its trials
        ended and a later round has started (the final table is written at the end of the sweep)."""
        t = self.tally
        closed = [
            k
            for k in sorted({i.round for i in t.trials.values()})
            if k not in self.emitted and (final or (k < t.current_round and t.round_done(k)))
        ]
        if not closed:
            return
        self.emitted.extend(closed)
        if not final:
            add_text(self.writer, "sweep/rounds", self.summary_markdown(), t.epochs)
            self.writer.flush()

    def summary_markdown(self) -> str:
        return self.tally.rounds_markdown()

    def get_state(self) -> dict[str, Any]:
        return {"tally": asdict(self.tally), "emitted": list(self.emitted)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tally = Tally.from_state(state["tally"])
        self.emitted = list(state.get("emitted", []))


# --- the live view -----------------------------------------------------------------------------------
class Progress(tune.Callback):
    """The compact live view on stdout (see the module doc)."""

    def __init__(
        self,
        quiet: bool = False,
        verbose: bool = False,
        metric: str = "val_loss",
        interval: float = 15.0,
        mode: str = "min",
        target: float | None = None,
    ):
        self.quiet = quiet
        self.verbose = verbose
        self.interval = interval
        self.tally = Tally(metric=metric, mode=mode, target=target)
        self._t0 = time.time()
        self._last_print = 0.0
        self._dirty = self._new_round = False

    def elapsed(self) -> float:
        return self.tally.elapsed + time.time() - self._t0

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def _status(self) -> None:
        self._print(self.tally.status_line(self.elapsed(), round_started=self._new_round))
        self._last_print = time.time()
        self._dirty = self._new_round = False

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self._t0 = time.time()
        self._last_print = self._t0

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.tally.know(trials)
        self._new_round = self.tally.start(trial.trial_id, trial.config) or self._new_round
        self._dirty = True

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._dirty = self.tally.result(trial.trial_id, result) or self._dirty

    def _ended(self, trial, errored: bool) -> None:
        t = self.tally.end(trial.trial_id, trial.last_result, errored=errored)
        if t is not None and self.verbose:
            self._print(self.tally.trial_line(t, self.elapsed()))
        self._dirty = True

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, errored=True)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.tally.know(trials)
        if self._new_round or (self._dirty and time.time() - self._last_print >= self.interval):
            self._status()

    def on_experiment_end(self, trials, **info) -> None:
        self._status()

    def get_state(self) -> dict[str, Any]:
        state = asdict(self.tally)
        state["elapsed"] = self.elapsed()
        return {"tally": state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tally = Tally.from_state(state["tally"])


def callbacks(
    folder: Path,
    quiet: bool = False,
    verbose: bool = False,
    *,
    metric: str = "val_loss",
    interval: float = 15.0,
    searched: Searched | None = None,
    mode: str = "min",
    target: float | None = None,
) -> list[tune.Callback]:
    """The callbacks for ``tune.RunConfig(callbacks=...)``: a TensorBoard run per trial with HParams, the
    sweep-level run ``FOLDER/_sweep`` and the progress view. ``searched`` (``Searched.of(cfg)``): names
    the trial runs and declares the HParams columns; ``mode`` and ``target`` (the config's): which way the
    best so far is best. Keep their order across a resume (Tune restores callback state by position)."""
    return [
        TrialBoard(folder, searched=searched, metric=metric),
        SweepBoard(folder, metric=metric, searched=searched, mode=mode, target=target),
        Progress(quiet=quiet, verbose=verbose, metric=metric, interval=interval, mode=mode, target=target),
    ]
