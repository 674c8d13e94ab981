"""Ray Tune callbacks that watch a sweep: per-trial TensorBoard with HParams, one sweep-level TensorBoard
run, a compact progress view. What they know of the sweep is a ``progress.Tally`` (no Ray); the server
behind ``sweep tensorboard`` is ``tbserver.py``.

What Ray's own ``TBXLoggerCallback`` writes, and what ``TrialBoard`` (a subclass of it) changes:

- per trial, every result's numbers as scalars ``ray/tune/<key>`` (``val_loss``, ``train_loss``,
  ``val_error``, ``lr_epoch``, ...), step = training iteration = epoch. Kept as is, except that
  non-finite values (a diverged trial's ``inf`` losses) are left out instead of written as ``inf``;
- HParams only when a trial ends, and with them a ``_hparams_/experiment`` summary per trial. TensorBoard
  uses whichever single experiment summary it finds first, so the dashboard's columns and metrics were
  one arbitrary trial's (no value ranges, every hparam flagged as not differing), running trials were
  missing, every session ended "success" (errored ones too), and list values were dropped.
  ``TrialBoard`` writes each trial's hparams when it *starts* (flattened config: nested keys as
  ``a/b``, lists as JSON text, ``_``-private keys left out, ``schedule`` = ``constant`` when absent), its
  end status when it ends (failure for errored or diverged trials), and no experiment summary:
  TensorBoard then derives the columns, ranges and metrics from all trials.

``SweepBoard`` writes one more TensorBoard run, ``FOLDER/_sweep``, for the sweep as a whole: the best
metric so far and the learning rate that holds it against cumulative epochs spent, trials running /
ended, and per round (step = round index, written once the round's trials have all ended) the bracket
(lowest / highest learning rate of the round's trials, also in log10) and how many trials started, ran
to the end, were stopped early, diverged or errored; a Markdown summary (Text tab) and a Custom Scalars
layout (train and validation loss on one chart per trial, the bracket per round).

``Progress`` prints one status line when a round starts, then at most one every ``interval`` seconds
while something changes, and a last one when the sweep ends (``verbose``: also one line per trial end;
``quiet``: nothing). All three are picklable (Tune stores the RunConfig for ``Tuner.restore``) and
keep their tallies across a resume through Tune's callback state.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from orchestrator.progress import Tally, hparams_of, number

SWEEP_RUN = "_sweep"  # the sweep-level TensorBoard run, beside Tune's trial folders


# --- TensorBoard summaries (tensorboardX protos: no TensorFlow needed) -------------------------------
def _hparams_summary(tag: str, **plugin_data):
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    content = HParamsPluginData(version=0, **plugin_data).SerializeToString()
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def session_start_summary(config: dict[str, Any], start_time: float | None = None):
    from tensorboardX.proto.plugin_hparams_pb2 import SessionStartInfo

    info = SessionStartInfo(start_time_secs=start_time or time.time())
    for key, value in hparams_of(config).items():
        if isinstance(value, bool):
            info.hparams[key].bool_value = value
        elif isinstance(value, float):
            info.hparams[key].number_value = value
        else:
            info.hparams[key].string_value = value
    return _hparams_summary("_hparams_/session_start_info", session_start_info=info)


def session_end_summary(failed: bool, end_time: float | None = None):
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import SessionEndInfo

    status = Status.Value("STATUS_FAILURE" if failed else "STATUS_SUCCESS")
    info = SessionEndInfo(status=status, end_time_secs=end_time or time.time())
    return _hparams_summary("_hparams_/session_end_info", session_end_info=info)


# --- the callbacks -----------------------------------------------------------------------------------
class TrialBoard(TBXLoggerCallback):
    """Ray's TBX logger (per-trial scalars under ``ray/tune/``) with HParams fixed; see the module doc.
    Passing it in ``RunConfig.callbacks`` replaces the default TBX logger Tune would add."""

    def log_trial_start(self, trial) -> None:
        super().log_trial_start(trial)
        writer = self._trial_writer[trial]
        writer.file_writer.add_summary(session_start_summary(trial.config))
        writer.flush()

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        finite = {k: v for k, v in result.items() if not (isinstance(v, float) and not math.isfinite(v))}
        super().log_trial_result(iteration, trial, finite)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        writer = self._trial_writer.get(trial)
        if writer is not None:
            last = trial.last_result or {}
            diverged = bool(last.get("diverged")) or not math.isfinite(number(last.get("val_loss", 0.0)))
            writer.file_writer.add_summary(session_end_summary(failed or diverged))
        super().log_trial_end(trial, failed)

    def _try_log_hparams(self, trial, result) -> None:
        """Ray's version writes a per-trial experiment summary, start and end at trial end: replaced by the
        start at trial start and the end in ``log_trial_end``."""


class SweepBoard(tune.Callback):
    """The sweep-level TensorBoard run ``FOLDER/_sweep`` (see the module doc)."""

    def __init__(self, folder: str | Path, metric: str = "val_loss"):
        self.folder = Path(folder)
        self.tally = Tally(metric=metric)
        self.emitted: list[int] = []  # rounds whose per-round scalars were written
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
            self._writer.add_custom_scalars({
                "sweep": {f"best {m} so far (x: epochs spent)": ["Multiline", [f"sweep/best_{m}"]],
                          "learning-rate bracket per round, log10 (x: round)":
                              ["Multiline", [r"rounds/log10_lr_(low|high)"]],
                          "trials per round (x: round)": ["Multiline", [r"rounds/trials_.*"]]},
                "trials": {"train and validation loss": ["Multiline", [r"ray/tune/(train|val)_loss"]],
                           "learning rate per epoch": ["Multiline", [r"ray/tune/lr_epoch"]]},
            })
        return self._writer

    def _follow(self, trial) -> None:
        """Write into the experiment folder Tune persists to (after ``Tuner.restore`` of a folder that was
        moved or copied, the new place rather than the pickled ``folder``). Not into Tune's driver staging
        folder: Tune copies that to storage for the last time *before* ``on_experiment_end``."""
        if self._writer is not None:
            return
        storage = getattr(trial, "storage", None)
        if getattr(getattr(storage, "storage_filesystem", None), "type_name", None) == "local":
            self.folder = Path(trial.remote_experiment_path)

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
        self.writer.add_text("sweep/summary", self.summary_markdown(), self.tally.epochs)
        self.writer.close()
        self._writer = None

    def _emit_closed_rounds(self, final: bool) -> None:
        """Per-round scalars (step = round index), once per round: when all its trials ended and a later
        round has started, or at the end of the sweep."""
        t = self.tally
        for k in sorted({i.round for i in t.trials.values()}):
            if k in self.emitted or not (final or (k < t.current_round and t.round_done(k))):
                continue
            low, high = t.bracket(k)
            w = self.writer
            w.add_scalar("rounds/lr_low", low, k)
            w.add_scalar("rounds/lr_high", high, k)
            if low > 0 and high > 0:  # decades: readable on TensorBoard's linear axis
                w.add_scalar("rounds/log10_lr_low", math.log10(low), k)
                w.add_scalar("rounds/log10_lr_high", math.log10(high), k)
            w.add_scalar("rounds/trials_started", sum(1 for i in t.trials.values() if i.round == k), k)
            for status in ("completed", "stopped", "diverged", "errored"):
                w.add_scalar(f"rounds/trials_{status}", t.count(status, round_index=k), k)
            best = min((i.best for i in t.trials.values() if i.round == k), default=math.inf)
            if math.isfinite(best):
                w.add_scalar(f"rounds/best_{t.metric}", best, k)
            w.add_scalar("rounds/epochs", sum(i.epochs for i in t.trials.values() if i.round == k), k)
            self.emitted.append(k)
        if self._writer is not None:
            self._writer.flush()

    def summary_markdown(self) -> str:
        t = self.tally
        lines = [f"| round | lr low | lr high | trials | completed | stopped early | diverged | errored "
                 f"| best {t.metric} |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for k in sorted({i.round for i in t.trials.values()}):
            low, high = t.bracket(k)
            best = min((i.best for i in t.trials.values() if i.round == k), default=math.inf)
            lines.append(f"| {k} | {low:.3g} | {high:.3g} | {sum(1 for i in t.trials.values() if i.round == k)} | "
                         f"{t.count('completed', round_index=k)} | {t.count('stopped', round_index=k)} | "
                         f"{t.count('diverged', round_index=k)} | {t.count('errored', round_index=k)} | "
                         f"{best:.4f} |")
        lines.append("")
        lines.append(f"{t.epochs} epochs spent ({t.fte:.2f} FTE); best {t.metric} {t.best:.4f} "
                     f"at lr {t.best_lr():.3g} (trial {t.best_trial})")
        return "\n".join(lines)

    def get_state(self) -> dict[str, Any]:
        return {"tally": asdict(self.tally), "emitted": list(self.emitted)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tally = Tally.from_state(state["tally"])
        self.emitted = list(state.get("emitted", []))


class Progress(tune.Callback):
    """The compact live view on stdout (see the module doc)."""

    def __init__(self, quiet: bool = False, verbose: bool = False, metric: str = "val_loss",
                 interval: float = 15.0):
        self.quiet = quiet
        self.verbose = verbose
        self.interval = interval
        self.tally = Tally(metric=metric)
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


def callbacks(folder: Path, quiet: bool = False, verbose: bool = False, *, metric: str = "val_loss",
              interval: float = 15.0) -> list[tune.Callback]:
    """The callbacks for ``tune.RunConfig(callbacks=...)``: per-trial TensorBoard with HParams, the
    sweep-level run ``FOLDER/_sweep`` and the progress view. Keep their order across a resume (Tune
    restores callback state by position)."""
    return [TrialBoard(), SweepBoard(folder, metric=metric),
            Progress(quiet=quiet, verbose=verbose, metric=metric, interval=interval)]
