"""Warm start: an old sweep's pick, moved by the batch-scaling rule, narrows the new sweep's round 0."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest

from orchestrator import config, results, reuse, warm

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
        reuse.warm_prior(cfg)
    results.write_json(old / "best.json", {"lr": 0.05, "metric": "val_accuracy", "mode": "max"})
    with pytest.raises(config.ConfigError) as exc:
        reuse.warm_prior(cfg)
    assert "\n" not in str(exc.value) and "val_accuracy (max)" in str(exc.value) and "same metric" in str(exc.value)
    results.write_json(old / "best.json", {"lr": 0.05, "metric": "val_loss", "mode": "min"})
    (old / "sweep.yaml").write_text("name: old\nspace: {batch_size: 32}\n")
    p = reuse.warm_prior(
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
    p = reuse.warm_prior(cfg)
    assert p is not None and p.factor == pytest.approx(4) and p.x == pytest.approx(math.log10(0.04))
    with pytest.raises(config.ConfigError, match="no sweep there"):
        reuse.warm_prior(config.parse({**BASE, "warm_start": {"run": s3.uri("runs/absent")}}))


# the old sweep's trials: one group, val_loss at x = log10(lr); 10^-1 diverged (the cliff), picked 0.01
OLD = {-3.0: 0.5, -2.5: 0.35, -2.0: 0.3, -1.5: 0.32, -1.0: math.inf}


def old_sweep(write, batch: int = 32, metric: str = "val_loss", mode: str = "min") -> None:
    """An old finished sweep (``OLD``) written file by file through ``write(name, bytes)``."""
    rows = []
    for i, (x, v) in enumerate(OLD.items()):
        config = json.dumps({"workload": "digits_mlp", "lr": 10**x, "round": 0, "group": 0})
        for e in (1, 2):
            value = v if math.isfinite(v) else math.nan
            rows.append(
                {
                    "trial_id": f"t{i}",
                    "round": 0,
                    "group": 0,
                    "lr": 10**x,
                    "status": "completed" if math.isfinite(v) else "diverged",
                    "config": config,
                    "epoch": e,
                    "val_loss": value,
                    "train_loss": value,
                    "val_error": value,
                    "metric": value,
                }
            )
    with tempfile.TemporaryDirectory() as tmp:
        results.write_trials(Path(tmp), rows)
        write(results.TRIALS, (Path(tmp) / results.TRIALS).read_bytes())
    rounds = {"metric": metric, "mode": mode, "param": "lr", "max_epochs": 2, "stop_reason": "round budget spent"}
    write(results.ROUNDS, json.dumps({**rounds, "rounds": [{"index": 0, "points": 5}]}).encode())
    write("best.json", json.dumps({"lr": 0.01, "metric": metric, "mode": mode}).encode())
    write("sweep.yaml", f"name: old\nspace: {{batch_size: {batch}}}\n".encode())


def _to_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return lambda name, data: (folder / name).write_bytes(data)


def test_the_old_cliff_moves_with_the_pick_and_round_0_goes_no_higher(tmp_path):
    """The cliff (the lowest rate above the best that diverged) is moved by the batch rule like the pick;
    round 0 ends at it (nothing above), and the prior says where it came from and by how much."""
    from orchestrator import zoom

    obs = [zoom.Observation.of(0, x, 0, [v, v], done=True) for x, v in OLD.items()]
    assert warm.cliff_of(obs) == pytest.approx(-1.0)
    assert warm.cliff_of([o for o in obs if o.x < -1]) is None  # no cliff seen: nothing known above
    bad = [zoom.Observation.of(1, x, 0, [1.0, 1.0], done=True) for x in (-3.0, -2.0)]  # group 1: no cliff
    assert warm.cliff_of(obs + bad) is None

    old = tmp_path / "runs" / "a"
    old_sweep(_to_folder(old))
    new = {**BASE, "space": {**BASE["space"], "lr": {"log": [1e-4, 10]}, "batch_size": 64}}
    p = reuse.warm_prior(config.parse({**new, "warm_start": {"run": str(old), "scaling": "sqrt", "width": 2}}))
    assert p is not None and p.factor == pytest.approx(math.sqrt(2))
    moved = -1 + math.log10(math.sqrt(2))
    assert p.cliff == pytest.approx(moved) and p.high == pytest.approx(moved)  # not x + 2, a decade above
    assert p.low == pytest.approx(p.x - 2) and p.x == pytest.approx(math.log10(0.01 * math.sqrt(2)))
    assert p.text.startswith(f"warm-started from {old} (batch 32 -> 64, sqrt: prior x1.41); its cliff moved to lr")
    assert warm.prior(0.01, 32, 32, -4, 1, cliff=-1, run="r").text == (
        "warm-started from r (batch 32 unchanged: prior not scaled); its cliff moved to lr 0.1: nothing above it "
        "is tried"
    )
    # the cliff below the whole window: round 0 shrinks to its low end, never upside down
    low = warm.prior(0.01, None, None, -4, 1, width=0.5, cliff=-2.7)
    assert low.low == low.high == pytest.approx(-2.5) and low.x == pytest.approx(-2.5)


def _refused(capsys, argv: list[str], *words: str) -> None:
    from orchestrator import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweep: error:"), err
    assert all(w in err for w in words), err


def test_from_is_refused_in_one_line_before_ray_starts(tmp_path, capsys):
    """``sweep run CONFIG --from RUN``: another warm_start.run in the config, no sweep at RUN, another metric."""
    import yaml

    old, other = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    old_sweep(_to_folder(old))
    old_sweep(_to_folder(other), metric="val_accuracy", mode="max")
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump({**BASE, "storage": str(tmp_path / "runs"), "warm_start": {"run": str(other)}}))
    _refused(capsys, ["run", str(path), "--from", str(old)], f"--from {old}", f"already warm-starts from {other}")
    _refused(capsys, ["run", str(path), "--from", str(other)], "--from: ", "val_accuracy (max)", "same metric")
    path.write_text(yaml.safe_dump({**BASE, "storage": str(tmp_path / "runs")}))
    _refused(capsys, ["run", str(path), "--from", str(tmp_path / "absent")], "--from: ", "no finished sweep there")
    assert not (tmp_path / "runs" / "new").exists()  # nothing claimed, no pre-flight trained


def test_a_warm_start_from_a_uri_on_a_real_ray_tries_nothing_above_the_moved_cliff(local_ray, s3, tmp_path, capsys):
    """``sweep run CONFIG --from s3://...`` (the moto server): round 0 around the moved pick and below the moved
    cliff; best.json, report.md and the final line say where it started from and how the prior moved."""
    import yaml

    from orchestrator import cli

    old_sweep(lambda name, data: s3.write(f"runs/old/{name}", data))
    new = {
        **BASE,
        "max_epochs": 1,
        "storage": str(tmp_path / "runs"),
        "asha": {"enabled": False},
        "space": {**BASE["space"], "lr": {"log": [1e-4, 10]}, "batch_size": 64},
        "zoom": {"max_rounds": 1},
        "warm_start": {"run": s3.uri("runs/old"), "scaling": "sqrt", "width": 2},  # the same run as --from
    }
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(new))
    assert cli.main(["run", str(path), "--from", s3.uri("runs/old"), "--no-check", "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    folder = tmp_path / "runs" / "new"
    moved = -1 + math.log10(math.sqrt(2))
    rates = {r["lr"] for r in results.read_trials(folder)}
    assert len(rates) == 4 and max(rates) == pytest.approx(10**moved, rel=1e-3)  # without the cliff: 5, to 10^0.15
    best = json.loads((folder / "best.json").read_text())
    said = best["warm_start"]
    assert "(batch 32 -> 64, sqrt: prior x1.41); its cliff moved to lr 0.141" in said and "testing" not in said
    assert said in line and f"- Warm start: {said}" in (folder / "report.md").read_text()
    assert f"cost: {best['cost']['text']}, " in line  # the real units, worded as in best.json


def test_sweep_report_of_a_uri_says_the_sweep_was_warm_started(s3, tmp_path, capsys):
    """warm_start.json travels with the results (``storage.INPUTS``): a report built from a downloaded copy,
    like an extension's, keeps the warm start in best.json and the final line."""
    from orchestrator import cli

    old_sweep(lambda name, data: s3.write(f"runs/w/{name}", data))
    said = "warm-started from runs/a (batch 32 -> 64, sqrt: prior x1.41)"
    s3.write("runs/w/warm_start.json", json.dumps({"run": "runs/a", "text": said}).encode())
    assert cli.main(["report", s3.uri("runs/w"), "--out", str(tmp_path / "copy")]) == 0
    assert said in capsys.readouterr().out.strip().splitlines()[-2]
    assert json.loads((tmp_path / "copy" / "w" / "best.json").read_text())["warm_start"] == said
