"""What the sweep's watchers know and say, with no Ray in it: ``Tally`` (the trials, their rounds, epochs
and outcomes, the best so far: lowest, or highest for a sweep with ``mode: max``, ``results.Goal``), its
one-line status, trial lines and table of rounds. The Tune callbacks in ``board.py`` feed a ``Tally`` from
Tune's events; what TensorBoard calls things (``Searched``, run names, tags, HParams) is ``tbnames``.

A ``Tally`` is plain data: ``asdict`` / ``Tally.from_state`` round trip (Tune's callback state on resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator import zoom
from orchestrator.results import Goal, Mode, TrialStatus
from orchestrator.tbnames import Searched, number  # noqa: F401  (Searched: the name older tuner.pkl files hold)


@dataclass
class TrialInfo:
    trial_id: str
    round: int
    lr: float
    max_epochs: int
    epochs: int = 0
    best: float = math.inf  # best metric value this trial reached (inf: none yet, whatever the mode)
    last: float = math.nan
    status: str = "running"  # pending | running | completed | stopped | diverged | errored
    data: float = 1.0  # the fraction of the training data it trains on (``data_fraction``)


@dataclass
class Tally:
    """What the callbacks know of the sweep so far. Plain data: ``asdict`` / ``from_state`` round trip.
    ``mode`` and ``target`` (``goal``) say which way the metric is better; ``best``: inf while none."""

    metric: str = "val_loss"
    mode: str = "min"
    target: float | None = None
    trials: dict[str, TrialInfo] = field(default_factory=dict)
    epochs: int = 0  # distinct trial-epochs reported (a replayed epoch counts once, as in the results)
    seen: float = 0.0  # those epochs weighted by the trial's data fraction: the FTE's epochs of cost
    best: float = math.inf
    best_trial: str | None = None
    best_epoch: int = 0
    best_data: float = 1.0  # the data fraction the best trial trained on: a trial on less never takes the best over
    elapsed: float = 0.0  # seconds of earlier sessions (before a resume)

    @property
    def goal(self) -> Goal:
        return Goal(Mode(self.mode), self.target)

    def better(self, value: float, than: float) -> bool:
        """``value`` is a finite metric value better than ``than`` (any value is better than a non-finite one)."""
        return math.isfinite(value) and (not math.isfinite(than) or self.goal.loss(value) < self.goal.loss(than))

    @property
    def best_word(self) -> str:
        """'lowest' (``mode`` min) or 'highest' (max)."""
        return "highest" if self.goal.mode is Mode.MAX else "lowest"

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tally:
        state = dict(state)
        state["trials"] = {k: TrialInfo(**v) for k, v in state.get("trials", {}).items()}
        state.setdefault("seen", sum(t.epochs * t.data for t in state["trials"].values()))  # a state saved before it
        return cls(**state)

    # events
    def add(self, trial_id: str, config: dict[str, Any]) -> TrialInfo:
        """Know of a trial (created by the searcher, maybe still waiting for resources)."""
        t = self.trials.get(trial_id)
        if t is None:
            t = self.trials[trial_id] = TrialInfo(
                trial_id,
                int(config.get("round", 0) or 0),
                number(config.get("lr")),
                int(config.get("max_epochs", 0) or 0),
                status="pending",
                data=zoom.data_of(config),
            )
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
        value = number(result.get(self.metric))
        t.last = value
        if self.better(value, t.best):
            t.best = value
        if self._takes_best(value, t.data):
            self.best, self.best_trial, self.best_epoch, self.best_data = value, trial_id, epoch, t.data
        if epoch <= t.epochs:
            return False
        self.epochs += epoch - t.epochs
        self.seen += (epoch - t.epochs) * t.data
        t.epochs = epoch
        return True

    def _takes_best(self, value: float, data: float) -> bool:
        """A finite ``value`` of a trial on ``data`` of the training data is the best so far: better than the
        best on the same data, or on more data than the best's (a score on a fraction, ``zoom.coarse_data``,
        is not compared with one on all of it: ``zoom.same_data``)."""
        if not math.isfinite(value):
            return False
        if not math.isfinite(self.best) or data > self.best_data:
            return True
        return data == self.best_data and self.better(value, self.best)

    def end(self, trial_id: str, last_result: dict[str, Any] | None, errored: bool = False) -> TrialInfo | None:
        t = self.trials.get(trial_id)
        if t is None:
            return None
        last = last_result or {}
        diverged = bool(last.get("diverged") or (t.epochs and not math.isfinite(t.last)))
        t.status = TrialStatus.ended(diverged=diverged, errored=errored, epochs=t.epochs, max_epochs=t.max_epochs)
        return t

    def know(self, trials) -> None:
        """Register the trials Tune has created (the ones still waiting for resources included); each
        needs ``trial_id`` and ``config``."""
        for tr in trials or ():
            if tr.trial_id not in self.trials:
                self.add(tr.trial_id, tr.config)

    # views
    @property
    def max_epochs(self) -> int:
        return max((t.max_epochs for t in self.trials.values()), default=0)

    @property
    def fte(self) -> float:
        """Full-training equivalents: epochs weighted by the data fraction they trained on, / max_epochs."""
        return self.seen / self.max_epochs if self.max_epochs else math.nan

    @property
    def current_round(self) -> int:
        """The latest round a trial of which has started."""
        return max((t.round for t in self.trials.values() if t.status != "pending"), default=0)

    def count(self, *statuses: str, round_index: int | None = None) -> int:
        return sum(
            1 for t in self.trials.values() if t.status in statuses and (round_index is None or t.round == round_index)
        )

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
        parts = [
            f"[sweep {_clock(elapsed)}] round {k} {where}",
            f"trials {self.count('running')} running{waiting}, {self.ended()} ended "
            f"({self.count('completed')} completed, "
            f"{self.count('stopped')} stopped early, {self.count('diverged')} diverged, "
            f"{self.count('errored')} errored)",
        ]
        if self.best_trial:
            parts.append(
                f"best {self.metric} {self.best:.4f} (lr {self.best_lr():.3g}, trial {self.best_trial}, "
                f"epoch {self.best_epoch})"
            )
        else:
            parts.append(f"best {self.metric} n/a")
        parts.append(f"{self.epochs} epochs" + (f" = {self.fte:.1f} FTE" if math.isfinite(self.fte) else ""))
        return " | ".join(parts)

    def trial_line(self, t: TrialInfo, elapsed: float) -> str:
        verb = {"completed": "completed", "stopped": "stopped early", "diverged": "diverged", "errored": "errored"}.get(
            t.status, t.status
        )
        best = f"{t.best:.4f}" if math.isfinite(t.best) else "n/a"
        return (
            f"[sweep {_clock(elapsed)}] trial {t.trial_id} (round {t.round}, lr {t.lr:.3g}) {verb} "
            f"after {t.epochs} epochs: best {self.metric} {best}"
        )

    def rounds_markdown(self) -> str:
        """The rounds as a Markdown table: the learning rates tried (lowest..highest of the round's trials),
        trial outcomes, the best metric value any of its trials reached at any epoch (lowest, or highest for
        ``mode`` max), the epochs spent."""
        m = self.metric
        lines = [
            f"| round | lr tried (lowest..highest) | trials | completed | stopped early | diverged | errored "
            f"| {self.best_word} {m} at any epoch | epochs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k in sorted({i.round for i in self.trials.values()}):
            members = [i for i in self.trials.values() if i.round == k]
            low, high = self.bracket(k)
            best = math.inf
            for i in members:
                best = i.best if self.better(i.best, best) else best
            lines.append(
                f"| {k} | {low:.3g}..{high:.3g} | {len(members)} | {self.count('completed', round_index=k)} | "
                f"{self.count('stopped', round_index=k)} | {self.count('diverged', round_index=k)} | "
                f"{self.count('errored', round_index=k)} | {_fmt4(best)} | {sum(i.epochs for i in members)} |"
            )
        lines += [
            "",
            f"{self.epochs} epochs spent"
            + (f" ({self.fte:.2f} FTE)" if math.isfinite(self.fte) else "")
            + (
                f"; {self.best_word} {m} at any epoch {self.best:.4f} at lr {self.best_lr():.3g} "
                f"(trial {self.best_trial}, epoch {self.best_epoch})"
                if self.best_trial
                else ""
            ),
        ]
        return "\n".join(lines)


def _fmt4(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"


def _clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
