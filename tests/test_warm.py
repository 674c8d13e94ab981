"""Warm start: an old sweep's pick, moved by the batch-scaling rule, narrows the new sweep's round 0."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator import config, folder as folders, results, warm

from . import test_storage

moto_endpoint, s3 = test_storage.moto_endpoint, test_storage.s3  # fixtures


def test_prior_moves_the_old_pick_by_the_rule_and_narrows_round_0_inside_the_range():
    p = warm.prior(0.01, 32, 128, low=-6, high=0, scaling="linear")
    assert p.factor == pytest.approx(4) and p.x == pytest.approx(math.log10(0.04))
    assert (p.low, p.high) == pytest.approx((p.x - 1, p.x + 1))
    assert "linear scaling: global batch 32 -> 128, x4" in p.note
    s = warm.prior(0.01, 32, 128, low=-6, high=0, scaling="sqrt", width=0.5)
    assert s.factor == pytest.approx(2) and s.high - s.low == pytest.approx(1.0)
    same = warm.prior(0.01, None, 128, low=-6, high=0)  # the old batch unknown: not scaled
    assert same.factor == 1 and "not scaled" in same.note
    edge = warm.prior(0.5, 32, 32, low=-4, high=-1)  # outside the configured range: clamped into it
    assert (edge.x, edge.low, edge.high) == pytest.approx((-1, -2, -1))
    assert warm.global_batch({"batch_size": 64}, 2) == 128 and warm.global_batch({"batch_size": [32, 64]}, 1) is None
    for bad in (dict(old_lr=0.0), dict(scaling="cube"), dict(width=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            warm.prior(**{"old_lr": 0.01, "old_batch": 1, "new_batch": 2, "low": -4, "high": 0, **bad})


BASE = {
    "name": "new",
    "workload": "digits_mlp",
    "max_epochs": 2,
    "space": {"lr": {"log": [1e-4, 1e-0], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9, "width": 8},
}


def test_a_warm_start_from_another_metric_or_no_finished_sweep_is_refused_in_one_line(tmp_path):
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    cfg = config.parse({**BASE, "warm_start": {"run": str(old)}})
    with pytest.raises(config.ConfigError, match="no finished sweep there"):
        folders.warm_prior(cfg)
    results.write_json(old / "best.json", {"lr": 0.05, "metric": "val_accuracy", "mode": "max"})
    with pytest.raises(config.ConfigError) as exc:
        folders.warm_prior(cfg)
    assert "\n" not in str(exc.value) and "val_accuracy (max)" in str(exc.value) and "same metric" in str(exc.value)
    results.write_json(old / "best.json", {"lr": 0.05, "metric": "val_loss", "mode": "min"})
    (old / "sweep.yaml").write_text("name: old\nspace: {batch_size: 32}\n")
    p = folders.warm_prior(
        config.parse(
            {**BASE, "space": {**BASE["space"], "batch_size": 64}, "warm_start": {"run": str(old), "scaling": "sqrt"}}
        )
    )
    assert p is not None and p.factor == pytest.approx(math.sqrt(2))


@pytest.mark.slow
def test_a_warm_started_sweep_trains_a_narrower_round_0_around_the_moved_pick(local_ray, tmp_path):
    from orchestrator import run_sweep

    store = str(tmp_path / "runs")
    cold = run_sweep(
        config.parse(
            {
                **BASE,
                "name": "cold",
                "storage": store,
                "asha": {"enabled": False},
                "space": {**BASE["space"], "batch_size": 32},
                "zoom": {"max_rounds": 1},
            }
        ),
        quiet=True,
    )
    new = {
        **BASE,
        "storage": store,
        "asha": {"enabled": False},
        "space": {**BASE["space"], "batch_size": 64},
        "zoom": {"max_rounds": 1},
        "warm_start": {"run": str(cold.folder)},
    }
    warm_run = run_sweep(config.parse(new), quiet=True)
    start = json.loads((warm_run.folder / "warm_start.json").read_text())
    assert start["factor"] == pytest.approx(2.0) and start["run"] == str(cold.folder)
    assert start["x"] == pytest.approx(min(0.0, math.log10(cold.lr * 2)))
    rounds = json.loads((warm_run.folder / "rounds.json").read_text())["rounds"]
    assert rounds[0]["points"] < 5 and warm_run.epochs < cold.epochs  # fewer trials than the cold grid's 5


def test_a_warm_start_reads_the_old_sweep_from_a_uri(s3):
    s3.write("runs/old/best.json", json.dumps({"lr": 0.01, "metric": "val_loss", "mode": "min"}).encode())
    s3.write("runs/old/sweep.yaml", b"name: old\nspace: {batch_size: 16}\n")
    cfg = config.parse(
        {**BASE, "space": {**BASE["space"], "batch_size": 64}, "warm_start": {"run": s3.uri("runs/old")}}
    )
    p = folders.warm_prior(cfg)
    assert p is not None and p.factor == pytest.approx(4) and p.x == pytest.approx(math.log10(0.04))
    with pytest.raises(config.ConfigError, match="no sweep there"):
        folders.warm_prior(config.parse({**BASE, "warm_start": {"run": s3.uri("runs/absent")}}))
