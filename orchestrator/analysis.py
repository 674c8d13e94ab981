"""What a stored sweep says, worked out once: the summary of the pick over the typed trial table.

Pure: reads ``trials.parquet`` and ``rounds.json`` through ``results``, builds the trial table
(``curves.trial_curves``) and asks ``zoom`` for the pick; imports neither Ray, torch nor matplotlib.
``report`` and ``plots`` render what this module returns.

- ``Summary``: the pick (``zoom.choose`` over the table), the chosen rate's own score (``noise.Score``: the
  trial at that rate, or interpolated between its neighbours), the band of rates the sweep cannot tell
  apart from the best (``noise.Band``), the best trial run, the cost, the warnings, and the table itself
  (``curves.TrialCurve``), built by ``summarise``;
- ``round_stats``: what each round cost and reached;
- ``train_val_gap``: the winner's train/validation gap and its verdict;
- the cost in real units (``cost.Cost``, from ``sweep.yaml``'s ``resources:`` and ``cost:``) and per round
  what it cost and the pick and band had the sweep stopped after it (``cost.RoundPick``, the pick recomputed
  by ``analyse`` from the trials of that round and the earlier ones), and the closing ``cost.advice``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator import cost as costs, results, zoom
from orchestrator.curves import TrialCurve, finite, mean_label, observations, ordered, trial_curves
from orchestrator.noise import Band, Score, band, own_score
from orchestrator.results import Goal, Mode
from orchestrator.space import nice

GAP_OVERFIT = 0.5  # (val - train) / val above this: overfitting
GAP_LEAK = -0.1  # (val - train) / train below this: validation better than training by >10%


@dataclass
class Summary:
    """A stored sweep, analysed: the pick and its own score, the band, the best trial actually run, the
    cost, and the trial table. ``value`` is the best trial's score (``best_trial``), ``score`` the chosen
    rate's; both are ``mean_label(epoch)`` in the metric's units."""

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
    goal: Goal = field(default_factory=Goal)
    score: Score | None = None  # the chosen rate's own score
    band: Band | None = None
    cost: costs.Cost | None = None  # in real units, every trial
    round_picks: list[costs.RoundPick] = field(default_factory=list)  # per round: its cost, the pick after it
    advice: str | None = None  # the closing line: stop here, or one more round (``cost.advice``)
    warm: str | None = None  # 'warm-started from RUN (...)': ``warm.Prior.text``, from warm_start.json
    coarse_data: float = 1.0  # zoom.coarse_data: the fraction of the training data round 0 trained on
    picked_on: float = 1.0  # the data fraction of the trials the pick was made among (``zoom.same_data``)
    coarse_rounds: tuple[int, ...] = ()  # the rounds whose trials trained on ``coarse_data`` (with a fraction)
    # the round of the one full-data trial, when it is the only one (the confirmation round, ``zoom.Round.confirm``):
    # the pick is its rate, its score that trial's, and no band can be measured from one trial
    confirmed: int | None = None

    @property
    def mode(self) -> Mode:
        return self.goal.mode

    @property
    def statistic(self) -> str:
        return mean_label(self.epoch)

    def rounds_text(self) -> str:
        """'round 0', 'rounds 0-2' (or 'rounds 0, 2'): the rounds that trained on a fraction of the data."""
        r = sorted(self.coarse_rounds) or [0]
        if len(r) == 1:
            return f"round {r[0]}"
        if r == list(range(r[0], r[-1] + 1)):
            return f"rounds {r[0]}-{r[-1]}"
        return "rounds " + ", ".join(str(i) for i in r)

    def data_text(self) -> str | None:
        """'round 0 trained on 20% of the training data (zoom.coarse_data: 0.2); the pick is among the full-data
        trials' (or, when no full-data trial ran, '...; no trial trained on all of it: the pick was measured on 20% of
        the data'; or, when one full-data trial confirmed the pick, 'the rate was searched on 20% of the training
        data (zoom.coarse_data: 0.2, rounds 0-2); its score is one full-data trial at it (round 3)'); None when
        round 0 trained on all of it."""
        if self.coarse_data >= 1:
            return None
        if self.confirmed is not None:
            return (
                f"the rate was searched on {self.coarse_data:.0%} of the training data (zoom.coarse_data: "
                f"{self.coarse_data:g}, {self.rounds_text()}); its score is one full-data trial at it "
                f"(round {self.confirmed})"
            )
        where = (
            "the pick is among the full-data trials"
            if self.picked_on >= 1
            else f"no trial trained on all of it: the pick was measured on {self.picked_on:.0%} of the data"
        )
        return (
            f"{self.rounds_text()} trained on {self.coarse_data:.0%} of the training data (zoom.coarse_data: "
            f"{self.coarse_data:g}); {where}"
        )

    def rate_of(self, trial_id: str) -> float:
        return next(c.lr for c in self.table if c.trial == trial_id)

    def chosen_text(self) -> str:
        """The chosen rate, its own score and where that comes from, and the band: the one wording that
        best.json's fields, the final line, the report and ``sweep report`` share."""
        own = self.score or Score(self.value, False, (self.best_trial["trial_id"],))
        return (
            f"{self.param}={self.lr:.4g}  {self.metric}={own.value:.4f} ({self.statistic}, "
            f"{own.label(self.rate_of)})" + (f"  {self.band.text(self.param)}" if self.band else "")
        )

    def line(self) -> str:
        """One line: the chosen rate next to its own score (``chosen_text``), the cost (in real units:
        ``cost.Cost.brief``, and in epochs), the warm start, where the results are."""
        real = f"{self.cost.brief()}, " if self.cost else ""
        data = f", {self.rounds_text()} on {self.coarse_data:.0%} of the data" if self.coarse_data < 1 else ""
        data += f", the pick's score one full-data trial (round {self.confirmed})" if self.confirmed is not None else ""
        return (
            f"chosen {self.chosen_text()}  "
            f"cost: {real}{self.epochs} epochs ({self.fte:.1f} FTE{data}), {self.trials} trials, "
            f"{len(self.rounds)} rounds  "
            + (f"{self.warm}  " if self.warm else "")
            + f"results: {self.where or self.folder}"
        )


def summarise(folder: str | Path) -> Summary:
    """Read a sweep folder and analyse it. Raises ``results.ResultsError`` (one line) when its files are
    missing or damaged, ``results.NoMetricError`` when no trial reported the metric."""
    folder = Path(folder)
    rows = results.read_trials(folder)
    meta = results.read_json(folder / results.ROUNDS) or {}
    config, problem = read_config(folder)
    s = analyse(folder, rows, meta, config)
    if problem:
        s.warnings.append(problem)
    warm = results.read_json(folder / "warm_start.json") if (folder / "warm_start.json").is_file() else None
    s.warm = warm.get("text") or None if isinstance(warm, dict) else None
    return s


def read_config(folder: Path) -> tuple[dict[str, Any], str | None]:
    """``folder/sweep.yaml`` as a plain mapping (not validated: only ``resources:``, ``cost:`` and ``zoom:`` are
    read from it) and a warning when it cannot be read; ({}, None) when there is none or it holds no config."""
    path = folder / "sweep.yaml"
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, f"{path}: not read ({type(exc).__name__}); cost assumes 1 CPU and no GPU per trial"
    return (data if isinstance(data, dict) else {}), None


def _max_epochs(table: tuple[TrialCurve, ...], meta: dict[str, Any]) -> int:
    if meta.get("max_epochs"):
        return int(meta["max_epochs"])
    for c in table:
        if c.config.get("max_epochs"):
            return int(c.config["max_epochs"])
    return max((max(c.epochs, default=0) for c in table), default=0) or 1


def analyse(
    folder: Path,
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    config: dict[str, Any] | None = None,
    *,
    per_round: bool = True,
) -> Summary:
    """The ``Summary`` of a sweep from its rows (``results.read_trials``), ``rounds.json`` (``meta``) and
    its config as a plain mapping (``sweep.yaml``; None: 1 CPU, no GPU, no rates). ``per_round``: also the
    pick after each round (``cost.RoundPick``) and the closing advice."""
    metric = meta.get("metric", "val_loss")
    goal = Goal(Mode(meta.get("mode", "min")), meta.get("target"))
    param = meta.get("param", "lr")
    table = trial_curves(rows, metric, goal)
    max_epochs = _max_epochs(table, meta)
    obs = observations(table)
    if not obs:
        raise results.NoMetricError(_no_metric(folder, table, meta))
    # sweeps written before the cliff guard existed keep the pick they made
    margin = meta.get("cliff_margin")
    pick = zoom.choose(obs, margin=margin)
    group, x, epoch = pick.group, pick.x, pick.epoch
    picked_on = max(o.data for o in zoom.same_data(obs))  # the pick compares the trials on this much data
    coarse = _coarse_data(config or {})
    compared = [c for c in table if zoom.data_of(c.config) == picked_on]
    subset_rounds = tuple(sorted({c.round for c in table if zoom.data_of(c.config) < 1}))
    full = [c for c in table if zoom.data_of(c.config) >= 1]
    confirmed = full[0].round if coarse < 1 and subset_rounds and len(full) == 1 else None
    lr = nice(10**x)
    notes = []
    if margin is not None:
        free = zoom.choose(obs, margin=None).x
        if free > x + 1e-9:
            notes.append(
                f"kept {margin:g} decade(s) below {param} {nice(10 ** (x + margin)):.4g}, the first rate "
                f"above the best that did {zoom.CLIFF_RATIO:g}x worse or diverged (the fit alone gave "
                f"{nice(10**free):.4g}); next to that cliff one seed's result is a coin toss "
                f"(zoom.cliff_margin)"
            )
    # the best trial actually run, in the chosen group, at the comparison epoch
    candidates = [c for c in compared if c.group == group and len(c.epochs) >= epoch]
    best = min(candidates, key=lambda c: (c.score_at(epoch), c.trial))
    # keys the sweep set, not the user: with coarse_data, round 0's data_fraction is one of them
    internal = ("round", "group", "seed_offset") + (("data_fraction",) if coarse < 1 else ())
    chosen = {k: v for k, v in best.config.items() if k not in internal and not k.startswith("_")}
    chosen[param] = lr
    statistic = mean_label(epoch)
    best_trial = {
        "trial_id": best.trial,
        param: best.lr,
        "epoch": epoch,
        "statistic": statistic,
        "score": best.mean_at(epoch),
        metric: best.value_at(epoch),
        "val_loss": best.at(epoch, "val_loss"),
        "train_loss": best.at(epoch, "train_loss"),
        "val_error": best.at(epoch, "val_error"),
        "status": str(best.status),
    }
    epochs = sum(len(c.epochs) for c in table)
    seen = sum(len(c.epochs) * zoom.data_of(c.config) for c in table)  # epochs of cost: the data seen
    members = [c for c in compared if c.group == group]
    own = own_score(members, lr, epoch)
    score = own and Score(goal.metric(own.value), own.interpolated, own.trials)
    b = band(members, lr, epoch)
    b = Band(b.low, b.high, b.noise, None if b.threshold is None else goal.metric(b.threshold), b.trials)
    interpolated = not any(abs(c.lr - lr) <= 1e-9 * lr for c in members)
    s = Summary(
        folder,
        chosen,
        lr,
        best.mean_at(epoch),
        epoch,
        metric,
        epochs,
        seen / max_epochs,
        len(table),
        meta.get("rounds", []),
        meta.get("stop_reason"),
        best_trial,
        notes=notes,
        interpolated=interpolated,
        group=group,
        param=param,
        max_epochs=max_epochs,
        seconds=sum(r.get("epoch_seconds") or 0.0 for r in rows),
        meta=meta,
        table=table,
        goal=goal,
        score=score,
        band=None if confirmed is not None else b,  # one trial measures no band
        coarse_data=coarse,
        picked_on=picked_on,
        coarse_rounds=subset_rounds,
        confirmed=confirmed,
    )
    gap = train_val_gap(s)
    if gap is not None and gap[1] != "normal":
        s.warnings.append(f"train/validation gap of the winner {gap[0]:+.4f}: {gap[1]}")
    _add_cost(s, rows, config or {}, per_round)
    return s


def _coarse_data(config: dict[str, Any]) -> float:
    """``zoom.coarse_data`` of a config mapping (``sweep.yaml`` as loaded); 1 when absent or not a fraction."""
    z = config.get("zoom")
    return zoom.data_of({"data_fraction": z.get("coarse_data", 1.0)}) if isinstance(z, dict) else 1.0


def _add_cost(s: Summary, rows: list[dict[str, Any]], config: dict[str, Any], per_round: bool) -> None:
    """Set ``s.cost`` and, with ``per_round``, ``s.round_picks`` and ``s.advice``."""
    try:
        resources, rates = costs.resources_of(config), costs.rates_of(config)
    except ValueError as exc:
        s.warnings.append(f"sweep.yaml: {exc}; cost assumes 1 CPU and no GPU per trial")
        resources, rates = costs.Resources(), None
    s.cost = costs.cost_of(rows, resources, rates)
    if not per_round:
        return
    indices = sorted({r["index"] for r in s.rounds} | {c.round for c in s.table})
    for k in indices:
        upto = [r for r in rows if r["round"] <= k]
        meta = {**s.meta, "rounds": [r for r in s.rounds if r["index"] <= k]}
        try:
            after = analyse(s.folder, upto, meta, config, per_round=False)
        except results.NoMetricError:
            after = None
        own = costs.cost_of([r for r in rows if r["round"] == k], resources, rates)
        b = after.band if after else None
        s.round_picks.append(
            costs.RoundPick(
                k,
                own,
                after.lr if after else None,
                b.low if b else None,
                b.high if b else None,
                b is not None and b.noise is not None,
            )
        )
    z = config.get("zoom") or {}
    try:
        resolution, points = (
            float(z.get("resolution", zoom.Rules.resolution)),
            int(z.get("points_per_round", zoom.Rules.points_per_round)),
        )
    except (TypeError, ValueError):
        resolution, points = zoom.Rules.resolution, zoom.Rules.points_per_round
    if s.round_picks:
        s.advice = costs.advice(s.round_picks, resolution, points)


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
        message += (
            f"; {len(errored)} of {len(table)} trials errored, first `{first.trial}` at lr {first.lr:.4g}: {error}"
        )
    return message


def train_val_gap(s: Summary) -> tuple[float, str] | None:
    """(validation - training loss of the best trial at the chosen epoch, verdict), or None if unknown.
    Training loss is the mean over the epoch as it trained, so a small negative gap is normal."""
    val, train = s.best_trial.get("val_loss"), s.best_trial.get("train_loss")
    if val is None or train is None or not (math.isfinite(val) and math.isfinite(train)):
        return None
    gap = val - train
    if gap > GAP_OVERFIT * max(abs(val), 1e-12):
        return gap, (
            f"large: overfitting, validation loss {val / max(train, 1e-12):.1f}x the training loss; "
            f"try weight decay, dropout or fewer epochs"
        )
    if gap < GAP_LEAK * max(abs(train), 1e-12):
        return gap, "negative: validation loss well below training loss; check for a train/validation leak"
    return gap, "normal"


@dataclass(frozen=True)
class RoundStat:
    """What one round of ``rounds.json`` cost and reached, from the trial table."""

    index: int
    trials: int  # trials in the table that belong to the round
    epochs: int  # epochs they trained
    best: float  # the best metric value any of them reached at any epoch (``best_label``; inf / -inf: none)


def round_stats(s: Summary) -> list[RoundStat]:
    """One ``RoundStat`` per round of ``s.rounds``, in that order."""
    out = []
    for r in s.rounds:
        members = [c for c in s.table if c.round == r["index"]]
        best = min((finite(s.goal.loss(c.best)) for c in members), default=math.inf)
        out.append(RoundStat(r["index"], len(members), sum(len(c.epochs) for c in members), s.goal.metric(best)))
    return out
