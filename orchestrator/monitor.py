"""Watching a sweep: Ray Tune callbacks (per-trial TensorBoard with HParams, one sweep-level TensorBoard
run, a compact progress view) and ``sweep tensorboard`` (the real TensorBoard server over a sweep folder).

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

import argparse
import collections
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from orchestrator.results import TrialStatus

SWEEP_RUN = "_sweep"  # the sweep-level TensorBoard run, beside Tune's trial folders
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# --- pure bookkeeping (no Ray) ----------------------------------------------------------------------
@dataclass
class TrialInfo:
    trial_id: str
    round: int
    lr: float
    max_epochs: int
    epochs: int = 0
    best: float = math.inf  # best metric value this trial reached
    last: float = math.nan
    status: str = "running"  # pending | running | completed | stopped | diverged | errored


@dataclass
class Tally:
    """What the callbacks know of the sweep so far. Plain data: ``asdict`` / ``from_state`` round trip."""

    metric: str = "val_loss"
    trials: dict[str, TrialInfo] = field(default_factory=dict)
    epochs: int = 0  # distinct trial-epochs reported (a replayed epoch counts once, as in the results)
    best: float = math.inf
    best_trial: str | None = None
    best_epoch: int = 0
    elapsed: float = 0.0  # seconds of earlier sessions (before a resume)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tally:
        state = dict(state)
        state["trials"] = {k: TrialInfo(**v) for k, v in state.get("trials", {}).items()}
        return cls(**state)

    # events
    def add(self, trial_id: str, config: dict[str, Any]) -> TrialInfo:
        """Know of a trial (created by the searcher, maybe still waiting for resources)."""
        t = self.trials.get(trial_id)
        if t is None:
            t = self.trials[trial_id] = TrialInfo(trial_id, int(config.get("round", 0) or 0),
                                                  _number(config.get("lr")), int(config.get("max_epochs", 0) or 0),
                                                  status="pending")
        return t

    def start(self, trial_id: str, config: dict[str, Any]) -> bool:
        """Record a trial start; True when it is the first trial of its round to start."""
        t = self.add(trial_id, config)
        new_round = not any(o.round == t.round and o.status != "pending" for o in self.trials.values())
        t.status = "running"  # also when restarted after a failure, or resumed
        return new_round

    def result(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Record one epoch's result; True when it is a new epoch for that trial."""
        t = self.trials.get(trial_id)
        if t is None or t.status == "pending":
            self.start(trial_id, result.get("config") or {})
            t = self.trials[trial_id]
        epoch = int(result.get("epoch") or result.get("training_iteration") or 0)
        value = _number(result.get(self.metric))
        t.last = value
        if math.isfinite(value) and value < t.best:
            t.best = value
        if math.isfinite(value) and value < self.best:
            self.best, self.best_trial, self.best_epoch = value, trial_id, epoch
        if epoch <= t.epochs:
            return False
        self.epochs += epoch - t.epochs
        t.epochs = epoch
        return True

    def end(self, trial_id: str, last_result: dict[str, Any] | None, errored: bool = False) -> TrialInfo | None:
        t = self.trials.get(trial_id)
        if t is None:
            return None
        last = last_result or {}
        diverged = bool(last.get("diverged") or (t.epochs and not math.isfinite(t.last)))
        t.status = TrialStatus.ended(diverged=diverged, errored=errored, epochs=t.epochs, max_epochs=t.max_epochs)
        return t

    # views
    @property
    def max_epochs(self) -> int:
        return max((t.max_epochs for t in self.trials.values()), default=0)

    @property
    def fte(self) -> float:
        return self.epochs / self.max_epochs if self.max_epochs else math.nan

    @property
    def current_round(self) -> int:
        """The latest round a trial of which has started."""
        return max((t.round for t in self.trials.values() if t.status != "pending"), default=0)

    def count(self, *statuses: str, round_index: int | None = None) -> int:
        return sum(1 for t in self.trials.values()
                   if t.status in statuses and (round_index is None or t.round == round_index))

    def bracket(self, round_index: int) -> tuple[float, float]:
        lrs = [t.lr for t in self.trials.values() if t.round == round_index and math.isfinite(t.lr)]
        return (min(lrs), max(lrs)) if lrs else (math.nan, math.nan)

    def ended(self) -> int:
        return len(self.trials) - self.count("pending", "running")

    def round_done(self, round_index: int) -> bool:
        members = [t for t in self.trials.values() if t.round == round_index]
        return bool(members) and all(t.status not in ("pending", "running") for t in members)

    def best_lr(self) -> float:
        t = self.trials.get(self.best_trial or "")
        return t.lr if t else math.nan

    def status_line(self, elapsed: float, round_started: bool = False) -> str:
        """One line: the round (just started, or the learning rates its trials span so far), the trials,
        the best so far, the epochs spent."""
        k = self.current_round
        low, high = self.bracket(k)
        waiting = f", {self.count('pending')} waiting" if self.count("pending") else ""
        where = "started" if round_started else f"(lr {low:.3g}..{high:.3g})"
        parts = [f"[sweep {_clock(elapsed)}] round {k} {where}",
                 f"trials {self.count('running')} running{waiting}, {self.ended()} ended ({self.count('completed')} completed, "
                 f"{self.count('stopped')} stopped early, {self.count('diverged')} diverged, "
                 f"{self.count('errored')} errored)"]
        if self.best_trial:
            parts.append(f"best {self.metric} {self.best:.4f} (lr {self.best_lr():.3g}, trial {self.best_trial}, "
                         f"epoch {self.best_epoch})")
        else:
            parts.append(f"best {self.metric} n/a")
        parts.append(f"{self.epochs} epochs" + (f" = {self.fte:.1f} FTE" if math.isfinite(self.fte) else ""))
        return " | ".join(parts)

    def trial_line(self, t: TrialInfo, elapsed: float) -> str:
        verb = {"completed": "completed", "stopped": "stopped early", "diverged": "diverged",
                "errored": "errored"}.get(t.status, t.status)
        best = f"{t.best:.4f}" if math.isfinite(t.best) else "n/a"
        return (f"[sweep {_clock(elapsed)}] trial {t.trial_id} (round {t.round}, lr {t.lr:.3g}) {verb} "
                f"after {t.epochs} epochs: best {self.metric} {best}")


def _know(tally: Tally, trials) -> None:
    """Register the trials Tune has created (the ones still waiting for resources included)."""
    for tr in trials or ():
        if tr.trial_id not in tally.trials:
            tally.add(tr.trial_id, tr.config)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def hparams_of(config: dict[str, Any]) -> dict[str, str | float | bool]:
    """A trial config as TensorBoard HParams values: nested dicts flattened to ``a/b``; numbers as floats;
    strings and booleans as they are; lists and other values as JSON text; ``None`` and ``_``-private keys
    left out; ``schedule`` = ``constant`` when absent (the trial's default decay law)."""
    out: dict[str, str | float | bool] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(f"{prefix}/{k}" if prefix else str(k), v)
            return
        if prefix.startswith("_") or value is None:
            return
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
            value = value.item()
        if isinstance(value, (bool, str)):
            out[prefix] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix] = float(value)
        else:
            out[prefix] = json.dumps(value, default=str, sort_keys=True) if isinstance(value, (list, tuple)) \
                else str(value)

    visit("", config)
    out.setdefault("schedule", "constant")
    return out


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
            diverged = bool(last.get("diverged")) or not math.isfinite(_number(last.get("val_loss", 0.0)))
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
        self._writer = None

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
        _know(self.tally, trials)
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
        lines = [f"| round | lr low | lr high | trials | completed | stopped early | diverged | errored | best {t.metric} |",
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

    def setup(self, **info) -> None:
        self._t0 = time.time()
        self._last_print = self._t0

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        _know(self.tally, trials)
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
        _know(self.tally, trials)
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


# --- the TensorBoard server --------------------------------------------------------------------------
class TensorBoardError(RuntimeError):
    """TensorBoard did not start (bad folder, port taken, crashed)."""


_URL = re.compile(r"(https?://\S+)")


class TensorBoardServer:
    """A ``tensorboard`` subprocess over one folder; ``url`` once it serves. Its output is drained by a
    thread (the last lines are kept in ``tail``) so that a full pipe never blocks it."""

    def __init__(self, process: subprocess.Popen, echo: bool = False):
        self.process = process
        self.echo = echo
        self.url: str | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.tail.append(line)
            if self.url is None:
                m = _URL.search(line)
                if m and "TensorBoard" in line:
                    self.url = m.group(1)
                    self._ready.set()
                    continue
            if self.echo and self.url is not None:
                print(line, file=sys.stderr, flush=True)
        self._ready.set()  # exited

    def wait_ready(self, timeout: float) -> str:
        if not self._ready.wait(timeout):
            self.stop()
            raise TensorBoardError(f"tensorboard did not start within {timeout:.0f} s")
        if self.url is None:
            self.process.wait(timeout=10)
            self._reader.join(timeout=5)
            raise TensorBoardError(f"tensorboard exited with code {self.process.returncode}: {self.reason()}")
        return self.url

    def reason(self) -> str:
        lines = [line.strip() for line in self.tail if line.strip()]
        for line in reversed(lines):
            if any(w in line.lower() for w in ("error", "could not", "already in use", "no such")):
                return line
        return lines[-1] if lines else "no output"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)

    def __enter__(self) -> TensorBoardServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch(folder: str | Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0,
           echo: bool = False) -> TensorBoardServer:
    """Start ``tensorboard --logdir FOLDER --host HOST --port PORT`` and wait until it serves.

    ``port=None``: 6006, or the next free port after it (TensorBoard's "default"); ``0``: any free port.
    Raises ``TensorBoardError`` (one line) if the folder is missing or the server does not come up."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise TensorBoardError(f"{folder}: no such sweep folder (expected STORAGE/NAME, e.g. runs/digits-lr)")
    if not folder.is_dir():
        raise TensorBoardError(f"{folder}: not a folder (expected a sweep folder, e.g. runs/digits-lr)")
    if port is not None and not 0 <= port <= 65535:
        raise TensorBoardError(f"port={port}: expected 0..65535")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(folder.resolve()), "--host", host,
           "--port", "default" if port is None else str(port)]
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    server = TensorBoardServer(process, echo=echo)
    server.wait_ready(timeout)
    return server


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number 0..65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: expected a port number 0..65535")
    return value


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """``sweep tensorboard RUN``: serve TensorBoard over the sweep folder until Ctrl-C."""
    folder = Path(args.folder)
    try:
        server = launch(folder, host=args.host, port=args.port, echo=getattr(args, "verbose", False))
    except TensorBoardError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not any(folder.rglob("events.out.tfevents*")):
        print(f"sweep: note: {folder} holds no TensorBoard events yet; they appear as the sweep writes them",
              file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"sweep: note: serving on {args.host}: anyone who can reach it can read the logs",
              file=sys.stderr, flush=True)
    print(f"TensorBoard: {server.url}  (logdir {folder}; Ctrl-C to stop)", flush=True)
    previous = _on_sigterm_raise()
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        print(f"sweep: error: tensorboard exited with code {code}: {server.reason()}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _on_sigterm_raise():
    """Turn SIGTERM into KeyboardInterrupt, so that the TensorBoard child is stopped too; returns the old
    handler (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``sweep tensorboard RUN [--port N] [--host 127.0.0.1]`` to the CLI's subparsers."""
    p = subparsers.add_parser("tensorboard", help="serve TensorBoard over a sweep folder (127.0.0.1 unless --host)",
                              description="Start TensorBoard over a sweep folder (while it runs or after) and "
                                          "print its URL. Trial runs hold per-epoch losses, the learning rate "
                                          "and the HParams table; the run '_sweep' holds the sweep as a whole.")
    p.add_argument("folder", metavar="RUN", help="a sweep folder, e.g. runs/digits-lr")
    p.add_argument("--port", type=_port, default=None,
                   help="port (default: 6006, or the next free one; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to serve on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--verbose", action="store_true", help="also show TensorBoard's own log lines")
    p.set_defaults(func=cmd_tensorboard)
    return p
