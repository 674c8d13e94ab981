"""What a stored sweep says, worked out once: a typed trial table and the summary of the pick.

Pure: reads ``trials.parquet`` and ``rounds.json`` through ``results`` and asks ``zoom`` for the pick;
imports neither Ray, torch nor matplotlib. ``report`` renders what this module returns.

- ``TrialCurve``: one trial of the table (its round, group, rate, status, config and per-epoch values),
  built from the stored rows by ``trial_curves``;
- ``Summary``: the pick (``zoom.choose`` over the table), the chosen rate's own score (``Score``: the
  trial at that rate, or interpolated between its neighbours), the band of rates the sweep cannot tell
  apart from the best (``Band``), the best trial run, the cost, the warnings, and the table itself, built
  by ``summarise``;
- statistics have one name each (``best_label``, ``mean_label``, ``LAST``): a trial's best value at any
  epoch, its mean over the epochs the zoom compares (``zoom.SMOOTH_EPOCHS`` up to the comparison epoch),
  its value at the last epoch;
- ``best_by``: the best trial per decay law, per optimizer (any label of the config);
- ``train_val_gap``: the winner's train/validation gap and its verdict;
- the cost in real units (``cost.Cost``, from ``sweep.yaml``'s ``resources:`` and ``cost:``) and per round
  what it cost and the pick and band had the sweep stopped after it (``cost.RoundPick``, the pick recomputed
  by ``analyse`` from the trials of that round and the earlier ones), and the closing ``cost.advice``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orchestrator import cost as costs, results, zoom
from orchestrator.results import Goal, Mode, TrialStatus
from orchestrator.space import nice

GAP_OVERFIT = 0.5  # (val - train) / val above this: overfitting
GAP_LEAK = -0.1  # (val - train) / train below this: validation better than training by >10%
COLUMNS = ("train_loss", "val_loss", "val_error")  # the per-epoch values a TrialCurve keeps
NOISE_REACH = 1.0  # decades around the best trial whose scores measure the seed noise (``band``)
BAND_SIGMAS = 2.0  # a rate whose score is within this many noise estimates of the best is not told apart
LAST = "at the last epoch"


def best_label(mode: Mode | str) -> str:
    """The name of a trial's best value at any epoch: 'lowest at any epoch' (min) or 'highest ...' (max)."""
    return f"{'lowest' if Mode(mode) is Mode.MIN else 'highest'} at any epoch"


def mean_label(epoch: int) -> str:
    """The name of the score the zoom compares at ``epoch``: 'mean of epochs 25-27' ('mean of epoch 1')."""
    first = max(1, epoch - zoom.SMOOTH_EPOCHS + 1)
    return f"mean of epoch {epoch}" if first >= epoch else f"mean of epochs {first}-{epoch}"


def score_label(metric: str, epoch: int) -> str:
    """'val_loss, mean of epochs 25-27': the score the zoom compares at ``epoch``."""
    return f"{metric}, {mean_label(epoch)}"


def group_label(meta: dict[str, Any], group: int) -> str:
    """Group ``group`` in words from rounds.json (``meta``): 'optimizer=adam, schedule=cosine', else 'group 1'."""
    groups = meta.get("groups") or []
    if 0 <= group < len(groups) and groups[group]:
        return ", ".join(f"{k}={v}" for k, v in sorted(groups[group].items()))
    return f"group {group}"


def finite(v: Any) -> float:
    """``v`` as the zoom sees it: inf when missing or not finite (a diverged epoch)."""
    return v if v is not None and math.isfinite(v) else math.inf


@dataclass(frozen=True)
class TrialCurve:
    """One trial of a stored sweep: its rows of ``trials.parquet`` in one record.

    ``epochs`` and the value tuples run in parallel, one entry per epoch reported, in epoch order;
    values are as stored (None, NaN or inf included). A trial that errored before reporting has no
    epochs. ``values`` holds the sweep's metric as reported; ``goal`` says which way it is better."""

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
    goal: Goal = field(default_factory=Goal)

    @property
    def mode(self) -> Mode:
        return self.goal.mode

    def column(self, name: str) -> tuple[float | None, ...]:
        """The per-epoch values of ``name`` (one of ``COLUMNS``)."""
        if name not in COLUMNS:
            raise ValueError(f"name={name!r}: expected one of {COLUMNS}")
        return getattr(self, name)

    def at(self, epoch: int, name: str) -> float | None:
        """The stored value of ``name`` at ``epoch``; None when the trial did not report that epoch."""
        return self.column(name)[self.epochs.index(epoch)] if epoch in self.epochs else None

    def value_at(self, epoch: int) -> float | None:
        """The stored value of the sweep's metric at ``epoch``; None when the trial did not report that epoch."""
        return self.values[self.epochs.index(epoch)] if epoch in self.epochs else None

    @property
    def last(self) -> float | None:
        """The stored value of the sweep's metric at the trial's last epoch (``LAST``); None when none."""
        return self.values[-1] if self.values else None

    def final(self, name: str) -> float | None:
        """The stored value of ``name`` at the trial's last epoch; None when it reported none."""
        column = self.column(name)
        return column[-1] if column else None

    @property
    def best(self) -> float:
        """The best metric value the trial reached at any epoch (``best_label``: lowest, or highest for
        ``mode`` max); inf (-inf for max) when none is finite."""
        return self.goal.metric(
            min((finite(self.goal.loss(v)) for v in self.values if v is not None), default=math.inf)
        )

    def mean_at(self, epoch: int) -> float:
        """``score_at`` in the metric's units (``mean_label``): -inf for a maximised metric that diverged."""
        return self.goal.metric(self.score_at(epoch))

    @property
    def law(self) -> str:
        return law_of(self.config)

    @property
    def optimizer(self) -> str:
        return optimizer_of(self.config)

    def observation(self) -> zoom.Observation:
        """The trial as the zoom sees it (ended; x = 0 for a rate that is not positive)."""
        x = math.log10(self.lr) if self.lr and self.lr > 0 else 0.0
        return zoom.Observation.of(
            self.group, x, self.round, [None if v is None else self.goal.loss(v) for v in self.values], True
        )

    def score_at(self, epoch: int) -> float:
        """The trial's score at ``epoch`` as the zoom compares it (``zoom.score`` of the minimised metric,
        ``Goal.loss``: averaged over the last few epochs up to ``epoch``); inf when diverged or not reached."""
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


def trial_curves(
    rows: Iterable[dict[str, Any]], metric: str, goal: Goal | Mode | str = Mode.MIN
) -> tuple[TrialCurve, ...]:
    """The trial table: one ``TrialCurve`` per trial id, in the order the ids first appear in ``rows``
    (rows as ``results.read_trials`` returns them). A trial's round, group, rate and config are
    those of its first row in epoch order, its status and error those of its last. The metric's values
    come from the ``metric`` column, or for files written before it from the column named ``metric``."""
    goal = goal if isinstance(goal, Goal) else Goal(Mode(goal))
    rows = list(rows)
    stored = any(r.get("metric") is not None for r in rows)
    if not stored and metric not in COLUMNS:
        raise ValueError(f"metric={metric!r}: expected one of {COLUMNS} or rows with a 'metric' column")
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_trial.setdefault(r["trial_id"], []).append(r)
    table = []
    for tid, rs in by_trial.items():
        rs = sorted(rs, key=lambda r: r["epoch"] or 0)  # stable: a row with no epoch stays first
        ep = [r for r in rs if r["epoch"] is not None]
        first, last = rs[0], rs[-1]
        columns = {name: tuple(r.get(name) for r in ep) for name in COLUMNS}
        table.append(
            TrialCurve(
                trial=tid,
                round=first["round"],
                group=first["group"],
                lr=first["lr"],
                status=_status(last["status"]),
                config=_config(first.get("config")),
                error=last.get("error"),
                epochs=tuple(r["epoch"] for r in ep),
                values=tuple(r.get("metric") for r in ep) if stored else columns[metric],
                **columns,
                goal=goal,
            )
        )
    return tuple(table)


def ordered(table: Iterable[TrialCurve]) -> list[TrialCurve]:
    """The trials in the order the report lists them: by round, group, rate, id."""
    return sorted(table, key=lambda c: (c.round, c.group, c.lr, c.trial))


def observations(table: Iterable[TrialCurve]) -> list[zoom.Observation]:
    """The trials the zoom's final pick compares: those that reported an epoch, at a positive rate."""
    return [c.observation() for c in table if c.epochs and c.lr and c.lr > 0]


@dataclass(frozen=True)
class Score:
    """The chosen rate's own score, in the metric's units, at the comparison epoch (``mean_label``): the
    trial that ran at that rate (``trials`` holds its id), or, when no trial ran there, interpolated in
    log10(rate) between the two trials that flank it (``interpolated``; ``trials`` holds both ids)."""

    value: float
    interpolated: bool
    trials: tuple[str, ...]

    def label(self, lr: Callable[[str], float]) -> str:
        """Where the value comes from, in words; ``lr`` gives a trial id's rate."""
        if not self.interpolated:
            return "the trial at this rate"
        rates = " and ".join(f"{lr(t):.4g}" for t in self.trials)
        return f"interpolated between the trials at {rates}, not trained"


@dataclass(frozen=True)
class Band:
    """The rates the sweep cannot tell apart from its best trial, given the seed noise it measured.

    ``noise``: the standard deviation of one trial's score around a parabola in log10(rate) through the
    trials within ``NOISE_REACH`` decades of the best and not ``zoom.CLIFF_RATIO`` times worse (``seed_noise``),
    in the metric's units; None when fewer than 4 such trials. ``threshold``: the best score plus
    ``BAND_SIGMAS`` noise estimates (minus, for a maximised metric). ``low``/``high``: the lowest and the
    highest rate of the trials next to the best (no worse trial between) within the threshold, widened to
    hold the chosen rate."""

    low: float
    high: float
    noise: float | None
    threshold: float | None
    trials: int  # trials inside the band

    def stored(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "noise": self.noise,
            "threshold": self.threshold,
            "trials": self.trials,
            "sigmas": BAND_SIGMAS,
        }

    def text(self, param: str = "lr") -> str:
        """One phrase: 'band lr 0.005..0.02 (noise 0.0061)'."""
        noise = f"noise {self.noise:.4f}" if self.noise is not None else "noise not measured: fewer than 4 trials"
        return f"band {param} {self.low:.4g}..{self.high:.4g} ({noise})"


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

    @property
    def mode(self) -> Mode:
        return self.goal.mode

    @property
    def statistic(self) -> str:
        return mean_label(self.epoch)

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
        """One line: the chosen rate next to its own score (``chosen_text``), the cost, where the results are."""
        return (
            f"chosen {self.chosen_text()}  "
            f"cost={self.epochs} epochs ({self.fte:.1f} FTE, {self.trials} trials, {len(self.rounds)} rounds)  "
            f"results: {self.where or self.folder}"
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


def own_score(members: list[TrialCurve], lr: float, epoch: int) -> Score | None:
    """The score (minimised, ``Goal.loss``) of rate ``lr`` among ``members`` (one group's trials) at
    ``epoch``: the trial at that rate when one reached the epoch, else the linear interpolation in log10(rate)
    between the nearest scored trials below and above it (the nearest one alone when ``lr`` lies outside
    them). None when no trial has a finite score there."""
    scored = sorted(
        (c for c in members if c.lr and c.lr > 0 and math.isfinite(c.score_at(epoch))), key=lambda c: (c.lr, c.trial)
    )
    if not scored:
        return None
    at = [c for c in scored if abs(c.lr - lr) <= 1e-9 * lr]
    if at:
        return Score(at[0].score_at(epoch), False, (at[0].trial,))
    below = [c for c in scored if c.lr < lr]
    above = [c for c in scored if c.lr > lr]
    if not below or not above:
        c = (below or above)[-1 if below else 0]
        return Score(c.score_at(epoch), True, (c.trial,))
    a, b = below[-1], above[0]
    t = (math.log10(lr) - math.log10(a.lr)) / (math.log10(b.lr) - math.log10(a.lr))
    return Score(a.score_at(epoch) + t * (b.score_at(epoch) - a.score_at(epoch)), True, (a.trial, b.trial))


def seed_noise(points: list[tuple[float, float]]) -> float:
    """The standard deviation of one trial's score around the least-squares parabola through ``points``
    (x, score; at least 4 distinct x; 3 parameters fitted): each point its own seed, so the scatter measures
    the seed noise, plus whatever of the valley's shape a parabola does not hold (an upper bound, then)."""
    xs, ys = np.array(points).T
    residuals = ys - np.polyval(np.polyfit(xs, ys, 2), xs)
    return math.sqrt(float(np.sum(residuals**2)) / (len(points) - 3))


def band(members: list[TrialCurve], lr: float, epoch: int) -> Band:
    """The ``Band`` of ``members`` (one group's trials) at ``epoch`` around the chosen rate ``lr``; its
    ``noise`` and ``threshold`` as the minimised score (``Goal.loss``) sees them."""
    scored = sorted(
        (math.log10(c.lr), c.score_at(epoch), c.lr)
        for c in members
        if c.lr and c.lr > 0 and c.observation().reached(epoch)
    )
    pts = [(x, y) for x, y, _ in scored]
    finite_pts = [p for p in pts if math.isfinite(p[1])]
    if not finite_pts:
        return Band(lr, lr, None, None, 0)
    bi = min(range(len(pts)), key=lambda i: pts[i][1])
    bx, by = pts[bi]
    valley = [
        (x, y) for x, y in finite_pts if abs(x - bx) <= NOISE_REACH + 1e-9 and not zoom.worse(y, by, zoom.CLIFF_RATIO)
    ]
    noise = threshold = None
    lo = hi = bi
    if len({round(x, 9) for x, _ in valley}) >= 4:
        noise = seed_noise(valley)
        threshold = by + BAND_SIGMAS * noise
        while lo > 0 and pts[lo - 1][1] <= threshold:
            lo -= 1
        while hi < len(pts) - 1 and pts[hi + 1][1] <= threshold:
            hi += 1
    return Band(min(scored[lo][2], lr), max(scored[hi][2], lr), noise, threshold, hi - lo + 1)


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
    candidates = [c for c in table if c.group == group and len(c.epochs) >= epoch]
    best = min(candidates, key=lambda c: (c.score_at(epoch), c.trial))
    chosen = {
        k: v for k, v in best.config.items() if k not in ("round", "group", "seed_offset") and not k.startswith("_")
    }
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
    members = [c for c in table if c.group == group]
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
        epochs / max_epochs,
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
        band=b,
    )
    gap = train_val_gap(s)
    if gap is not None and gap[1] != "normal":
        s.warnings.append(f"train/validation gap of the winner {gap[0]:+.4f}: {gap[1]}")
    _add_cost(s, rows, config or {}, per_round)
    return s


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
class Best:
    """The best trial among those sharing one ``key`` (``best_by``)."""

    key: str
    trials: int
    trial_id: str
    lr: float
    value: float
    epoch: int


def best_by(table: Iterable[TrialCurve], label: Callable[[dict[str, Any]], str]) -> list[Best]:
    """For each value of ``label(config)``: the trial with the best score among those trials (``value``:
    ``mean_label``, in the metric's units; inf when none reached an epoch), compared
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
            out.append(Best(key, len(members), members[0].trial, members[0].lr, members[0].goal.metric(math.inf), 0))
            continue
        c = min(members, key=lambda c: (c.score_at(epoch), c.trial))
        out.append(Best(key, len(members), c.trial, c.lr, c.mean_at(epoch), epoch))
    goal = next(iter(subsets.values()))[0].goal if subsets else Goal()
    return sorted(out, key=lambda b: (goal.loss(b.value), b.key))


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
