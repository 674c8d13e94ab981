"""The trial table of a stored sweep: one typed record per trial (``TrialCurve``), built once from the rows
of ``trials.parquet`` (``trial_curves``), and the names of its statistics.

Pure: imports neither Ray, torch nor matplotlib. ``analysis`` works out the pick over this table; the
renderers (``report``, ``plots``) list it.

- ``TrialCurve``: one trial (its round, group, rate, status, config and per-epoch values); its score at an
  epoch is the zoom's (``zoom.score``);
- ``ordered``: the order the report lists trials in; ``observations``: the trials as the zoom's final pick
  sees them; ``law_of``/``optimizer_of``: a trial's decay law and optimizer in words;
- statistics have one name each (``best_label``, ``mean_label``, ``LAST``): a trial's best value at any
  epoch, its mean over the epochs the zoom compares (``zoom.SMOOTH_EPOCHS`` up to the comparison epoch),
  its value at the last epoch; ``score_label`` and ``group_label`` name a score and a group;
- ``best_by``: the best trial per decay law, per optimizer (any label of the config).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator import zoom
from orchestrator.results import Goal, Mode, TrialStatus

COLUMNS = ("train_loss", "val_loss", "val_error")  # the per-epoch values a TrialCurve keeps
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
        """The trial as the zoom sees it (ended; x = 0 for a rate that is not positive; ``data``: the
        fraction of the training data its config trained on)."""
        x = math.log10(self.lr) if self.lr and self.lr > 0 else 0.0
        return zoom.Observation.of(
            self.group,
            x,
            self.round,
            [None if v is None else self.goal.loss(v) for v in self.values],
            True,
            zoom.data_of(self.config),
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
