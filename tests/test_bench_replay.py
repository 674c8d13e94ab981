"""bench/replay.py's peers that are not plain grids: Optuna TPE + Hyperband replayed over a landscape, and the
LR range test run for real on a landscape's trial config (tiny inputs: a synthetic valley, 3 seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import replay
from bench.simulate import replayed_curve
from bench.yardstick import Landscape
from tests.test_bench import SEARCH_SEEDS, write_landscape

pytest.importorskip("optuna")  # the bench extra


def _draw(land: Landscape, rng: np.random.Generator):
    return lambda x: replayed_curve(land, x, int(rng.choice(land.search)))


def test_tpe_hyperband_is_seeded_spends_its_budget_and_prunes(tmp_path):
    write_landscape(tmp_path / "landscape_t.csv", epochs=9)
    land = Landscape.load(tmp_path / "landscape_t.csv")

    def run(seed: int) -> list[replay.Outcome]:
        rng = np.random.default_rng(seed)
        return [replay.tpe_hyperband(-4.0, -1.0, _draw(land, rng), 9, rng=rng, budget=4.0) for _ in range(3)]

    first = run(0)
    assert first == run(0)  # same seed, same picks and costs (Hyperband's brackets hash the study name)
    assert first != run(1)
    for out in first:
        # the last trial may overshoot the budget by at most one full run; pruning stops some trials early
        assert 4.0 <= out.fte < 5.0
        assert out.x is not None and land.regret(out.x) < 10  # the clean valley's optimum is lr 0.01 (x = -2)


def test_range_tests_train_once_per_seed_and_range_then_read_the_cache(tmp_path):
    write_landscape(tmp_path / "landscape_diabetes_linear.csv", epochs=2, seeds=SEARCH_SEEDS[:2] + (1001,))
    land = Landscape.load(tmp_path / "landscape_diabetes_linear.csv")
    spans = [("a", -4.0, -1.0), ("b", -3.0, 0.0)]
    tests = replay.range_tests("diabetes_linear", land, spans, 27, tmp_path)
    assert sorted(tests) == [(-4.0, -1.0), (-3.0, 0.0)] and all(len(v) == 2 for v in tests.values())
    for (low, high), picks in tests.items():
        for p in picks:
            # at most 100 batches of 128 out of 353 patients (3 batches an epoch) over 27 epochs (the test
            # stops once the loss is 4x its minimum); the lr swept from 10**low to 10**(high + 1), the
            # min-loss pick a tenth of a swept lr
            assert 0 < p["fte"] <= 100 / 3 / 27
            assert 10**low / 10 <= p["min10"] <= 10**high and 10**low <= p["steepest"] <= 10 ** (high + 1)
    path = tmp_path / "range_test_diabetes_linear.csv"
    assert len(path.read_text().splitlines()) == 1 + 4
    cached = path.read_text().splitlines()
    cached[1] = ",".join(cached[1].split(",")[:3] + ["0.005", "0.05", "0.5"])
    path.write_text("\n".join(cached) + "\n")
    again = replay.range_tests("diabetes_linear", land, spans[:1], 27, tmp_path)  # read back, not retrained
    assert again[(-4.0, -1.0)][0] == {"min10": 0.005, "steepest": 0.05, "fte": 0.5}
    assert replay.range_tests("unknown", land, spans, 27, tmp_path) == {}


def test_goals_judge_the_default_sweep_against_cheaper_peers(tmp_path):
    cells = [
        ["d", "shift +0.0", replay.BUDGET_FROM, "0.8%", "2.0%", "9%", "4.00", "0", "9"],
        ["d", "shift +0.0", "grid (1 a decade)", "2.0%", "2.0%", "9%", "6.00", "0", "9"],  # ties, costs more
        ["d", "shift +0.0", "grid + ASHA", "1.0%", "2.0%", "9%", "3.00", "0", "9"],  # ties at less: a rival
        ["d", "miss high (x*+1..x*+6)", replay.BUDGET_FROM, "1.0%", "1.0%", "inf%", "7.00", "0", "9"],
        ["d", "miss high (x*+1..x*+6)", "grid (1 a decade)", "9.0%", "9.0%", "9%", "6.00", "0", "9"],
    ]
    first, second = replay.goals(cells)
    assert first[2:8] == ["0.8% / 2.0% / 4.00", "yes", "yes", "yes", "yes", "grid + ASHA 2.0% @ 3.00"]
    assert first[8] == "grid + ASHA 2.0% @ 3.00"
    assert second[3:8] == ["yes", "yes", "no", "no", "none: the sweep wins"]  # the grid: cheaper, worse
    assert replay.goals([[*cells[3][:4], "nan%", *cells[3][5:]], cells[4]])[0][7] == "grid 9.0% @ 6.00"  # nan: inf
    (tmp_path / "replay.md").write_text("# table\n")
    (tmp_path / "replay.csv").write_text("h\n" + "\n".join(",".join(f'"{c}"' for c in r) for r in cells) + "\n")
    assert replay.main(["--summarize", "--results", str(tmp_path)]) == 0
    replay.main(["--summarize", "--results", str(tmp_path)])  # rebuilt in place, not appended twice
    assert (tmp_path / "replay.md").read_text().count("## Issue #18's goals") == 1


def test_a_subset_round_costs_its_fraction_and_the_pick_is_a_full_data_trials(tmp_path):
    land = Landscape.load(write_landscape(tmp_path / "landscape_sgd.csv") and tmp_path / "landscape_sgd.csv")
    rng = np.random.default_rng(0)
    draws: dict[str, list[tuple[float, tuple[float, ...]]]] = {"full": [], "subset": []}

    def recorded(kind: str):
        curve = _draw(land, rng)  # the same valley stands in for the subset's landscape

        def draw(x: float) -> tuple[float, ...]:
            draws[kind].append((x, curve(x)))
            return draws[kind][-1][1]

        return draw

    def epochs(kind: str) -> int:
        return sum(len(c) for _, c in draws[kind])

    coarse, every = replay.SUBSET_SWEEPS
    out = replay.sweep(-6, -1, recorded("full"), 27, rules=coarse.rules, subset=recorded("subset"))
    assert len(draws["subset"]) == 6 and len(draws["full"]) == 3  # round 0 on the subset, 3 full-data points
    assert out.fte == pytest.approx((0.2 * epochs("subset") + epochs("full")) / 27)
    full_xs = [x for x, _ in draws["full"]]
    assert out.x is not None and min(full_xs) - 0.3 <= out.x <= max(full_xs) + 0.3  # not a subset point's
    for kind in draws:
        draws[kind].clear()
    out = replay.sweep(-6, -1, recorded("full"), 27, rules=every.rules, subset=recorded("subset"))
    assert len(draws["subset"]) > 6 and len(draws["full"]) == 1  # rounds on the subset, then the confirmation
    assert out.x == draws["full"][0][0]  # the pick is the confirmed rate
    assert out.fte == pytest.approx((0.2 * epochs("subset") + epochs("full")) / 27)
