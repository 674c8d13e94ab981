"""Ray Tune callbacks that watch a sweep: one TensorBoard run per trial, one for the sweep as a whole, the
HParams declaration, and a compact progress view. What they know of the sweep is a ``progress.Tally`` (no
Ray); the server behind ``sweep tensorboard`` is ``tbserver.py``.

Everything goes into the sweep folder itself (written by the driver, so TensorBoard sees it at once):

- ``TrialBoard``: per trial a run named ``progress.run_name`` (``r1 lr=0.00316 optimizer=adam 3f2a1b9c``)
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
- ``write_pick`` (after the report is built): the chosen rate into ``_sweep``: ``chosen/lr``,
  ``chosen/lr_low``, ``chosen/lr_high``, ``chosen/<metric>`` (step = epochs spent), the Text ``chosen/summary``,
  and the metric-vs-lr plot for rounds 0..k as the image ``chosen/<metric>_vs_lr`` at step k.

``Progress`` prints one status line when a round starts, then at most one every ``interval`` seconds
while something changes, and a last one when the sweep ends (``verbose``: also one line per trial end;
``quiet``: nothing). All three callbacks are picklable (Tune stores the RunConfig for ``Tuner.restore``)
and keep their tallies across a resume through Tune's callback state.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from orchestrator import atomicfs
from orchestrator.progress import SWEEP_RUN, Searched, Tally, hparams_of, number, run_name, tag_of, trial_scalars


# --- TensorBoard summaries (tensorboardX protos: no TensorFlow needed) -------------------------------
def _hparams_summary(tag: str, **plugin_data):
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    content = HParamsPluginData(version=0, **plugin_data).SerializeToString()
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def session_start_summary(config: dict[str, Any], start_time: float | None = None, keys: tuple[str, ...] | None = None):
    from tensorboardX.proto.plugin_hparams_pb2 import SessionStartInfo

    info = SessionStartInfo(start_time_secs=start_time or time.time())
    for key, value in hparams_of(config, keys).items():
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


def hparams_experiment(searched: Searched, metric: str = "val_loss"):
    """The HParams experiment: the columns ``Searched.keys`` (``round`` 0..max_rounds-1, the zoomed
    parameter over its range, each crossed dimension with its values) and the metrics (the sweep's metric,
    ``train_loss``, ``val_error``: each at a trial's last epoch), nothing else."""
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, Interval, MetricInfo, MetricName

    infos = [
        HParamInfo(
            name="round",
            type=DataType.Value("DATA_TYPE_FLOAT64"),
            description="the zoom round that created the trial",
            domain_interval=Interval(min_value=0, max_value=max(searched.max_rounds - 1, 0)),
        )
    ]
    span = Interval(min_value=searched.low, max_value=searched.high) if math.isfinite(searched.low) else None
    infos.append(
        HParamInfo(
            name=searched.param,
            type=DataType.Value("DATA_TYPE_FLOAT64"),
            description="the zoomed parameter",
            domain_interval=span,
        )
    )
    for key, values in searched.grid:
        shown = list(hparams_of({key: v}, (key,)).get(key) for v in values)
        kind = (
            "DATA_TYPE_BOOL"
            if all(isinstance(v, bool) for v in shown)
            else "DATA_TYPE_FLOAT64"
            if all(isinstance(v, float) for v in shown)
            else "DATA_TYPE_STRING"
        )
        info = HParamInfo(name=key, type=DataType.Value(kind), description="a crossed dimension of the space")
        info.domain_discrete.extend([v if kind != "DATA_TYPE_STRING" else str(v) for v in shown])
        infos.append(info)
    names = [metric] + [m for m in ("train_loss", "val_error") if m != metric]
    metrics = [MetricInfo(name=MetricName(tag=tag_of(m, metric)), display_name=f"{m} (last epoch)") for m in names]
    experiment = Experiment(hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time())
    return _hparams_summary("_hparams_/experiment", experiment=experiment)


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


# --- the pick, after the report ----------------------------------------------------------------------
def write_pick(summary) -> Path:
    """Add the chosen rate to ``FOLDER/_sweep`` (see the module doc) from an ``analysis.Summary`` and the
    ``best.json`` the report wrote beside it (``pick_of``: the numbers are best.json's). Returns the run."""
    from tensorboardX import SummaryWriter

    from orchestrator import plots, results

    s = summary
    pick = pick_of(results.read_json(s.folder / "best.json") or {}, s.metric)
    step = int(s.epochs)
    run = s.folder / SWEEP_RUN
    with SummaryWriter(str(run), flush_secs=10) as w:
        w.add_scalar("chosen/lr", pick.get("lr", s.lr), step)
        for key in ("low", "high"):
            if key in pick:
                w.add_scalar(f"chosen/lr_{key}", pick[key], step)
        if "score" in pick:
            w.add_scalar(f"chosen/{s.metric}", pick["score"], step)
        add_text(w, "chosen/summary", pick_markdown(pick, s.metric, getattr(s, "param", "lr")), step)
        for k in sorted({c.round for c in s.table}):
            upto = replace(
                s,
                table=tuple(c for c in s.table if c.round <= k),
                rounds=[r for r in s.rounds if int(r.get("index", 0)) <= k],
            )
            fig = plots.figure_vs_lr(upto)
            fig.axes[0].set_title(f"{s.folder.name}: {s.metric} against learning rate, rounds 0-{k}")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            w.file_writer.add_summary(_image_summary(f"chosen/{s.metric}_vs_lr", buf.getvalue(), fig), k)
    return run


def pick_of(best: dict[str, Any], metric: str = "val_loss") -> dict[str, Any]:
    """What TensorBoard shows of best.json, each key only where best.json has it (finite): ``lr``;
    ``low``, ``high``, ``noise`` (``band``); ``score`` (the chosen rate's own score: ``score.value``; a
    best.json without ``score`` gives ``METRIC`` only when the rate is not a fit between trials, since there
    ``METRIC`` is the best trial's) and ``label`` (what the score is, e.g. 'mean of epochs 25-27');
    ``interpolated``; ``best_trial``, ``best_lr``, ``best_score``, ``best_label``; ``epochs``, ``fte``,
    ``trials``; ``warnings``."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)

    put("lr", best.get("lr"))
    band: dict[str, Any] = best["band"] if isinstance(best.get("band"), dict) else {}
    for key in ("low", "high", "noise"):
        put(key, band.get(key))
    score = best.get("score") if isinstance(best.get("score"), dict) else None
    if score is not None:
        put("score", score.get("value"))
        label = "; ".join(str(x) for x in dict.fromkeys((score.get("statistic"), score.get("label"))) if x)
    else:
        if not best.get("interpolated"):
            put("score", best.get(metric))
        label = None
    if label and "score" in out:
        out["label"] = str(label)
    out["interpolated"] = bool(best.get("interpolated"))
    bt: dict[str, Any] = best["best_trial"] if isinstance(best.get("best_trial"), dict) else {}
    if bt.get("trial_id"):
        out["best_trial"] = str(bt["trial_id"])
        put("best_lr", bt.get("lr"))
        put("best_score", bt.get("score", bt.get(metric)))
        if bt.get("statistic"):
            out["best_label"] = str(bt["statistic"])
    put("epochs", best.get("epochs_spent"))
    put("fte", best.get("fte"))
    put("trials", best.get("trials"))
    out["warnings"] = [str(w) for w in best.get("warnings") or []]
    return out


def pick_markdown(pick: dict[str, Any], metric: str = "val_loss", param: str = "lr") -> str:
    """The Text summary of the pick (``pick_of``): the chosen rate with its band, its own score, the best
    trial run, the cost, the warnings; a missing number is left out."""
    lines = [f"**chosen {param} = {pick['lr']:.3g}**" if "lr" in pick else f"**no {param} chosen**"]
    if pick.get("interpolated"):
        lines[0] += " (a fit between trials: no trial ran at it)"
    lines.append("")
    if "low" in pick and "high" in pick:
        lines.append(
            f"- band: {param} {pick['low']:.3g} .. {pick['high']:.3g}, the rates the sweep cannot tell "
            f"apart from the best" + (f" (noise {pick['noise']:.4f})" if "noise" in pick else "")
        )
    if "score" in pick:
        lines.append(
            f"- {metric} of the chosen rate: {pick['score']:.4f}" + (f" ({pick['label']})" if pick.get("label") else "")
        )
    if "best_trial" in pick:
        rate = f" at {param} {pick['best_lr']:.3g}" if "best_lr" in pick else ""
        score = f": {metric} {pick['best_score']:.4f}" if "best_score" in pick else ""
        label = f" ({pick['best_label']})" if pick.get("best_label") and score else ""
        lines.append(f"- best trial run: {pick['best_trial']}{rate}{score}{label}")
    if "epochs" in pick:
        lines.append(
            f"- cost: {pick['epochs']:.0f} epochs"
            + (f" ({pick['fte']:.1f} FTE)" if "fte" in pick else "")
            + (f", {pick['trials']:.0f} trials" if "trials" in pick else "")
        )
    lines += [f"- warning: {w}" for w in pick.get("warnings", [])]
    return "\n".join(lines)


def add_text(writer, tag: str, markdown: str, step: int) -> None:
    """A Text-tab entry under ``tag`` itself (tensorboardX's ``add_text`` appends ``/text_summary``)."""
    from tensorboardX.summary import text

    summary = text(tag, markdown)
    summary.value[0].tag = tag
    writer.file_writer.add_summary(summary, step)


def _image_summary(tag: str, png: bytes, fig):
    from tensorboardX.proto.summary_pb2 import Summary

    width, height = (int(v) for v in fig.get_size_inches() * 100)
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


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
