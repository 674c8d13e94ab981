"""Integration: real sweeps on a real local Ray, through the Python API and through the CLI."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator import cli, config, run_sweep

from .conftest import ROOT


def check_results(folder: Path, max_epochs: int):
    table = pq.read_table(folder / "trials.parquet").to_pylist()
    by_trial: dict[str, list[dict]] = {}
    for row in table:
        by_trial.setdefault(row["trial_id"], []).append(row)
    for rows in by_trial.values():
        epochs = sorted(r["epoch"] for r in rows)
        assert epochs == list(range(1, len(epochs) + 1)), "one row per trial and epoch, none missing"
        assert len({r["status"] for r in rows}) == 1
        status = rows[0]["status"]
        assert status in {"completed", "stopped", "diverged"}
        assert (status == "completed") == (len(rows) == max_epochs) or status == "diverged"
        cfg = json.loads(rows[0]["config"])
        assert cfg["lr"] == rows[0]["lr"] and cfg["round"] == rows[0]["round"]
    return table, by_trial


@pytest.mark.slow
def test_api_sweep_zooms_in_and_stores_results(local_ray, small_config):
    cfg = config.load(small_config("api"))
    summary = run_sweep(cfg, quiet=True)
    folder = summary.folder
    table, by_trial = check_results(folder, max_epochs=4)
    rounds = json.loads((folder / "rounds.json").read_text())
    assert len(rounds["rounds"]) == 2 and rounds["stop_reason"]
    round0 = sorted(rows[0]["lr"] for rows in by_trial.values() if rows[0]["round"] == 0)
    assert round0 == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]  # the coarse grid, one point per decade
    round1 = [rows[0]["lr"] for rows in by_trial.values() if rows[0]["round"] == 1]
    assert round1 and not set(round1) & set(round0)
    # the zoom looked around the best coarse point, and the pick is where SGD+momentum does well on digits
    assert 3e-3 <= summary.lr <= 0.3
    stopped = [rows for rows in by_trial.values() if rows[0]["status"] == "stopped"]
    assert stopped, "ASHA stopped some weak trials early"
    assert summary.epochs == len(table) and summary.fte == pytest.approx(len(table) / 4)
    best = json.loads((folder / "best.json").read_text())
    assert best["lr"] == summary.lr and best["config"]["optimizer"] == "sgd"
    assert (folder / "report.md").read_text().count("| ") > 5


@pytest.mark.slow
def test_cli_run_embedded_ray_then_refuse_overwrite_then_report(small_config, tmp_path):
    path = small_config("cli")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("chosen lr=") and "epochs" in last and str(tmp_path / "runs" / "cli") in last
    folder = tmp_path / "runs" / "cli"
    assert "Pre-flight checks" in (folder / "report.md").read_text()  # `sweep run` checked before fanning out
    before = (folder / "trials.parquet").read_bytes()

    again = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path)],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert (folder / "trials.parquet").read_bytes() == before  # nothing overwritten

    assert cli.main(["report", str(folder)]) == 0
    assert (folder / "val_loss_vs_lr.png").stat().st_size > 5000


def test_report_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "absent")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "trials.parquet").write_bytes(b"PAR1 not really parquet")
    assert cli.main(["report", str(corrupt)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("sweep: error: ") for line in lines)
    assert "no such sweep folder" in lines[0] and "no results" in lines[1] and "corrupt Parquet" in lines[2]


@pytest.mark.parametrize("text, key", [
    ("name: x\nworkload: digits_mlp\nmax_epochs: 0\nspace: {lr: {log: [1e-3, 1e-1]}}\n", "max_epochs"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: [\n", "YAML syntax"),
    ("name: x\nworkload: my.mod:fn\nmax_epochs: 2\nspace: {lr: {log: [1e-3, 1e-1]}}\n", "workload"),
])
def test_cli_bad_config_exit_2_one_line(tmp_path, capsys, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and key in err
    assert not (tmp_path / "runs").exists()


def test_cli_missing_file(capsys):
    assert cli.main(["run", "/nonexistent/sweep.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_over_laws_and_optimizers_applies_each_law(local_ray, tmp_path):
    import yaml

    path = tmp_path / "laws.yaml"
    path.write_text(yaml.safe_dump({
        "name": "laws", "workload": "digits_mlp", "max_epochs": 4, "storage": str(tmp_path / "runs"),
        "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}, "schedule": ["constant", "inverse"],
                  "eps": 0.5, "optimizer": ["momentum", "adam"], "width": 32},
        "asha": {"enabled": False}, "zoom": {"max_rounds": 2, "points_per_round": 2, "groups": 1},
    }))
    summary = run_sweep(config.load(path), quiet=True)
    rows = pq.read_table(summary.folder / "trials.parquet").to_pylist()
    seen = set()
    for r in rows:
        cfg = json.loads(r["config"])
        seen.add((cfg["schedule"], cfg["optimizer"]))
        expected = r["lr"] / (1 + 0.5 * (r["epoch"] - 1)) if cfg["schedule"] == "inverse" else r["lr"]
        assert r["lr_epoch"] == pytest.approx(expected, rel=1e-6)  # the law, applied epoch by epoch
    assert seen == {("constant", "momentum"), ("constant", "adam"), ("inverse", "momentum"), ("inverse", "adam")}
    round1 = {(json.loads(r["config"])["schedule"], json.loads(r["config"])["optimizer"]) for r in rows if r["round"] == 1}
    assert len(round1) == 1  # refined within the best group only
    best = json.loads((summary.folder / "best.json").read_text())
    assert (best["config"]["schedule"], best["config"]["optimizer"]) in seen
