"""Budgets in real units: a wall-clock and a GPU-hour limit. The rules on a SweepState with an injected
clock (no sleeping); one real sweep on a local Ray whose wall-clock budget ends it, trials stopped."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator import budget, config, resume, zoom
from orchestrator.budget import Budget, OnBudget, Spent
from orchestrator.state import SweepState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(b: Budget, clock: Clock, gpus: float = 0.0) -> SweepState:
    rules = zoom.Rules(low=-4, high=-1, spacing=1.0, max_epochs=3, max_rounds=5, points_per_round=2)
    return SweepState(
        rules=rules,
        param="lr",
        metric="val_loss",
        decision_epoch=1,
        groups=[{}],
        base={},
        budget=b,
        gpus_per_trial=gpus,
        clock=clock,
    )


def test_ended_names_the_budget_and_the_null_budget_never_ends():
    assert budget.ended(budget.NO_BUDGET, Spent(1e12, 1e12)) is None
    assert budget.ended(Budget(wall_s=60), Spent(59.9, 0)) is None
    assert budget.ended(Budget(wall_s=60), Spent(60, 0)) == "wall-clock budget spent (60 s >= 60 s)"
    assert budget.ended(Budget(gpu_hours=2), Spent(0, 2.5)) == "GPU-hour budget spent (2.5 >= 2 GPU-hours)"
    assert budget.gpu_hours([1800, 5400], 2) == pytest.approx(4.0)
    for bad in (dict(wall_s=0), dict(gpu_hours=-1), dict(wall_s=math.inf), dict(on_end="later")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Budget(**bad)


def test_wall_budget_ends_the_search_between_hand_outs_and_the_queue_is_dropped():
    clock = Clock()
    s = state(Budget(wall_s=100), clock)
    first = s.next_config("a")
    assert first.config is not None and s.started == 1000.0
    clock.now += 99
    assert s.next_config("b").config is not None  # within the budget: round 0 goes on
    clock.now += 1  # 100 s since round 0 was planned
    out = s.next_config("c")
    assert out.config is None and out.finished
    assert s.stop_reason == "wall-clock budget spent (100 s >= 100 s)" and s.queue == []
    assert set(s.trials) == {"a", "b"}  # nothing more handed out; what ran is kept for the pick
    assert not s.check_budget()  # on_budget: finish: running trials are not stopped


def test_gpu_budget_counts_each_trials_seconds_times_its_gpus_and_stop_cuts_running_trials():
    clock = Clock()
    s = state(Budget(gpu_hours=1.0, on_end=OnBudget.STOP), clock, gpus=2)
    s.next_config("a"), s.next_config("b")
    s.record("a", {"epoch": 1, "val_loss": 1.0, "time_total_s": 900})  # 0.5 GPU-hours
    assert not s.check_budget() and s.stop_reason is None
    s.record("b", {"epoch": 1, "val_loss": 2.0, "time_total_s": 900})  # 1.0 GPU-hours
    assert s.spent().gpu_hours == pytest.approx(1.0)
    assert s.check_budget()  # running trials are to stop now
    assert s.stop_reason.startswith(budget.GPU) and s.next_config("c").finished


def test_a_stop_budget_after_the_search_ended_is_still_recorded_and_extend_reopens_the_search():
    clock = Clock()
    s = state(Budget(wall_s=10, on_end=OnBudget.STOP), clock)
    s.next_config("a")
    s.stop_reason = "round budget spent (1 rounds)"  # the search ended; trial a still runs
    clock.now += 10
    assert s.check_budget()
    assert s.stop_reason == "round budget spent (1 rounds); then wall-clock budget spent (10 s >= 10 s)"
    s.extend({"budget": Budget(wall_s=100)})  # a larger budget on resume: the search goes on
    assert s.stop_reason is None and not s.check_budget()
    f = state(Budget(wall_s=10), Clock())
    f.next_config("a")
    f.stop_reason = "round budget spent (1 rounds)"
    f.clock.now += 10  # type: ignore[attr-defined]
    assert not f.check_budget() and f.stop_reason == "round budget spent (1 rounds)"  # finish: nothing to cut


def test_zoom_budget_keys_are_checked_and_may_grow_on_resume():
    base = {"name": "b", "workload": "digits_mlp", "max_epochs": 3, "space": {"lr": {"log": [1e-3, 1e-1]}}}
    cfg = config.parse({**base, "zoom": {"budget_wall_s": 60, "budget_gpu_hours": 1.5, "on_budget": "stop"}})
    assert (cfg.zoom.budget_wall_s, cfg.zoom.budget_gpu_hours, cfg.zoom.on_budget) == (60, 1.5, "stop")
    for bad in ({"budget_wall_s": 0}, {"on_budget": "later"}, {"budget_gpu_hours": -1}):
        with pytest.raises(config.ConfigError, match=f"zoom.{next(iter(bad))}"):
            config.parse({**base, "zoom": bad})
    grown = config.parse({**base, "zoom": {"budget_wall_s": 120, "budget_gpu_hours": 1.5, "on_budget": "finish"}})
    assert resume.resume_changes(cfg, grown) == (
        [],
        {"zoom.budget_wall_s": (60.0, 120.0), "zoom.on_budget": ("stop", "finish")},
    )


@pytest.mark.slow
def test_a_wall_budget_ends_a_real_sweep_its_trials_stopped_and_the_pick_made_from_what_ran(local_ray, tmp_path):
    """On a real local Ray: a 1-second wall budget with on_budget: stop ends the sweep in round 0; the
    trials that ran are stopped at their next report; best.json and the report name the budget."""
    from orchestrator import run_sweep

    cfg = config.parse(
        {
            "name": "wall",
            "workload": "digits_mlp",
            "max_epochs": 30,
            "storage": str(tmp_path / "runs"),
            "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9, "width": 16},
            "asha": {"enabled": False},
            "zoom": {"max_rounds": 3, "budget_wall_s": 1, "on_budget": "stop"},
        }
    )
    summary = run_sweep(cfg, quiet=True)
    best = json.loads((summary.folder / "best.json").read_text())
    assert best["stop_reason"].startswith("wall-clock budget spent"), best["stop_reason"]
    rounds = json.loads((summary.folder / "rounds.json").read_text())
    assert [r["index"] for r in rounds["rounds"]] == [0]  # no new round started
    import pyarrow.parquet as pq

    epochs: dict[str, int] = {}
    for r in pq.read_table(summary.folder / "trials.parquet").to_pylist():
        epochs[r["trial_id"]] = max(epochs.get(r["trial_id"], 0), r["epoch"] or 0)
    assert epochs and max(epochs.values()) < 30, epochs  # every trial that ran was stopped, none trained to the end
    assert "wall-clock budget spent" in (summary.folder / "report.md").read_text()
    assert math.isfinite(summary.lr)


def test_the_wall_clock_does_not_count_the_pause_between_two_drivers():
    clock = Clock()
    s = state(Budget(wall_s=100), clock)
    s.next_config("a")
    clock.now += 60
    assert s.next_config("b").config is not None  # a budget check at 60 s; then the driver stops
    clock.now += 86400  # a day later: resumed, or extended
    s.restart_clock()
    assert s.spent().wall_s == pytest.approx(60)
    clock.now += 39
    assert s.next_config("c").config is not None and s.stop_reason is None
    clock.now += 1
    assert s.next_config("d").finished and s.stop_reason == "wall-clock budget spent (100 s >= 100 s)"
