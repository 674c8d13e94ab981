"""bench/: every benchmark run end to end on tiny inputs (synthetic landscapes, a few epochs, 2-trial sweeps),
so that a change to the code they drive breaks here, not on the next long bench run. The numbers in
bench/results are the benches' own output; these tests check the machinery, and the yardstick's arithmetic
on landscapes whose answer is known."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import common, yardstick

OPTIMUM = 0.01  # the synthetic valley's best lr
SEARCH_SEEDS = (0, 1, 2)
FRESH = (1001, 1002)


def synthetic_loss(lr: float, seed: int, epoch: int) -> float:
    """A clean valley in log lr (minimum at OPTIMUM), diverged from lr 0.08 on, improving with epochs; each
    seed scales the whole landscape by its own factor (so every seed agrees where the optimum is)."""
    if lr >= 0.08:
        return math.inf
    x = math.log10(lr) - math.log10(OPTIMUM)
    return (0.2 + 0.1 * x * x) * (1 + 0.01 * (seed % 7)) * (1 + 1 / epoch)


def write_landscape(path: Path, epochs: int = 27, seeds=SEARCH_SEEDS + FRESH, per_decade: int = 15) -> list[float]:
    """A landscape CSV as bench/landscape.py writes it: lrs 1e-4..0.12, ``per_decade`` a decade."""
    from orchestrator.space import log_grid

    lrs = [lr for lr in log_grid(1e-4, 1.0, per_decade) if lr <= 0.12 * 1.001]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lr", "seed", "epoch", "val_loss"])
        for s in seeds:
            for lr in lrs:
                w.writerows([lr, s, e, synthetic_loss(lr, s, e)] for e in range(1, epochs + 1))
    return lrs


SCRIPTS = (
    "landscape",
    "frontier",
    "simulate",
    "replay",
    "robust",
    "regret",
    "peers",
    "overhead",
    "utilization",
    "gpu",
    "gpu_busy",
    "coarse_data",
    "real",
)


def test_every_bench_runs_as_a_module():
    """``python -m bench.NAME`` from the repository root, with no PYTHONPATH: no sys.path edits needed."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"bench.{name}", "--help"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in SCRIPTS
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "--results" in out, (name, err[-500:])
    for path in (root / "bench").glob("*.py"):
        assert "sys.path" not in path.read_text(), path.name


# ------------------------------------------------------------------------------------------ yardstick
def tiny_landscape() -> yardstick.Landscape:
    # final losses: lr 0.001 -> seed 0: 0.3, seed 1001: 0.5; lr 0.01 -> 0.2, 0.2; lr 0.1 -> diverged, 0.1
    return yardstick.Landscape(
        {
            (0.001, 0): [0.9, 0.3],
            (0.001, 1001): [0.9, 0.5],
            (0.01, 0): [0.9, 0.2],
            (0.01, 1001): [0.9, 0.2],
            (0.1, 0): [0.9, math.inf],
            (0.1, 1001): [0.9, 0.1],
        }
    )


def test_yardstick_regret_against_all_and_fresh_seeds():
    land = tiny_landscape()
    assert land.search == [0] and land.fresh == [1001]
    assert land.best("all") == pytest.approx(0.2) and land.best("fresh") == pytest.approx(0.1)
    assert land.regret(math.log10(0.001)) == pytest.approx(100.0)  # mean 0.4 against 0.2
    assert land.regret(math.log10(0.01)) == 0.0
    assert land.regret(math.log10(0.1)) == math.inf  # one seed diverged: the mean is inf
    assert land.regret(math.log10(0.001), "fresh") == pytest.approx(400.0)
    assert land.regret(math.log10(0.1), "fresh") == 0.0
    assert land.regret(-2.5) == pytest.approx(50.0)  # halfway in log lr: mean 0.3, interpolated
    assert land.regret(-1.5) == math.inf  # next to a diverged mean: inf
    assert land.judge(0.0095) == pytest.approx(100 * (0.2 + 0.2 * (-2 - math.log10(0.0095))) / 0.2 - 100)
    assert land.judge(0.11) == math.inf  # 0.04 decade past the top: judged at the end value
    assert land.judge(0.2) is None  # 0.3 decade past the recorded range: not judged
    assert yardstick.regret(0.21, 0.2) == pytest.approx(5.0)


def test_yardstick_refuses_holes_and_unknown_yardsticks(tmp_path):
    with pytest.raises(ValueError, match=r"lr 0\.01 has no curve for seed 1"):
        yardstick.Landscape({(0.001, 0): [1.0], (0.001, 1): [1.0], (0.01, 0): [1.0]})
    with pytest.raises(ValueError, match="against='fresh'"):
        yardstick.Landscape({(0.001, 0): [1.0]}).regret(-3, "fresh")
    with pytest.raises(ValueError, match=r"landscape_sgd\.csv: no curves"):
        yardstick.Landscape.load(tmp_path / "landscape_sgd.csv")


def test_yardstick_spread_is_numbers():
    s = yardstick.spread([0, 2, 4, 6, 8, 10, 12, 14, 16, 100])
    assert (s.n, s.mean, s.median, s.worst, s.hits) == (10, pytest.approx(17.2), 9.0, 100.0, 3)
    assert s.p90 == pytest.approx(24.4)  # numpy's linear interpolation between 16 and 100
    assert s.hit_rate == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least one"):
        yardstick.spread([])
    diverged = yardstick.spread([1.0, 2.0, math.inf])  # the 90th percentile lies between 2 and inf: inf, not nan
    assert (diverged.p90, diverged.median, diverged.worst) == (math.inf, 2.0, math.inf)


def test_yardstick_reads_what_landscape_writes(tmp_path):
    path = yardstick.path_for("sgd", tmp_path)
    lrs = write_landscape(path, epochs=3)
    land = yardstick.Landscape.load(path)
    assert land.lrs == lrs and land.seeds == [*SEARCH_SEEDS, *FRESH]
    assert land.curves[(lrs[0], 0)] == [synthetic_loss(lrs[0], 0, e) for e in (1, 2, 3)]
    assert land.lrs[int(land.mean["all"].argmin())] == pytest.approx(OPTIMUM)


# ------------------------------------------------------------------------------------------- common
def test_example_sets_and_the_one_config_builder(tmp_path):
    data = common.example(["zoom.max_rounds=3", "space.lr={log: [1e-5, 1e-2], per_decade: 2}", "new.key=1e-3"])
    assert data["zoom"]["max_rounds"] == 3 and data["new"] == {"key": 1e-3}
    assert data["space"]["lr"] == {"log": [1e-5, 1e-2], "per_decade": 2}  # 1e-5 read as a float
    with pytest.raises(ValueError, match=r"set='zoom\.max_rounds': expected KEY=YAML"):
        common.example(["zoom.max_rounds"])
    cfg = common.sweep_config(common.example(), "x", str(tmp_path))
    assert (cfg.name, cfg.storage, cfg.max_epochs) == ("x", str(tmp_path), 27)
    assert common.digits_trial("adam", 5) == {
        "workload": "digits_mlp",
        "max_epochs": 5,
        "batch_size": 32,
        "width": 64,
        "depth": 2,
        "optimizer": "adam",
    }
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        common.digits_trial("rmsprop")


# ---------------------------------------------------------------------------------------- landscape
def test_landscape_trains_curves_and_resumes(tmp_path, capsys):
    from bench import landscape

    argv = [
        "--low",
        "0.01",
        "--high",
        "0.01",
        "--seeds",
        "0,1001",
        "--workers",
        "1",
        "--epochs",
        "3",
        "--results",
        str(tmp_path),
    ]
    assert landscape.main(argv) == 0
    assert "2 runs to do" in capsys.readouterr().out
    land = yardstick.Landscape.load(tmp_path / "landscape_sgd.csv")
    assert land.lrs == [pytest.approx(0.01)] and land.seeds == [0, 1001]
    assert all(len(c) == 3 and all(map(math.isfinite, c)) for c in land.curves.values())
    assert landscape.main(argv) == 0  # rows already there are kept, not retrained
    assert "0 runs to do" in capsys.readouterr().out
    assert len((tmp_path / "landscape_sgd.csv").read_text().splitlines()) == 1 + 2 * 3
    assert landscape.parse_seeds("0-2,1001-1002") == [0, 1, 2, 1001, 1002]
    # lrs past 1 on the same 1/15-decade grid; --set overrides trial keys (here: a linear model, plain SGD)
    linear = ["--low", "2", "--high", "2.5", "--seeds", "0", "--epochs", "1", "--name", "linear"]
    linear += ["--workers", "1", "--results", str(tmp_path), "--set", "depth=0", "momentum=0.0"]
    assert landscape.main(linear) == 0
    assert yardstick.Landscape.load(tmp_path / "landscape_linear.csv").lrs == [2.154]  # 10**(5/15), 4 digits
    with pytest.raises(SystemExit) as bad:
        landscape.main([*linear, "depth"])
    assert bad.value.code == 2 and "--set 'depth': expected KEY=YAML" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- frontier
@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")  # all-inf lrs
def test_frontier_on_a_clean_valley(tmp_path):
    from bench import frontier

    write_landscape(tmp_path / "landscape_sgd.csv")
    assert frontier.main(["--draws", "3", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "frontier_sgd.md").read_text()
    fresh_best = 0.2 * (1 + 0.01 * (1001 % 7 + 1002 % 7) / 2) * (1 + 1 / 27)
    assert f"best {fresh_best:.4f} at lr 0.01." in text
    # every seed agrees on the optimum, which is on the finest grid: the best point is always the optimum
    assert "| 0.07 | 31 | 1 | 31 | common | argmin | 100% | 0.0% | 0.0% |" in text
    with pytest.raises(SystemExit, match=r"expected seeds 1001\.\.1005 and >= 3 others"):
        write_landscape(tmp_path / "few" / "landscape_sgd.csv", epochs=3, seeds=(0, 1001))
        frontier.main(["--results", str(tmp_path / "few")])


# ----------------------------------------------------------------------------------------- simulate
def test_simulate_replays_the_zoom_on_a_clean_valley(tmp_path):
    from bench import simulate

    write_landscape(tmp_path / "landscape_sgd.csv")
    assert simulate.main(["--draws", "2", "--shifts", "0", "--variants", "2", "--results", str(tmp_path)]) == 0
    rows = [r for r in (tmp_path / "simulate_sgd.md").read_text().splitlines() if r.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| " + v.name for v in simulate.VARIANTS[:2]]
    default = rows[0].split(" | ")
    assert 1 < float(default[2]) < 14  # FTE: more than one full run, less than every point fully trained
    assert default[7] == "100%"  # robust hit rate: on a clean valley the default rules pick within 5%


def test_simulate_asha_round0_keeps_the_best_third_at_each_rung():
    from bench import simulate
    from orchestrator import zoom

    obs = [zoom.Observation(0, float(i), 0, tuple([1.0 + i] * 27), True) for i in range(9)]
    cut = simulate.asha_round0(obs, grace=3, rf=3.0, max_epochs=27)
    assert [len(o.curve) for o in cut] == [27, 9, 9] + [3] * 6


# ------------------------------------------------------------------------------------------- replay
def test_replay_asha_stops_as_rays_rule_does():
    from bench import replay

    assert replay.milestones(1, 3.0, 27) == [1, 3, 9] and replay.milestones(9, 3.0, 27) == [9]
    # rungs 1 and 3: the first trial at a rung goes on; later ones stop when worse than the 1/3 quantile
    # of the values recorded there before them (6 > 4.33 at rung 1); a curve that ends (diverged) ends there
    curves = [(5.0,) * 9, (4.0,) * 9, (6.0,) * 9, (3.0,) * 9, (1.0, math.inf)]
    assert replay.asha(curves, 1, 3.0, 9, slots=1) == [9, 9, 1, 9, 2]
    assert replay.asha(curves, 1, 3.0, 9, slots=2) == [9, 9, 1, 9, 2]
    assert replay.best_completed([-3.0, -2.0, -1.0], curves[:3], [9, 9, 1], 9) == -2.0
    assert replay.best_completed([-1.0], [(1.0, math.inf)], [2], 9) is None


def test_replay_writes_the_table_for_every_range_and_method(tmp_path):
    from bench import replay

    write_landscape(tmp_path / "landscape_sgd.csv")
    argv = ["--landscapes", "sgd", "--draws", "2", "--shifts", "0", "--results", str(tmp_path)]
    (tmp_path / "range_test_sgd.csv").write_text(  # cached range tests: this test trains nothing
        "low,high,seed,min10,steepest,fte\n"
        + "".join(f"{lo},{hi},{s},0.01,0.02,0.1\n" for lo, hi in ((-6, -1), (-8, -3), (-1, 4)) for s in SEARCH_SEEDS)
    )
    assert replay.main(argv) == 0
    rows = [r.split(" | ") for r in (tmp_path / "replay.md").read_text().splitlines() if r.startswith("| sgd | ")]
    labels = ["shift +0.0", "miss low (x*-6..x*-1)", "miss high (x*+1..x*+6)"]
    methods = [m.name for m in replay.SWEEPS + replay.PEERS]
    assert [(r[1], r[2]) for r in rows[: len(labels) * len(methods)]] == [(a, m) for a in labels for m in methods]
    default = next(r for r in rows if r[1] == "shift +0.0" and r[2] == replay.BUDGET_FROM)
    assert float(default[3].rstrip("%")) < 5 and 1 < float(default[6]) < 12  # a clean valley: near its floor
    # + the frontier, + the frontier by cost (a row), + the goals table: one row per range
    n_frontier = len(replay.WINDOWS) * len(replay.SPREADS)
    assert len(rows) == len(labels) * len(methods) + n_frontier + 1 + len(labels)
    by_cost = rows[len(labels) * len(methods) + n_frontier]
    assert len(by_cost) == len(replay.COSTS) + 2 and by_cost[1] != "-"  # 2 points already fit in 2 FTE
    assert [r[1] for r in rows[-len(labels) :]] == labels


# -------------------------------------------------------------------------------------- coarse_data
def test_coarse_data_reads_the_shift_of_the_subsets_optimum(tmp_path):
    from bench import coarse_data

    write_landscape(tmp_path / "landscape_sgd.csv")
    write_landscape(tmp_path / "landscape_sgd_f0.2.csv", per_decade=5)  # the same valley, coarser lrs
    assert coarse_data.main(["--landscapes", "sgd", "adam", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "coarse_data.md").read_text()
    row = next(r.split(" | ") for r in text.splitlines() if r.startswith("| sgd | "))
    full = yardstick.Landscape.load(tmp_path / "landscape_sgd.csv")
    sub = yardstick.Landscape.load(tmp_path / "landscape_sgd_f0.2.csv")
    i, j = coarse_data.optimum(full), coarse_data.optimum(sub)
    assert row[1:4] == [f"{full.lrs[i]:.3g}", f"{sub.lrs[j]:.3g}", f"{sub.x[j] - full.x[i]:+.2f}"]
    assert float(row[4].rstrip("%")) == pytest.approx(full.regret(float(sub.x[j])), abs=0.05)
    assert "No subset landscape for: adam" in text


# ------------------------------------------------------------------------------------------- robust
def test_robust_rejudges_stored_picks_as_numbers(tmp_path):
    from bench import robust

    lrs = write_landscape(tmp_path / "landscape_sgd.csv", epochs=2)
    near = min(lrs, key=lambda lr: abs(math.log10(lr) - math.log10(0.03)))
    header = ["optimizer", "shift", "repeat", "pick", "chosen lr", "FTE", "regret"]
    common.write_results(
        "regret_sgd",
        "",
        header,
        [
            ["sgd", "+0.0", 0, "parabola", "0.01", "6.00", "x"],
            ["sgd", "+0.0", 1, "parabola", f"{near:.4g}", "8.00", "x"],
            ["sgd", "+0.0", 1, "kernel:0.15", "0.02", "8.00", "x"],  # another pick rule: left out
            ["sgd", "+0.0", 2, "parabola", "0.5", "7.00", "x"],  # off the landscape: left out
            ["sgd", "+0.0", 3, "parabola", "none", "7.00", "x"],
        ],
        results=tmp_path,
    )
    assert robust.main(["--results", str(tmp_path)]) == 0
    x = math.log10(near) - math.log10(OPTIMUM)
    expected = 100 * 0.1 * x * x / 0.2  # every seed's factor and the epoch factor cancel
    row = [r for r in (tmp_path / "robust_sgd.md").read_text().splitlines() if r.startswith("| regret_sgd.csv")]
    assert row == [
        f"| regret_sgd.csv | this project's sweep | 2 | 7.00 | 0.0, {expected:.1f} | "
        f"{expected / 2:.1f}% | {expected:.1f}% | 1 of 2 |"
    ]


# ------------------------------------------------------------------------------------------- regret
def test_regret_sweep_config_shifts_the_coarse_grid(tmp_path):
    from bench import regret

    cfg = regret.sweep_config("adam", 3, -0.2, str(tmp_path), ["zoom.max_rounds=3", "space.width=32"])
    assert (cfg.name, cfg.seed, cfg.zoom.max_rounds) == ("bench-adam-s3-shift-m0.2", 3, 3)
    space = cfg.space
    assert space["optimizer"] == "adam" and "momentum" not in space and space["width"] == 32
    assert list(space["lr"].log) == [pytest.approx(10**-6.2), pytest.approx(10**-1.2)] and space["lr"].per_decade == 1
    assert regret.robust_reference("sgd", tmp_path) is None  # no landscape there
    write_landscape(tmp_path / "landscape_sgd.csv", epochs=2)
    judge = regret.robust_reference("sgd", tmp_path)
    assert judge(0.01) == 0.0 and judge(0.5) is None


@pytest.mark.slow
def test_regret_picks_from_a_real_sweep(tmp_path, local_ray):
    from bench import regret
    from orchestrator import tuning

    cfg = regret.sweep_config(
        "sgd",
        0,
        0.0,
        str(tmp_path),
        ["max_epochs=2", "asha={enabled: false, grace_period: 1}", "zoom.max_rounds=1", "space.width=16"],
    )
    s = tuning.run(cfg, tuning.RunOptions(quiet=True))
    assert s.lr == pytest.approx(regret.pick_lr(s.folder, "parabola"), rel=1e-3)  # the sweep's own rule
    assert 1e-6 <= regret.pick_lr(s.folder, "kernel:0.15") <= 0.1


# -------------------------------------------------------------------------------------------- peers
def test_peers_rows_round_trip_and_replot(tmp_path):
    from bench import peers

    rows = [
        peers.Row("Ray Tune grid", 0.0, 0, 0.01, 6, 6.0, 162, 39.0, 0.1654, 6.04, False),
        peers.Row("Ray Tune grid", 0.0, 1, 0.0117, 6, 6.0, 162, 38.0, 0.1563, 0.2, True),
        peers.Row("LR range test (min/10)", 0.0, 0, None, 1, 0.08, 2.222, 0.1, math.inf, math.inf, False, "x"),
    ]
    common.write_results(
        "peers_sgd_t", "# Peers\n\ntable\n", peers.HEADER, [peers.cells(r) for r in rows], results=tmp_path
    )
    back = peers.read_rows(tmp_path / "peers_sgd_t.csv")
    assert [r.regret for r in back] == [6.0, 0.2, math.inf] and back[2].lr is None and back[1].hit
    common.write_results(
        "regret_sgd",
        "",
        ["shift", "FTE", "regret", "within 5%"],
        [["+0.0", "7.50", "0.9%", "yes"], ["+0.5", "7.00", "9.0%", "no"]],
        results=tmp_path,
    )
    assert peers.main(["--replot", "--tag", "_t", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "peers_sgd_t.md").read_text()
    assert text.startswith("# Peers\n\ntable\n") and (tmp_path / "regret_vs_cost_t.png").stat().st_size > 0
    assert "| Ray Tune grid | 2 | 6.00 | 6.0%, 0.2% | 3.1% | 1 of 2 |" in text
    assert "| LR range test (min/10) | 1 | 0.08 | inf | inf% | 0 of 1 |" in text
    assert "| sweep (this project) | 1 | 7.50 | 0.9% | 0.9% | 1 of 1 |" in text  # shift +0.5 left out


def test_peers_range_test_and_best_completed():
    from bench import peers

    min10, steepest, epochs, _, n = peers.lr_range_test(0, 0.0, batches=30)
    assert n <= 30 and 0 < epochs < 1  # 30 batches of 32 out of about 45 an epoch
    assert 1e-7 <= min10 <= 0.1 and 1e-6 <= steepest <= 1.0
    assert peers.best_completed([(0.1, 27, 0.5), (0.01, 27, 0.2), (0.02, 9, 0.1), (0.3, 27, math.inf)]) == 0.01
    assert peers.best_completed([(0.02, 9, 0.1)]) is None


# ----------------------------------------------------------------------------------------- overhead
MEASURED = {
    "(a) raw Ray Tune, reuse_actors=False": (50.0, 1.0, 4),
    "(b) raw Ray Tune, reuse_actors=True": (5.0, 1.0, 4),
    "(c) this project's sweep (tuning.run)": (7.0, 1.0, 4),
}


def test_overhead_render():
    from bench import overhead

    text = overhead.render(MEASURED, 3.0, (20.0, 10.0, 13, 315), 99.0, report_s=2.0)
    assert "| (b) raw Ray Tune, reuse_actors=True | 4 | 5.0 | 1.00 | 1.000 | 0.08x | 1.00x |" in text
    assert "| (c) this project's sweep (tuning.run) | 4 | 7.0 | 1.00 | 1.500 | 0.12x | 1.50x |" in text
    assert "| (c) without its closing report (2.0 s once: tables, 2 plots) | 4 | 5.0 | 1.00 | 1.000 |" in text
    assert "| 13 | 315 | 20.0 | 10.0 | 3.0 | 23.0 | 0.43 | 22% |" in text and "Total bench wall: 99 s." in text


@pytest.mark.slow
def test_overhead_on_two_trials(tmp_path, local_ray):
    from bench import overhead

    assert overhead.main(["--per-decade", "0.2", "--no-demo", "--skip-a", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "overhead.md").read_text()
    assert "| (b) raw Ray Tune, reuse_actors=True | 2 |" in text
    assert "| (c) this project's sweep (tuning.run) | 2 |" in text and "without its closing report" in text


# -------------------------------------------------------------------------------------- utilization
def test_utilization_render():
    from bench import utilization

    sweep = utilization.Measured(12, 311, 50.0, 100.0)
    barrier = utilization.Measured(12, 311, 80.0, 96.0, (30.0, 25.0, 25.0))
    text = utilization.render(sweep, barrier, [6, 3, 3], 0.1, 27, 120.0)
    assert "| this project's sweep (one Tuner, rounds as lineage) | 12 | 311 | 50.0 | 100.0 | 50% |" in text
    assert "| same rounds, barrier (3 Tuner.fit calls) | 12 | 311 | 80.0 (30.0 + 25.0 + 25.0) | 96.0 | 30% |" in text
    assert "would take 25.0 s" in text and "rounds of [6, 3, 3] trials" in text


# ---------------------------------------------------------------------------------------------- gpu
def test_gpu_sweep_config_shares_a_gpu(tmp_path):
    from bench import gpu

    cfg = gpu.sweep_config("digits_cnn", 0.25, 5, 2, str(tmp_path), 1)
    assert (cfg.name, cfg.max_epochs, cfg.resources.gpu, cfg.asha.enabled) == ("digits_cnn-gpu0.25", 5, 0.25, False)


@pytest.mark.slow
def test_gpu_bench_on_cpu(tmp_path, local_ray):
    from bench import gpu

    argv = ["--epochs", "2", "--per-decade", "1", "--low", "1e-2", "--high", "1e-1", "--results", str(tmp_path)]
    assert gpu.main(argv) == 0
    rows = [r.split(" | ") for r in (tmp_path / "gpu.md").read_text().splitlines() if r.startswith("| digits_mlp")]
    assert len(rows) == 1 and rows[0][1:4] == ["0", "CPU only", "2"]  # 2 trials, no GPU here
    assert 2 <= int(rows[0][4]) <= 4  # epochs: 2 each unless one diverged


# ------------------------------------------------------------------------------------------ trivial
def test_trivial_workloads():
    import torch

    from bench import trivial

    wl = trivial.workload({"seed": 0})
    assert len(wl.train) == 8 and wl.model(torch.zeros(1, 4)).shape == (1, 2)
    loss = trivial.sleepy({"sleep": 0.2}).loss
    out, target = torch.zeros(8, 2, requires_grad=True), torch.ones(8, 2)
    start = time.perf_counter()
    with torch.no_grad():
        loss(out, target)
    assert time.perf_counter() - start < 0.2  # validation does not sleep
    start = time.perf_counter()
    loss(out, target)
    assert time.perf_counter() - start >= 0.2  # a training batch does


# ------------------------------------------------------------------------------------------ gpu_busy
@pytest.mark.slow
def test_gpu_busy_dry_run_on_cpu(tmp_path, local_ray):
    from bench import gpu_busy

    assert gpu_busy.lrs(3) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert gpu_busy.main(["--cpu", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "gpu_cpu.md").read_text()
    rows = {
        r.split(" | ")[0].lstrip("| "): r.rstrip(" |").split(" | ") for r in text.splitlines() if r.startswith("| ")
    }
    assert set(rows) >= {s.label for s in gpu_busy.DRY_SCENARIOS}
    for label in (s.label for s in gpu_busy.DRY_SCENARIOS):
        assert rows[label][1:3] == ["1", "2"], rows[label]  # 1 trial, 2 epochs in each run (DDP: rank 0's only)
        assert rows[label][6] == "n/a"  # no GPU: no busy fraction
        assert float(rows[label][7]) > 0  # epoch time against the solo trial's
