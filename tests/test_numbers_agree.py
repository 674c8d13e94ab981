"""The numbers a user reads agree: the chosen rate stands next to its own score, one name per statistic,
the band of rates the sweep cannot tell apart from the best; ``mode: max`` judged in the right direction."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from orchestrator import analysis, cli, config, curves, report, results, zoom
from orchestrator.noise import BAND_SIGMAS


def test_the_cliff_of_a_negated_maximised_metric_is_judged_by_the_ratio():
    """A maximised metric reaches the zoom negated (lower is better): accuracy 0.3 is 3x worse than 0.96,
    accuracy 0.9 is not, whatever the sign."""
    acc = {-3.0: 0.5, -2.0: 0.96, -1.5: 0.9, -1.0: 0.3}
    points = [(x, -a) for x, a in acc.items()]
    assert zoom.cliff_cap(points, ratio=3.0, margin=1.0) == -2.0  # the cliff at 10^-1, one decade below it
    assert not zoom.worse(-0.9, -0.96, 3.0) and zoom.worse(-0.3, -0.96, 3.0) and zoom.worse(float("inf"), -0.96, 3.0)
    # a trial ASHA stopped at epoch 2 with accuracy 0.9 (the best had 0.95 there) is no cliff
    best = zoom.Observation.of(0, -2.0, 0, [-0.9, -0.95, -0.96, -0.96], done=True)
    stopped = zoom.Observation.of(0, -1.5, 0, [-0.85, -0.9], done=True)
    pick = zoom.best_of_group([best, stopped, zoom.Observation.of(0, -2.5, 0, [-0.8, -0.9, -0.93, -0.94], True)])
    assert pick.x > -2.5 and zoom._stopped_over_cliff([best, stopped], 4) == []


def test_metric_may_be_any_reported_key_and_mode_max_is_accepted():
    base = "name: m\nworkload: digits_mlp\nmax_epochs: 3\nspace:\n  lr: {log: [1e-3, 1e-1]}\n"
    cfg = config.loads(base + "metric: val_accuracy\nmode: max\n")
    assert (cfg.metric, cfg.mode) == ("val_accuracy", "max")
    assert config.loads(base).mode == "min"
    for bad, key in (("metric: 'val loss'\n", "metric"), ("mode: maximum\n", "mode")):
        with pytest.raises(config.ConfigError) as info:
            config.loads(base + bad, "c.yaml")
        assert key in str(info.value) and "\n" not in str(info.value)


NOISE = (0.012, -0.009, 0.004, -0.013, 0.008, -0.002, 0.011, -0.010, 0.001, -0.006, 0.013, -0.007, 0.005)


def valley_folder(folder: Path, mode: str = "min", target: float | None = None) -> Path:
    """One group, 13 trials a quarter decade apart over 10^-3.5 .. 10^-0.5, each its own seed: val_loss
    0.3 + 0.2 (x + 2)^2 plus a fixed noise draw (std ~0.009), flat over 6 epochs; val_accuracy = 1 - val_loss.
    A maximised sweep stores val_accuracy in the ``metric`` column."""
    folder.mkdir(parents=True)
    rows = []
    for i, noise in enumerate(NOISE):
        x = -3.5 + 0.25 * i
        v = 0.3 + 0.2 * (x + 2) ** 2 + noise
        config = {"workload": "digits_mlp", "max_epochs": 6, "lr": 10**x, "round": 0, "group": 0}
        for e in range(1, 7):
            rows.append(
                {
                    "trial_id": f"t{i:02d}",
                    "round": 0,
                    "group": 0,
                    "lr": 10**x,
                    "status": "completed",
                    "config": json.dumps(config),
                    "epoch": e,
                    "val_loss": v,
                    "train_loss": v,
                    "val_error": v,
                    "metric": v if mode == "min" else 1 - v,
                }
            )
    results.write_trials(folder, rows)
    results.write_json(
        folder / results.ROUNDS,
        {
            "metric": "val_loss" if mode == "min" else "val_accuracy",
            "mode": mode,
            "target": target,
            "param": "lr",
            "max_epochs": 6,
            "rounds": [
                {
                    "index": 0,
                    "points": 13,
                    "reason": "coarse grid",
                    "brackets": {"0": {"low": 10**-3.5, "high": 10**-0.5}},
                }
            ],
            "stop_reason": "round budget spent (1 rounds)",
            "cliff_margin": 1.0,
        },
    )
    return folder


def test_the_band_holds_the_rates_within_two_noise_estimates_of_the_best(tmp_path):
    s = report.build(valley_folder(tmp_path / "v"))
    b = s.band
    assert b is not None and b.noise is not None
    assert 0.5 * statistics.pstdev(NOISE) < b.noise < 2 * statistics.pstdev(NOISE)  # the scatter it measured
    scores = {c.lr: c.mean_at(6) for c in s.table}
    best = min(scores.values())
    assert b.threshold == pytest.approx(best + BAND_SIGMAS * b.noise)
    inside = [lr for lr in scores if b.low * (1 - 1e-9) <= lr <= b.high * (1 + 1e-9)]
    assert len(inside) == b.trials >= 3 and all(scores[lr] <= b.threshold for lr in inside)
    rates = sorted(scores)
    below, above = rates[rates.index(min(inside)) - 1], rates[rates.index(max(inside)) + 1]
    assert scores[below] > b.threshold and scores[above] > b.threshold  # the band ends where a rate is told apart
    assert b.low <= s.lr <= b.high
    stored = json.loads((s.folder / "best.json").read_text())["band"]
    assert stored == {
        "low": b.low,
        "high": b.high,
        "noise": b.noise,
        "threshold": b.threshold,
        "trials": b.trials,
        "sigmas": BAND_SIGMAS,
    }
    said = f"band lr {b.low:.4g}..{b.high:.4g} (noise {b.noise:.4f})"
    assert said in s.line() and said in (s.folder / "report.md").read_text()
    assert (
        f"- Band: lr {b.low:.4g} .. {b.high:.4g}: the rates this sweep cannot tell apart"
        in (s.folder / "report.md").read_text()
    )


def test_a_maximised_metric_picks_the_same_rate_and_band_as_its_minimised_twin(tmp_path):
    """val_accuracy = 1 - val_loss, mode max: the same pick (to a hair), band and noise; scores in accuracy units, the
    best trial the most accurate, statistics named 'highest at any epoch'."""
    low = report.build(valley_folder(tmp_path / "min"))
    high = report.build(valley_folder(tmp_path / "max", mode="max"))
    assert high.mode is results.Mode.MAX and high.metric == "val_accuracy"
    # the parabola weights points by 1/|score|, so the vertex moves by a hair (0.005 decade), not more
    assert abs(math.log10(high.lr / low.lr)) < 0.02 and high.best_trial["trial_id"] == low.best_trial["trial_id"]
    assert high.value == pytest.approx(1 - low.value) and high.score.trials == low.score.trials
    assert (high.band.low, high.band.high) == (low.band.low, low.band.high)
    assert high.band.noise == pytest.approx(low.band.noise)
    assert high.band.threshold == pytest.approx(1 - low.band.threshold)
    best = json.loads((high.folder / "best.json").read_text())
    assert best["val_accuracy"] == high.score.value and best["mode"] == "max" and 0.6 < high.score.value < high.value
    md = (high.folder / "report.md").read_text()
    assert "val_accuracy, highest at any epoch" in md and "(higher is better)" in md
    assert [b.trial_id for b in curves.best_by(high.table, curves.law_of)] == [low.best_trial["trial_id"]]
    assert analysis.round_stats(high)[0].best == pytest.approx(1 - analysis.round_stats(low)[0].best)


def _numbers(text: str) -> dict[str, str]:
    """The chosen rate, its score and the band as one line states them (``Summary.chosen_text``)."""
    m = re.search(
        r"lr=(\S+)  (\w+)=(\S+) \((mean of epochs? [\d-]+), ([^)]*)\)  "
        r"band lr (\S+)\.\.(\S+) \((noise [^)]*)\)",
        text,
    )
    assert m, text
    return dict(zip(("lr", "metric", "value", "statistic", "source", "low", "high", "noise"), m.groups()))


@pytest.mark.slow
def test_a_real_max_sweep_says_the_same_numbers_everywhere(local_ray, small_config, capsys):
    """One real sweep (digits, val_accuracy, mode: max): best.json, report.md, the final line of `sweep run`
    and `sweep report` give the chosen rate, its own score and the band with one label and one value; ASHA
    stopped the least accurate; the pick lies where the val_loss sweep on the same config picks
    (tests/test_sweep.py: 3e-3 .. 0.3)."""
    path = small_config("acc", "metric: val_accuracy\nmode: max\ntarget: 1.0\n")
    assert cli.main(["run", str(path), "--quiet", "--no-check"]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    folder = path.parent / "runs" / "acc"
    best = json.loads((folder / "best.json").read_text())
    assert best["metric"] == "val_accuracy" and best["mode"] == "max" and best["target"] == 1.0
    assert best["val_accuracy"] == best["score"]["value"]
    assert 3e-3 <= best["lr"] <= 0.3 and best["band"]["low"] <= best["lr"] <= best["band"]["high"]
    rounds = json.loads((folder / "rounds.json").read_text())
    assert rounds["mode"] == "max" and rounds["target"] == 1.0
    assert all(set(b) == {"low", "high"} for r in rounds["rounds"] for b in r["brackets"].values())
    rows = results.read_trials(folder)
    stopped = {r["trial_id"] for r in rows if r["status"] == "stopped"}
    acc = {r["trial_id"]: r["metric"] for r in rows if r["epoch"] == 2}
    assert stopped and max(acc[t] for t in stopped) < max(acc.values())  # ASHA kept the most accurate going
    assert all(
        r["metric"] == pytest.approx(r["val_accuracy"] if "val_accuracy" in r else 1 - r["val_error"])
        for r in rows
        if r["epoch"] and math.isfinite(r["metric"])
    )

    assert cli.main(["report", str(folder)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    footer, cost_line, line = out[-5], out[-4], out[-2]
    assert cost_line.startswith("Cost in real units: ") and best["cost"]["trial_hours"] == pytest.approx(
        sum(r["epoch_seconds"] or 0.0 for r in rows if r["epoch"]) / 3600
    )  # the trials' own times, in hours
    said = {
        name: _numbers(text)
        for name, text in (("run", final), ("report", line), ("report.md", (folder / "report.md").read_text()))
    }
    stored = {
        "lr": f"{best['lr']:.4g}",
        "metric": "val_accuracy",
        "value": f"{best['score']['value']:.4f}",
        "statistic": best["score"]["statistic"],
        "source": best["score"]["source"],
        "low": f"{best['band']['low']:.4g}",
        "high": f"{best['band']['high']:.4g}",
        "noise": "noise not measured: fewer than 4 trials"
        if best["band"]["noise"] is None
        else f"noise {best['band']['noise']:.4f}",
    }
    assert said == {"run": stored, "report": stored, "report.md": stored}
    assert footer == (
        f"* best trial run: lr {best['best_trial']['lr']:.4g}, val_accuracy "
        f"{best['best_trial']['score']:.4f} ({best['best_trial']['statistic']})"
    )


def test_with_a_target_a_maximised_metric_is_the_distance_to_it_and_the_cliff_reads_as_on_a_loss(tmp_path):
    """val_accuracy with target 1.0 is minimised as 1 - val_accuracy: the very pick, band and noise of the
    val_loss twin (here val_loss = 1 - val_accuracy), where the negated metric moved the pick by a hair; and
    the cliff guard judges 'ratio times worse' on that distance: accuracy 0.75 against 0.975 is a cliff (10x
    the error), though not a third of the accuracy."""
    low = report.build(valley_folder(tmp_path / "min"))
    high = report.build(valley_folder(tmp_path / "max", mode="max", target=1.0))
    assert high.lr == low.lr and high.score.value == pytest.approx(1 - low.score.value)
    assert (high.band.low, high.band.high) == (low.band.low, low.band.high)
    assert high.band.noise == pytest.approx(low.band.noise)
    goal = results.Goal(results.Mode.MAX, 1.0)
    points = [(x, goal.loss(a)) for x, a in ((-3.0, 0.9), (-2.0, 0.975), (-1.5, 0.97), (-1.0, 0.75))]
    assert zoom.cliff_cap(points, margin=1.0) == -2.0
    negated = [
        (x, results.Goal(results.Mode.MAX).loss(a)) for x, a in ((-3.0, 0.9), (-2.0, 0.975), (-1.5, 0.97), (-1.0, 0.75))
    ]
    assert zoom.cliff_cap(negated, margin=1.0) is None  # without a target: not a third of the best accuracy
    assert goal.metric(goal.loss(0.97)) == pytest.approx(0.97)
    assert results.Goal(results.Mode.MIN, 0.5).loss(0.75) == 0.25
