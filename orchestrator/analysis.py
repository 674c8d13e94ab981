"""What a stored sweep says, worked out once: a typed trial table and the summary of the pick.

Pure: reads ``trials.parquet`` and ``rounds.json`` through ``results`` and asks ``zoom`` for the pick;
imports neither Ray, torch nor matplotlib. ``report`` renders what this module returns.

- ``TrialCurve``: one trial of the table (its round, group, rate, status, config and per-epoch values),
  built from the stored rows by ``trial_curves``;
- ``Summary``: the pick (``zoom.choose`` over the table), the best trial run, the cost, the warnings,
  and the table itself, built by ``summarise``;
- ``best_by``: the best trial per decay law, per optimizer (any label of the config);
- ``train_val_gap``: the winner's train/validation gap and its verdict.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import results, zoom
from orchestrator.results import TrialStatus
from orchestrator.space import nice

GAP_OVERFIT = 0.5  # (val - train) / val above this: overfitting
GAP_LEAK = -0.1  # (val - train) / train below this: validation better than training by >10%
COLUMNS = ("train_loss", "val_loss", "val_error")  # the per-epoch values a TrialCurve keeps


def finite(v: Any) -> float:
    """``v`` as the zoom sees it: inf when missing or not finite (a diverged epoch)."""
    return v if v is not None and math.isfinite(v) else math.inf


@dataclass(frozen=True)
class TrialCurve:
    """One trial of a stored sweep: its rows of ``trials.parquet`` in one record.

    ``epochs`` and the value tuples run in parallel, one entry per epoch reported, in epoch order;
    values are as stored (None, NaN or inf included). A trial that errored before reporting has no
    epochs. ``values`` holds the sweep's metric."""

    trial: str
    round: int
    group: int
    lr: float  # the zoomed parameter's value
    status: TrialStatus | str  # a TrialStatus; any other string as stored
    config: dict[str, Any]
    error: str | None
    epochs: tuple[int, ...]
    values: tuple[float | None, ...]
    train_loss: tuple[float | None, ...]
    val_loss: tuple[float | None, ...]
    val_error: tuple[float | None, ...]

    def column(self, name: str) -> tuple[float | None, ...]:
        """The per-epoch values of ``name`` (one of ``COLUMNS``)."""
        if name not in COLUMNS:
            raise ValueError(f"name={name!r}: expected one of {COLUMNS}")
        return getattr(self, name)

    def at(self, epoch: int, name: str) -> float | None:
        """The stored value of ``name`` at ``epoch``; None when the trial did not report that epoch."""
        return self.column(name)[self.epochs.index(epoch)] if epoch in self.epochs else None

    def final(self, name: str) -> float | None:
        """The stored value of ``name`` at the trial's last epoch; None when it reported none."""
        column = self.column(name)
        return column[-1] if column else None

    @property
    def best(self) -> float:
        """The lowest metric value the trial reached at any epoch; inf when none is finite."""
        return min((finite(v) for v in self.values), default=math.inf)

    @property
    def law(self) -> str:
        return law_of(self.config)

    @property
    def optimizer(self) -> str:
        return optimizer_of(self.config)

    def observation(self) -> zoom.Observation:
        """The trial as the zoom sees it (ended; x = 0 for a rate that is not positive)."""
        x = math.log10(self.lr) if self.lr and self.lr > 0 else 0.0
        return zoom.Observation.of(self.group, x, self.round, self.values, True)

    def score_at(self, epoch: int) -> float:
        """The trial's score at ``epoch`` as the zoom compares it (``zoom.score``: the metric averaged
        over the last few epochs up to ``epoch``); inf when diverged or not reached."""
        o = self.observation()
        if epoch < 1 or not o.reached(epoch):
            return math.inf
        return zoom.score(o, epoch)


def law_of(config: dict[str, Any]) -> str:
    """The decay law a trial ran with: ``schedule`` ('constant' if absent), '+ warmup N' when it has one."""
    law = str(config.get("schedule") or "constant")
    warmup = config.get("warmup") or 0
    return f"{law} + warmup {warmup}" if warmup else law


def optimizer_of(config: dict[str, Any]) -> str:
    return str(config.get("optimizer") or "sgd")


def _status(text: Any) -> TrialStatus | str:
    try:
        return TrialStatus(text)
    except ValueError:
        return text


def _config(text: str | None) -> dict[str, Any]:
    try:
        config = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def trial_curves(rows: Iterable[dict[str, Any]], metric: str) -> tuple[TrialCurve, ...]:
    """The trial table: one ``TrialCurve`` per trial id, in the order the ids first appear in ``rows``
    (rows as ``results.read_trials`` returns them). A trial's round, group, rate and config are
    those of its first row in epoch order, its status and error those of its last."""
    if metric not in COLUMNS:
        raise ValueError(f"metric={metric!r}: expected one of {COLUMNS}")
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_trial.setdefault(r["trial_id"], []).append(r)
    table = []
    for tid, rs in by_trial.items():
        rs = sorted(rs, key=lambda r: r["epoch"] or 0)  # stable: a row with no epoch stays first
        ep = [r for r in rs if r["epoch"] is not None]
        first, last = rs[0], rs[-1]
        columns = {name: tuple(r.get(name) for r in ep) for name in COLUMNS}
        table.append(TrialCurve(
            trial=tid, round=first["round"], group=first["group"], lr=first["lr"], status=_status(last["status"]),
            config=_config(first.get("config")), error=last.get("error"), epochs=tuple(r["epoch"] for r in ep),
            values=columns[metric], **columns))
    return tuple(table)


def ordered(table: Iterable[TrialCurve]) -> list[TrialCurve]:
    """The trials in the order the report lists them: by round, group, rate, id."""
    return sorted(table, key=lambda c: (c.round, c.group, c.lr, c.trial))


def observations(table: Iterable[TrialCurve]) -> list[zoom.Observation]:
    """The trials the zoom's final pick compares: those that reported an epoch, at a positive rate."""
    return [c.observation() for c in table if c.epochs and c.lr and c.lr > 0]


@dataclass
class Summary:
    """A stored sweep, analysed: the pick, the best trial actually run, the cost, and the trial table."""

    folder: Path
    chosen: dict[str, Any]
    lr: float
    value: float
    epoch: int
    metric: str
    epochs: int
    fte: float
    trials: int
    rounds: list[dict[str, Any]]
    stop_reason: str | None
    best_trial: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the pick was made, where it is not the plain fit
    where: str = ""  # where the results are stored when that is not ``folder`` (a URI; ``folder`` its local copy)
    interpolated: bool = False  # the chosen rate is a fit between trials: no trial ran at it
    group: int = 0  # the chosen group
    param: str = "lr"
    max_epochs: int = 1  # epochs of one full training run (the FTE's unit)
    seconds: float = 0.0  # training time over every epoch of every trial
    meta: dict[str, Any] = field(default_factory=dict, repr=False)  # rounds.json as stored ({} when absent)
    table: tuple[TrialCurve, ...] = field(default=(), repr=False)

    def line(self) -> str:
        """One line: the chosen rate and the best score measured; when the rate is a fit between trials,
        the score is labelled as the best trial's (at its own rate), never as the chosen rate's."""
        score = f"{self.metric}={self.value:.4f} (mean of epochs {max(1, self.epoch - 2)}-{self.epoch})"
        if self.interpolated:
            score = (f"(fitted between trials, not trained; best trial: lr={self.best_trial['lr']:.3g} "
                     f"{score})")
        return (f"chosen lr={self.lr:.3g}  {score}  "
                f"cost={self.epochs} epochs ({self.fte:.1f} FTE, {self.trials} trials, {len(self.rounds)} rounds)  "
                f"results: {self.where or self.folder}")


def summarise(folder: str | Path) -> Summary:
    """Read a sweep folder and analyse it. Raises ``results.ResultsError`` (one line) when its files are
    missing or damaged, ``results.NoMetricError`` when no trial reported the metric."""
    folder = Path(folder)
    rows = results.read_trials(folder)
    meta = results.read_json(folder / results.ROUNDS) or {}
    return analyse(folder, rows, meta)


def _max_epochs(table: tuple[TrialCurve, ...], meta: dict[str, Any]) -> int:
    if meta.get("max_epochs"):
        return int(meta["max_epochs"])
    for c in table:
        if c.config.get("max_epochs"):
            return int(c.config["max_epochs"])
    return max((max(c.epochs, default=0) for c in table), default=0) or 1


def analyse(folder: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Summary:
    """The ``Summary`` of a sweep from its rows (``results.read_trials``) and ``rounds.json`` (``meta``)."""
    metric = meta.get("metric", "val_loss")
    param = meta.get("param", "lr")
    table = trial_curves(rows, metric)
    max_epochs = _max_epochs(table, meta)
    obs = observations(table)
    if not obs:
        raise results.NoMetricError(_no_metric(folder, table, meta))
    # sweeps written before the cliff guard existed keep the pick they made
    margin = meta.get("cliff_margin")
    pick = zoom.choose(obs, margin=margin)
    group, x, epoch = pick.group, pick.x, pick.epoch
    lr = nice(10**x)
    notes = []
    if margin is not None:
        free = zoom.choose(obs, margin=None).x
        if free > x + 1e-9:
            notes.append(f"kept {margin:g} decade(s) below {param} {nice(10 ** (x + margin)):.4g}, the first rate "
                         f"above the best that did {zoom.CLIFF_RATIO:g}x worse or diverged (the fit alone gave "
                         f"{nice(10**free):.4g}); next to that cliff one seed's result is a coin toss "
                         f"(zoom.cliff_margin)")
    # the best trial actually run, in the chosen group, at the comparison epoch
    candidates = [c for c in table if c.group == group and len(c.epochs) >= epoch]
    best = min(candidates, key=lambda c: (c.score_at(epoch), c.trial))
    chosen = {k: v for k, v in best.config.items()
              if k not in ("round", "group", "seed_offset") and not k.startswith("_")}
    chosen[param] = lr
    best_trial = {"trial_id": best.trial, param: best.lr, "epoch": epoch, "score": best.score_at(epoch),
                  metric: best.at(epoch, metric), "val_loss": best.at(epoch, "val_loss"),
                  "train_loss": best.at(epoch, "train_loss"), "val_error": best.at(epoch, "val_error"),
                  "status": str(best.status)}
    epochs = sum(len(c.epochs) for c in table)
    interpolated = not any(abs(c.lr - lr) <= 1e-9 * lr for c in table if c.group == group)
    s = Summary(folder, chosen, lr, pick.value, epoch, metric, epochs, epochs / max_epochs, len(table),
                meta.get("rounds", []), meta.get("stop_reason"), best_trial, notes=notes, interpolated=interpolated,
                group=group, param=param, max_epochs=max_epochs,
                seconds=sum(r.get("epoch_seconds") or 0.0 for r in rows), meta=meta, table=table)
    gap = train_val_gap(s)
    if gap is not None and gap[1] != "normal":
        s.warnings.append(f"train/validation gap of the winner {gap[0]:+.4f}: {gap[1]}")
    return s


def _no_metric(folder: Path, table: tuple[TrialCurve, ...], meta: dict[str, Any]) -> str:
    """One line for a folder where no trial reported a metric: why the search stopped (rounds.json) and
    the first error recorded, so that a workload that crashes at every rate is named, not waited for."""
    message = f"{folder}: no trial reported a metric"
    if meta.get("stop_reason"):
        message += f" (the search stopped: {meta['stop_reason']})"
    errored = [c for c in ordered(table) if c.error]
    if errored:
        first = errored[0]
        error = " ".join(str(first.error).split())[:300]
        message += (f"; {len(errored)} of {len(table)} trials errored, first `{first.trial}` at lr "
                    f"{first.lr:.4g}: {error}")
    return message


def train_val_gap(s: Summary) -> tuple[float, str] | None:
    """(validation - training loss of the best trial at the chosen epoch, verdict), or None if unknown.
    Training loss is the mean over the epoch as it trained, so a small negative gap is normal."""
    val, train = s.best_trial.get("val_loss"), s.best_trial.get("train_loss")
    if val is None or train is None or not (math.isfinite(val) and math.isfinite(train)):
        return None
    gap = val - train
    if gap > GAP_OVERFIT * max(abs(val), 1e-12):
        return gap, (f"large: overfitting, validation loss {val / max(train, 1e-12):.1f}x the training loss; "
                     f"try weight decay, dropout or fewer epochs")
    if gap < GAP_LEAK * max(abs(train), 1e-12):
        return gap, "negative: validation loss well below training loss; check for a train/validation leak"
    return gap, "normal"


@dataclass(frozen=True)
class Best:
    """The best trial among those sharing one ``key`` (``best_by``)."""

    key: str
    trials: int
    trial_id: str
    lr: float
    value: float
    epoch: int


def best_by(table: Iterable[TrialCurve], label: Callable[[dict[str, Any]], str]) -> list[Best]:
    """For each value of ``label(config)``: the trial with the lowest score among those trials, compared
    the way the zoom compares (``zoom.comparison_epoch``: trials stopped early are not compared as if they
    had finished; ``zoom.score``). Sorted best first."""
    subsets: dict[str, list[TrialCurve]] = {}
    for c in table:
        subsets.setdefault(label(c.config), []).append(c)
    out = []
    for key, members in subsets.items():
        obs = [c.observation() for c in members if c.epochs]
        epoch = zoom.comparison_epoch(obs) if obs else 0
        if epoch < 1:
            out.append(Best(key, len(members), members[0].trial, members[0].lr, math.inf, 0))
            continue
        c = min(members, key=lambda c: (c.score_at(epoch), c.trial))
        out.append(Best(key, len(members), c.trial, c.lr, c.score_at(epoch), epoch))
    return sorted(out, key=lambda b: (b.value, b.key))


@dataclass(frozen=True)
class RoundStat:
    """What one round of ``rounds.json`` cost and reached, from the trial table."""

    index: int
    trials: int  # trials in the table that belong to the round
    epochs: int  # epochs they trained
    best: float  # the lowest metric value any of them reached at any epoch (inf: none)


def round_stats(s: Summary) -> list[RoundStat]:
    """One ``RoundStat`` per round of ``s.rounds``, in that order."""
    out = []
    for r in s.rounds:
        members = [c for c in s.table if c.round == r["index"]]
        out.append(RoundStat(r["index"], len(members), sum(len(c.epochs) for c in members),
                             min((c.best for c in members), default=math.inf)))
    return out
