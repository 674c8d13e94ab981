"""bench/real.py without Ray: its sweep configs, its plan, and a batch whose sweeps are all already recorded
(resumed: nothing to run) summarised in bench/replay.py's columns."""

from __future__ import annotations

import csv
import math

import pytest

from bench import real, replay, yardstick


def write_tiny_landscape(path) -> None:
    # lrs 1e-3, 1e-2, 1e-1 x seeds 0, 1001; mean finals 0.4, 0.2, 0.3 (best at 1e-2)
    finals = {0.001: (0.5, 0.3), 0.01: (0.1, 0.3), 0.1: (0.2, 0.4)}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lr", "seed", "epoch", "val_loss"])
        for lr, (a, b) in finals.items():
            w.writerows([[lr, 0, 1, 9.0], [lr, 0, 2, a], [lr, 1001, 1, 9.0], [lr, 1001, 2, b]])


def test_sweep_config_puts_the_landscapes_trial_in_the_example(tmp_path):
    cfg = real.sweep_config("diabetes_linear", 4, -5.5, -0.5, str(tmp_path), ["zoom.max_rounds=3"])
    assert (cfg.workload, cfg.max_epochs, cfg.seed, cfg.zoom.max_rounds, cfg.asha.grace_period) == (
        "diabetes_regression",
        27,
        4,
        3,
        9,
    )
    space = cfg.space
    assert (space["depth"], space["momentum"], space["batch_size"], space["optimizer"]) == (0, 0.0, 128, "sgd")
    assert list(space["lr"].log) == [pytest.approx(10**-5.5), pytest.approx(10**-0.5)]
    assert "momentum" not in real.sweep_config("adam", 0, -6, -1, str(tmp_path)).space
    cnn = real.sweep_config("digits_cnn", 0, -6, -1, str(tmp_path)).space
    assert "width" not in cnn and "depth" not in cnn and cnn["batch_size"] == 32  # digits_cnn reads neither
    with pytest.raises(ValueError, match="landscape='nope'"):
        real.sweep_config("nope", 0, -6, -1, str(tmp_path))


def test_a_recorded_batch_is_summarised_not_rerun(tmp_path, capsys):
    write_tiny_landscape(tmp_path / "landscape_sgd.csv")
    land = yardstick.Landscape.load(tmp_path / "landscape_sgd.csv")
    jobs = real.plan(["sgd"], {"sgd": land}, [0.0, 0.5], [], 3, 2)
    labels = [label for _, label, *_ in jobs]
    assert (
        labels
        == ["shift +0.0"] * 3 + ["shift +0.5"] * 2 + ["miss low (x*-6..x*-1)"] * 2 + ["miss high (x*+1..x*+6)"] * 2
    )
    assert [j[4] for j in jobs] == [0, 1, 2, 0, 1, 0, 1, 0, 1]
    first = real.plan(["sgd", "adam"], {"sgd": land, "adam": land}, [0.0, 0.5], ["shift +0.5", "miss"], 3, 2)
    assert [(n, label[:6], seed) for n, label, _, _, seed in first][:5] == [
        ("sgd", "shift ", 0),
        ("adam", "shift ", 0),
        ("sgd", "shift ", 1),
        ("adam", "shift ", 1),
        ("sgd", "miss l", 0),
    ]
    runs = tmp_path / "real_sweeps_runs.csv"
    regrets = {(0, 0): 0.0, (0, 1): 10.0, (0, 2): 50.0, (1, 0): 5.0, (1, 1): math.inf, (2, 0): 1.0, (2, 1): 1.0}
    regrets |= {(3, 0): 2.0, (3, 1): 4.0}
    for (i, seed), r in regrets.items():
        label, low, high = replay.ranges(land, [0.0, 0.5])[i]
        lr = None if math.isinf(r) else 0.01
        fte = 2.0 + seed if lr else math.nan
        run = real.Run("sgd", label, low, high, seed, "", lr, r, fte, 54, 60.0, "" if lr else "Boom: x")
        real.append_run(runs, run)
    real.append_run(runs, real.Run("sgd", "shift +0.0", -6, -1, 0, "zoom.max_rounds=3", 0.1, 99.0, 9.0, 9, 1.0))
    recorded = real.read_runs(runs)
    assert recorded[4].lr is None and recorded[-1].sets == "zoom.max_rounds=3"
    assert real.pending(jobs, recorded, []) == []  # so main starts no Ray below
    assert real.pending(jobs, recorded[1:], []) == jobs[:1]
    assert real.pending(jobs, recorded, ["zoom.max_rounds=3"]) == jobs[1:]  # another batch: its own rows

    code = real.main(
        ["--landscapes", "sgd", "--shifts", "0", "0.5", "--repeats-shift0", "3", "--repeats", "2"]
        + ["--results", str(tmp_path)]
    )
    assert code == 0 and "0 to run" in capsys.readouterr().out  # every sweep was already in the runs file
    with (tmp_path / "real_sweeps.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == replay.HEADER
    assert rows[1] == ["sgd", "shift +0.0", real.METHOD, "20.0%", "42.0%", "50.0%", "3.00", "0", "3"]
    assert rows[2][3:] == ["inf%", "inf%", "inf%", "2.00", "1", "2"]  # the failed sweep's FTE is left out
    assert rows[4][3:6] == ["3.0%", "3.8%", "4.0%"] and len(rows) == 5  # the overridden run is not this batch's
    labels = [label for label, _, _ in reversed(replay.ranges(land, [0.0, 0.5]))]
    assert [row[1] for row in real.summary_rows(recorded[:-1], ["sgd"], labels)] == labels  # replay's order
    assert "| sgd | shift +0.5 | 1 | - | inf% |" in (tmp_path / "real_sweeps.md").read_text()
    assert real.main(["--landscapes", "adam", "--results", str(tmp_path)]) == 2  # no landscape_adam.csv there
