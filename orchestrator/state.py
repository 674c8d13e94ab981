"""The sweep's bookkeeping, with no Ray in it: which trial holds which point of which round, its metric
curve, the queue of points still to hand out, and the rows of results so far. ``SweepState`` plans rounds
through the pure rules in ``zoom.py``, hands out one config per trial (``next_config``), records results,
and after a driver crash agrees with the trials Tune restored (``reconcile``). ``searcher.ZoomSearcher``
forwards Tune's Searcher hooks to it; it is pickled whole for ``Tuner.restore``.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator import budget as budgets, results, zoom
from orchestrator.space import nice


@dataclass
class TrialRecord:
    trial_id: str
    group: int
    x: float
    round: int
    config: dict[str, Any]
    curve: list[float] = field(default_factory=list)
    done: bool = False
    errored: bool = False
    seconds: float = 0.0  # training seconds so far (Tune's time_total_s): what the GPU-hour budget counts


@dataclass(frozen=True)
class Suggestion:
    """The search's answer to a request for a trial: run ``config``; or no config: wait and ask again
    later, unless ``finished`` (the search is over)."""

    config: dict[str, Any] | None = None
    finished: bool = False


@dataclass
class SweepState:
    """Everything the search knows; pickled whole for ``Tuner.restore``."""

    rules: zoom.Rules
    param: str
    metric: str
    decision_epoch: int
    groups: list[dict[str, Any]]
    base: dict[str, Any]
    rounds: list[zoom.Round] = field(default_factory=list)
    queue: list[tuple[int, float]] = field(default_factory=list)
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    mode: str = "min"  # results.Mode of ``metric``: the curves hold ``results.Goal.loss`` of each value
    target: float | None = None  # the best value the metric can take (``results.Goal``), when it has one
    budget: budgets.Budget = budgets.NO_BUDGET  # wall-clock and GPU-hour limits (``check_budget``)
    gpus_per_trial: float = 0.0
    started: float | None = None  # ``clock()`` when round 0 was planned, or this driver restarted the sweep
    wall_before: float = 0.0  # wall-clock seconds earlier drivers ran the sweep (``restart_clock``)
    last_seen: float | None = None  # ``clock()`` at the last budget check
    budget_ended: bool = False
    clock: Callable[[], float] = time.time  # injected by tests; pickled by reference

    def observations(self) -> list[zoom.Observation]:
        """The trials as the zoom sees them, each with the data fraction its config trained on."""
        return [
            zoom.Observation.of(t.group, t.x, t.round, t.curve, t.done, data=zoom.data_of(t.config))
            for t in self.trials.values()
        ]

    def config_for(self, group: int, x: float, round_index: int) -> dict[str, Any]:
        """The trial config of one point. Round ``round_index`` trains on ``rules.data_for(round_index)`` of the
        training data (its ``data_fraction``, when below 1: the first ``coarse_rounds`` rounds with
        ``zoom.coarse_data``); the later rounds and a confirmation round (``zoom.Round.confirm``) on all of it."""
        # Each point its own seed: the zoom's fit over many nearby learning rates then averages seed
        # noise, as a multi-seed mean would. The seed derives from the point, not from the order trials
        # were handed out, so a resumed sweep trains every point exactly as an uninterrupted one.
        confirm = any(r.confirm for r in self.rounds if r.index == round_index)
        fraction = 1.0 if confirm else self.rules.data_for(round_index)
        return {
            **self.base,
            **self.groups[group],
            self.param: nice(10**x),
            "round": round_index,
            "group": group,
            "seed_offset": zlib.crc32(f"{group}:{x:.6f}".encode()) % 1_000_003,
            **({"data_fraction": fraction} if fraction < 1 else {}),
        }

    def plan(self) -> zoom.Round | zoom.Stop | None:
        """Start round 0, or the next round once the current one has reached the decision epoch."""
        if not self.rounds:
            return zoom.coarse_round(self.rules, len(self.groups))
        obs = self.observations()  # trials that have not reported yet included: they hold the round open
        current = self.rounds[-1].index
        if not zoom.round_ready(obs, current, self.decision_epoch):
            return None
        if not any(o.curve for o in obs if o.round == current):
            return zoom.Stop(f"no trial of round {current} reported a result (all errored)")
        return zoom.next_round(self.rules, self.rounds, obs)  # errored trials too: never re-suggested

    def next_config(self, trial_id: str) -> Suggestion:
        """A config for ``trial_id`` (its point is then taken off the queue), or wait, or finished."""
        self.check_budget()
        if not self.queue and self.stop_reason is None:
            plan = self.plan()
            if isinstance(plan, zoom.Stop):
                self.stop_reason = plan.reason
            elif isinstance(plan, zoom.Round):
                if not self.rounds:
                    self.started = self.clock()
                self.rounds.append(plan)
                self.queue = list(plan.points)
        if self.queue:
            group, x = self.queue.pop(0)
            round_index = self.rounds[-1].index
            config = self.config_for(group, x, round_index)
            self.trials[trial_id] = TrialRecord(trial_id, group, x, round_index, config)
            return Suggestion(config)
        return Suggestion(finished=self.stop_reason is not None)

    def spent(self) -> budgets.Spent:
        """Wall-clock seconds the sweep's drivers ran it (from round 0 on; a driver's absence between a stop
        and a resume or ``sweep extend`` not counted) and GPU-hours."""
        wall = self.wall_before + (self.clock() - self.started if self.started is not None else 0.0)
        return budgets.Spent(wall, budgets.gpu_hours([t.seconds for t in self.trials.values()], self.gpus_per_trial))

    def check_budget(self) -> bool:
        """End the search when a real-unit budget (``budget``) is spent: no new round, no more points of
        the current one (the queue is dropped), the stop reason names the budget. With ``OnBudget.STOP`` a
        budget that ends after the search ended for another reason is still recorded (its trials are cut:
        the reason reads "REASON; then BUDGET"). Returns whether running trials are to be stopped now."""
        self.last_seen = self.clock()
        if not self.budget_ended and self.rounds:
            reason = budgets.ended(self.budget, self.spent())
            if reason is not None and (self.stop_reason is None or self.budget.on_end is budgets.OnBudget.STOP):
                self.budget_ended = True
                self.queue = []
                self.stop_reason = reason if self.stop_reason is None else f"{self.stop_reason}; then {reason}"
        return self.budget_ended and self.budget.on_end is budgets.OnBudget.STOP

    def restart_clock(self) -> None:
        """A driver (re)starts a sweep that ran before: the wall clock goes on from what earlier drivers
        spent (up to their last budget check), not from when round 0 was planned."""
        if self.started is not None:
            last = self.last_seen if self.last_seen is not None else self.started
            self.wall_before += max(0.0, last - self.started)
            self.started = self.clock()

    def extend(self, grown: dict[str, Any]) -> None:
        """Raise the search's limits (a resume with a larger config, ``sweep extend``): ``zoom.Rules``
        fields by name, and ``budget`` (a ``budget.Budget``). A search that had ended goes on: its stop
        reason is cleared, so the next request plans again (a new round, or the same stop when the new
        limits allow none)."""
        fields = {k: v for k, v in grown.items() if k != "budget"}
        if fields:
            self.rules = replace(self.rules, **fields)
        if "budget" in grown:
            self.budget, self.budget_ended = grown["budget"], False
        if not self.budget_ended:
            self.stop_reason = None

    def record(self, trial_id: str, result: dict[str, Any] | None) -> None:
        """Add one epoch's result. A replayed epoch (a trial restored from a checkpoint replays epochs after
        it) replaces the old one; the result Tune re-sends as a trial ends (``done``), an epoch already
        recorded, is ignored: after a driver crash it is the last result Tune had saved, which can be older
        than the epochs this state was filled with from the trial's checkpoint."""
        t = self.trials.get(trial_id)
        if t is None or not result or "epoch" not in result:
            return
        epoch = int(result["epoch"])
        if result.get("done") and epoch <= len(t.curve):
            return  # Tune re-sending the last result it knew as the trial ends (maybe older than the curve)
        if epoch <= len(t.curve):
            del t.curve[epoch - 1 :]
            self.rows = [r for r in self.rows if not (r["trial_id"] == trial_id and r["epoch"] >= epoch)]
        t.seconds = float(result.get("time_total_s") or t.seconds)
        value = result.get(self.metric, math.nan)
        value = float(value) if value is not None else math.nan
        t.curve.append(
            results.Goal(results.Mode(self.mode), self.target).loss(value) if math.isfinite(value) else math.inf
        )
        self.rows.append(
            {
                "trial_id": trial_id,
                "round": t.round,
                "group": t.group,
                **{k: result[k] for k in results.EPOCH_KEYS if k in result},
                "metric": value,
            }
        )

    def reconcile(
        self,
        tune_trials: dict[str, dict[str, Any]],
        histories: dict[str, list[dict[str, Any]]] | None = None,
        finished: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, list[str]]:
        """Agree with the trials Tune restored (trial id -> config) after a driver crash.

        Tune saves its trial list and this state one after the other (and syncs them to storage in the
        background), so a crash can leave them a step apart either way:
        - a trial this state planned but Tune never kept is dropped, its point back at the front of the
          queue (else its round would wait for it forever): "requeued";
        - a trial Tune kept but this state never planned is adopted, its point taken off the queue (else
          it would train twice): "adopted";
        - a trial this state knows with fewer epochs than its checkpoint gets the missing ones from
          ``histories`` (trial id -> the results saved in its checkpoint), since Tune resumes it after
          them: "filled";
        - a trial Tune finished (``finished``; it will not run again) that this state still waits for is
          marked done: "completed".
        Returns those four lists of trial ids."""
        histories = histories or {}
        out: dict[str, list[str]] = {"requeued": [], "adopted": [], "filled": [], "completed": []}
        for tid in [tid for tid, t in self.trials.items() if not t.done and tid not in tune_trials]:
            t = self.trials.pop(tid)
            self.rows = [r for r in self.rows if r["trial_id"] != tid]
            self.queue.insert(0, (t.group, t.x))
            out["requeued"].append(tid)
        current = self.rounds[-1].index if self.rounds else None
        for tid, config in tune_trials.items():
            if current is None or tid in self.trials or config.get("round") != current:
                continue
            point = next(
                (
                    (g, x)
                    for g, x in self.queue
                    if g == config.get("group") and self.config_for(g, x, current) == config
                ),
                None,
            )
            if point is not None:
                self.queue.remove(point)
                self.trials[tid] = TrialRecord(tid, point[0], point[1], current, dict(config))
                out["adopted"].append(tid)
        for tid, history in histories.items():
            known = self.trials.get(tid)
            if known is None or known.done:
                continue
            missing = [r for r in history if int(r.get("epoch", 0)) > len(known.curve)]
            for result in sorted(missing, key=lambda r: int(r["epoch"])):
                self.record(tid, result)
            if missing and tid not in out["adopted"]:
                out["filled"].append(tid)
        for tid in finished:
            known = self.trials.get(tid)
            if known is not None and not known.done:
                known.done = True
                out["completed"].append(tid)
        return out

    def complete(self, trial_id: str, result: dict[str, Any] | None, errored: bool) -> None:
        t = self.trials.get(trial_id)
        if t is None:
            return
        if result and int(result.get("epoch", 0)) > len(t.curve):
            self.record(trial_id, result)  # the result on which the scheduler stopped the trial
        t.done = True
        t.errored = errored
