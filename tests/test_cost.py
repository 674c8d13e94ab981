"""Cost in real units and what each round bought (``orchestrator.cost``), closed-form on hand-made trial
tables: the arithmetic, the closing advice's rule, and a stored sweep's report.md / best.json / terminal table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orchestrator import analysis, config as configs, cost, report, results, resume

A100 = cost.Resources(cpu=4, gpu=0.5, workers=2, gpu_kind="A100")
RATES = cost.Rates(gpu_hour=2.5, cpu_hour=0.05)


def row(tid: str, rnd: int, epoch: int | None, seconds: float | None, ended: float | None) -> dict:
    return {"trial_id": tid, "round": rnd, "epoch": epoch, "epoch_seconds": seconds, "ended_at": ended}


def test_cost_of_a_hand_made_table_closed_form():
    rows = [
        row("a", 0, 1, 1800.0, 1800.0),
        row("a", 0, 2, 1800.0, 3600.0),  # a: 0 s .. 3600 s
        row("b", 0, 1, 3600.0, 5400.0),  # b: 1800 s .. 5400 s
        row("c", 0, None, None, None),
    ]  # errored before its first epoch: a trial, no epoch, no time
    c = cost.cost_of(rows, A100, RATES)
    assert (c.trials, c.epochs) == (3, 3)
    assert c.wall_s == pytest.approx(5400.0)
    assert c.trial_hours == pytest.approx(2.0)  # 7200 s of training
    assert c.gpu_hours == pytest.approx({"A100": 2.0})  # 2 h x 0.5 GPU x 2 workers
    assert c.cpu_hours == pytest.approx(16.0)  # 2 h x 4 CPUs x 2 workers
    assert c.money == pytest.approx(2.0 * 2.5 + 16.0 * 0.05)  # 5.80
    assert c.text() == ("training span 5400 s, 2 trial-hours, 2 GPU-hours (A100), 16 CPU-hours, money 5.80 USD")
    # no rates: no money; no GPU: no GPU-hours; no times: no training span
    bare = cost.cost_of([row("a", 0, 1, None, None)], cost.Resources(), None)
    assert (bare.money, bare.gpu_hours, bare.wall_s, bare.trial_hours) == (None, {}, None, 0.0)
    assert "money n/a" in bare.text() and "0 GPU-hours" in bare.text() and "training span n/a" in bare.text()
    # the final line's phrase: the figures that apply, in text()'s words
    assert c.brief() == "training span 5400 s, 2 trial-hours, 2 GPU-hours (A100), money 5.80 USD"
    assert bare.brief() == "training span n/a, 0 trial-hours" and c.stored()["text"] == c.brief()


def test_resources_and_rates_from_a_config_mapping():
    r = cost.resources_of({"resources": {"cpu": 2, "gpu": 1, "workers": 3, "custom": {"accelerator_type:H100": 0.001}}})
    assert r == cost.Resources(2.0, 1.0, 3, "H100")
    assert cost.resources_of({}) == cost.Resources()  # the config's defaults: 1 CPU, no GPU
    assert cost.rates_of({"cost": {"gpu_hour": "2.5e0", "cpu_hour": 0.05}}) == cost.Rates(2.5, 0.05)
    assert cost.rates_of({}) is None
    with pytest.raises(ValueError, match=r"cost.gpu_hour='x': expected a number"):
        cost.rates_of({"cost": {"gpu_hour": "x"}})
    with pytest.raises(ValueError, match=r"gpu_hour=-1.0: expected a number >= 0"):
        cost.Rates(gpu_hour=-1.0)


def _pick(index: int, lr: float, low: float, high: float, measured: bool = True, trials: int = 4) -> cost.RoundPick:
    spent = cost.Cost(trials, trials * 8, 100.0, trials * 0.25, trials * 0.25, {}, trials * 0.5)
    return cost.RoundPick(index, spent, lr, low, high, measured)


def test_moved_and_narrowed_in_decades():
    before, after = _pick(0, 1e-3, 1e-4, 1e-2), _pick(1, 1e-2, 10**-2.5, 10**-1.5)
    assert cost.moved(before, after) == pytest.approx(1.0)
    assert cost.narrowed(before, after) == pytest.approx(1.0)  # 2 decades wide, then 1
    assert cost.moved(None, after) is None and cost.narrowed(before, _pick(1, 1e-2, 1e-2, 1e-2, False)) is None


def test_advice_stops_when_the_last_round_moved_and_narrowed_less_than_the_resolution():
    rounds = [_pick(0, 1e-3, 1e-4, 1e-2), _pick(1, 10**-2.95, 10**-3.98, 10**-2.01)]  # 0.05 and 0.03 decades
    assert cost.advice(rounds, 0.1, 4) == (
        "stop here: the last round (round 1) moved the pick by 0.05 decades and "
        "narrowed the band by 0.03 decades; below the resolution of 0.1 decades"
    )


def test_advice_is_one_more_round_with_its_expected_cost_when_the_last_round_moved_the_pick():
    rounds = [_pick(0, 1e-3, 1e-4, 1e-2), _pick(1, 10**-2.7, 10**-3.5, 10**-2.0, trials=2)]
    line = cost.advice(rounds, 0.1, 4)
    # 4 points x the last round's 0.25 trial-hours and 0.5 USD per trial
    assert line == (
        "one more round: the last round (round 1) moved the pick by 0.30 decades and narrowed the band "
        "by 0.50 decades; the resolution is 0.1 decades; the next would cost 4 trials, about 1 trial-hours "
        "(2.00 USD) and is expected to move the pick by at most 0.30 decades"
    )
    # a band not measured counts as not narrowed; a move under the resolution then stops
    assert cost.advice([rounds[0], _pick(1, 10**-2.95, 0, 0, False)], 0.1, 4).startswith("stop here")
    assert cost.advice(rounds[:1], 0.1, 4).startswith("one more round: a single round measures no move")
    with pytest.raises(ValueError, match="rounds="):
        cost.advice([], 0.1, 4)


CENTRE = -2.6  # the metric is an exact parabola in log10(lr): every pick is 10^CENTRE
SECONDS = 90.0  # each epoch


def _sweep(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows, clock = [], 1000.0
    grid = {0: [-5.0, -4.0, -3.0, -2.0, -1.0], 1: [-2.85, -2.35]}
    for rnd, xs in grid.items():
        for i, x in enumerate(xs):
            lr = 10**x
            conf = json.dumps({"lr": lr, "max_epochs": 4, "round": rnd, "group": 0})
            for e in range(1, 5):
                clock += SECONDS
                rows.append(
                    {
                        "trial_id": f"r{rnd}_{i}",
                        "round": rnd,
                        "group": 0,
                        "lr": lr,
                        "epoch": e,
                        "metric": 0.2 + (x - CENTRE) ** 2 + 1.0 / e,
                        "status": "completed",
                        "config": conf,
                        "epoch_seconds": SECONDS,
                        "ended_at": clock,
                    }
                )
    results.write_trials(folder, rows)
    results.write_json(
        folder / results.ROUNDS,
        {
            "metric": "val_loss",
            "mode": "min",
            "param": "lr",
            "max_epochs": 4,
            "stop_reason": "round budget spent",
            "rounds": [
                {"index": 0, "points": 5, "reason": "coarse grid", "brackets": {}},
                {"index": 1, "points": 2, "reason": "refine", "brackets": {}},
            ],
        },
    )
    (folder / "sweep.yaml").write_text(
        "name: s\nresources:\n  cpu: 2\n  gpu: 1\n  custom:\n"
        "    accelerator_type:H100: 0.001\ncost:\n  gpu_hour: 2.5\n  cpu_hour: 0.05\n"
        "zoom:\n  resolution: 0.1\n"
    )
    return folder


def test_a_stored_sweep_reports_its_cost_per_round_and_the_advice(tmp_path):
    folder = _sweep(tmp_path / "s")
    s = report.build(folder)
    hours = 7 * 4 * SECONDS / 3600  # 7 trials x 4 epochs
    best = json.loads((folder / "best.json").read_text())["cost"]
    assert best["trial_hours"] == pytest.approx(hours) and best["gpu_hours_by_kind"] == {"H100": pytest.approx(hours)}
    assert best["cpu_hours"] == pytest.approx(2 * hours) and best["money"] == pytest.approx(hours * (2.5 + 2 * 0.05))
    assert best["wall_s"] == pytest.approx(7 * 4 * SECONDS)  # the epochs ran one after another
    r0, r1 = best["rounds"]
    assert (r0["trials"], r1["trials"]) == (5, 2) and r1["trial_hours"] == pytest.approx(2 * 4 * SECONDS / 3600)
    assert r0["money"] + r1["money"] == pytest.approx(best["money"])
    # the pick after each round, recomputed from that round's trials and the earlier ones (the same analysis):
    # round 0 alone, too few trials near the best for the final fit, picks its best trial, 1e-3; round 1 adds
    # two trials either side of 10^CENTRE and the exact parabola's vertex is the pick, 0.4 decades above
    rows0 = [r for r in results.read_trials(folder) if r["round"] == 0]
    assert r0["lr"] == analysis.analyse(folder, rows0, s.meta, per_round=False).lr == pytest.approx(1e-3)
    assert r1["lr"] == s.lr == pytest.approx(10**CENTRE, rel=1e-3) and r0["moved_decades"] is None
    assert r1["moved_decades"] == pytest.approx(0.4, abs=1e-3)
    assert r0["band_low"] is None and r1["band_low"] <= s.lr <= r1["band_high"]  # round 0's noise: not measured
    # the last round moved the pick 0.4 > 0.1 decades: one more round, 4 trials at round 1's 0.1 trial-hours
    # (0.26 USD) each
    assert best["advice"] == (
        "one more round: the last round (round 1) moved the pick by 0.40 decades and did not "
        "measure the band both before and after it (noise: fewer than 4 trials near the best); "
        "the resolution is 0.1 decades; the next would cost 4 trials, about 0.4 trial-hours "
        "(1.04 USD) and is expected to move the pick by at most 0.40 decades"
    )
    md = (folder / "report.md").read_text()
    assert "## Cost per round, and what it bought" in md and f"**Advice: {best['advice']}**" in md
    assert f"- Cost in real units: training span 2520 s, {hours:.3g} trial-hours, {hours:.3g} GPU-hours (H100)" in md
    table = report.terminal_table(s)
    assert table.splitlines()[-1] == f"Advice: {best['advice']}"
    # the final line says the cost in the same words as best.json and report.md, and in epochs
    said = f"training span 2520 s, {hours:.3g} trial-hours, {hours:.3g} GPU-hours (H100), money {best['money']:.2f} USD"
    assert best["text"] == said and f"cost: {said}, 28 epochs (7.0 FTE), 7 trials, 2 rounds  " in s.line()
    assert f"{2 * hours:.3g} CPU-hours, money {best['money']:.2f} USD" in md


def test_a_folder_without_a_config_costs_one_cpu_and_no_money(tmp_path):
    folder = _sweep(tmp_path / "s")
    (folder / "sweep.yaml").unlink()
    s = analysis.summarise(folder)
    assert s.cost is not None and s.cost.gpu_hours == {} and s.cost.money is None
    assert s.cost.cpu_hours == pytest.approx(s.cost.trial_hours) and math.isfinite(s.cost.trial_hours)


def test_rates_may_change_on_resume_nothing_trained_moves():
    base = {"name": "s", "workload": "digits_mlp", "max_epochs": 2, "space": {"lr": {"log": [1e-4, 1e-1]}}}
    refused, allowed = resume.resume_changes(
        configs.SweepConfig.model_validate(base),
        configs.SweepConfig.model_validate({**base, "cost": {"gpu_hour": 2.5}}),
    )
    assert refused == [] and allowed["cost.gpu_hour"] == (None, 2.5)
