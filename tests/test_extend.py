"""``sweep extend``: a finished sweep goes on with more rounds in its own folder, on a real local Ray; no
trial runs again, the new round is a round (results, report, TensorBoard), resume.log records it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import cli, config, reuse

from . import test_storage
from .test_monitor import events

moto_endpoint, s3 = test_storage.moto_endpoint, test_storage.s3  # fixtures

SPEC = {
    "name": "ext",
    "workload": "digits_mlp",
    "max_epochs": 2,
    "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9, "width": 8},
    "asha": {"enabled": False},
    "zoom": {"max_rounds": 2, "points_per_round": 2, "resolution": 0.01},
}


def _rows(folder: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in pq.read_table(folder / "trials.parquet").to_pylist():
        out.setdefault(r["trial_id"], []).append((r["round"], r["epoch"], r["lr"], r["val_loss"]))
    return out


def _refused(capsys, argv: list[str], *words: str) -> None:
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweep: error:"), err
    for w in words:
        assert w in err, err


@pytest.mark.slow
def test_extend_a_finished_sweep_by_one_round_then_refuse_what_adds_nothing(local_ray, tmp_path, capsys):
    from orchestrator import run_sweep

    cfg = config.parse({**SPEC, "storage": str(tmp_path / "runs")})
    run_sweep(cfg, quiet=True, config_text=config.dump(cfg))
    folder = tmp_path / "runs" / "ext"
    before = _rows(folder)
    yaml_before = (folder / "sweep.yaml").read_text()
    assert sorted({v[0][0] for v in before.values()}) == [0, 1]

    # nothing would change, or nothing is there: one line, exit 2, nothing touched
    _refused(capsys, ["extend", str(folder), "--rounds", "2"], "already ran 2 round(s)", "more than 2")
    _refused(capsys, ["extend", str(folder)], "nothing to extend", "--rounds N")
    _refused(capsys, ["extend", str(folder), "--budget-fte", "100"], "round budget spent", "--rounds N")
    _refused(capsys, ["extend", str(tmp_path / "runs" / "absent"), "--rounds", "3"], "no sweep there")
    assert not (folder / "resume.log").exists() and _rows(folder) == before

    assert cli.main(["extend", str(folder), "--rounds", "3", "--quiet"]) == cli.EXIT_OK
    after = _rows(folder)
    assert {t: after[t] for t in before} == before  # no trial ran again, none lost
    new = {t: v for t, v in after.items() if t not in before}
    assert new and {v[0][0] for v in new.values()} == {2}  # the new trials are round 2
    assert all(len(v) == 2 for v in new.values())
    rounds = json.loads((folder / "rounds.json").read_text())
    assert [r["index"] for r in rounds["rounds"]] == [0, 1, 2]
    best = json.loads((folder / "best.json").read_text())
    assert best["stop_reason"] == "round budget spent (3 rounds)"
    assert "extended with zoom.max_rounds -> 3 (2 round(s) had run)" in (folder / "resume.log").read_text()
    assert (folder / "sweep.yaml").read_text() == yaml_before
    assert "| 2 |" in (folder / "report.md").read_text()  # the report's rounds table has round 2
    tb = events(folder / "_sweep")
    assert max(v for _, v in tb["sweep/round"]) == 2  # TensorBoard: round 2 as a round

    # a second extend with --rounds 3 adds nothing: refused; an interrupted sweep is resumed instead
    _refused(capsys, ["extend", str(folder), "--rounds", "3"], "already ran 3 round(s)")
    rounds["stop_reason"] = None
    (folder / "rounds.json").write_text(json.dumps(rounds))
    _refused(capsys, ["extend", str(folder), "--rounds", "4"], "did not finish", "--resume")


def test_locate_a_folder_or_a_uri():
    t = reuse.locate("s3://KEY:SECRET@bucket/runs/ext?endpoint_override=127.0.0.1:9000&scheme=http")
    assert t.uri == "s3://KEY:SECRET@bucket/runs/ext?endpoint_override=127.0.0.1:9000&scheme=http"
    assert t.folder.name == "ext" and "SECRET" not in t.shown
    assert reuse.locate("runs/ext").folder == Path("runs/ext").resolve()


@pytest.mark.slow
def test_extend_a_sweep_stored_at_a_uri_from_a_machine_without_its_local_copy(s3, tmp_path, monkeypatch):
    """A one-round sweep on the moto S3 server, then ``sweep extend URI --rounds 2`` from a fresh cache."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT
    from .test_storage import SWEEP

    path = tmp_path / "s3.yaml"
    path.write_text(SWEEP.format(name="s3ext", storage=s3.uri("runs")).replace("max_epochs: 3", "max_epochs: 2"))
    cmd = [sys.executable, "-m", "orchestrator.cli"]
    run = subprocess.run(
        cmd + ["run", str(path), "--no-check", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first = pq.read_table(pa.BufferReader(s3.read("runs/s3ext/trials.parquet"))).num_rows

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
    done = subprocess.run(
        cmd + ["extend", s3.uri("runs/s3ext"), "--rounds", "2", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("chosen lr=")
    rounds = json.loads(s3.read("runs/s3ext/rounds.json"))
    assert [r["index"] for r in rounds["rounds"]] == [0, 1]
    assert json.loads(s3.read("runs/s3ext/best.json"))["stop_reason"] == "round budget spent (2 rounds)"
    assert "extended with zoom.max_rounds -> 2" in s3.read("runs/s3ext/resume.log").decode()
    assert pq.read_table(pa.BufferReader(s3.read("runs/s3ext/trials.parquet"))).num_rows > first


def test_extension_checks_what_a_finished_sweep_folder_allows_without_ray(tmp_path, capsys):
    """``folder.extension`` on a synthetic finished sweep: what it refuses (one line, nothing written) and
    what it returns and records."""
    from orchestrator import results

    from .test_report import MAX_EPOCHS, make_sweep

    folder = make_sweep(tmp_path / "runs" / "synth")
    spec = {**SPEC, "name": "other", "max_epochs": MAX_EPOCHS, "storage": "elsewhere"}
    (folder / "sweep.yaml").write_text(config.dump(config.parse(spec)))
    where = reuse.locate(folder)

    def finished(reason: str) -> None:
        meta = json.loads((folder / results.ROUNDS).read_text())
        results.write_json(folder / results.ROUNDS, {**meta, "stop_reason": reason})
        results.write_json(folder / "best.json", {"stop_reason": reason})

    def refused(rounds, fte, *words) -> None:
        with pytest.raises(config.ConfigError) as exc:
            reuse.extension(where, reuse.Limits(rounds, fte))
        assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)

    spent = sum(1 for r in results.read_trials(folder) if r.get("epoch") is not None) / MAX_EPOCHS
    finished("round budget spent (2 rounds)")
    refused(2, None, "already ran 2 round(s)")
    refused(None, spent + 10, "round budget spent", "--rounds N")
    refused(3, spent / 2, "--budget-fte", "already spent")
    finished("epoch budget spent (99 >= 98 epochs)")
    refused(3, None, "epoch budget spent", "--budget-fte X")
    finished("bracket narrower than the resolution (0.1 decades)")
    refused(3, None, "ended because bracket narrower", "would not change that")
    results.write_json(folder / "best.json", {"stop_reason": "round budget spent (1 rounds)"})  # an older finish
    refused(3, None, "did not finish", "--resume")
    assert not (folder / "resume.log").exists()

    finished("epoch budget spent (99 >= 98 epochs)")
    cfg, grown = reuse.extension(where, reuse.Limits(3, spent + 1))
    assert grown == {"max_rounds": 3, "budget_epochs": (spent + 1) * MAX_EPOCHS}
    assert (cfg.name, cfg.storage, cfg.zoom.max_rounds, cfg.zoom.budget_fte) == (
        "synth",
        str(folder.parent),
        3,
        spent + 1,
    )
    log = (folder / "resume.log").read_text()
    assert log.count("\n") == 1 and "extended with zoom.max_rounds -> 3 (2 round(s) had run)" in log
    assert "[sweep] extended with" in capsys.readouterr().out


def test_a_sweep_ended_by_a_wall_clock_or_gpu_hour_budget_extends_with_a_larger_one(tmp_path):
    """``--budget-wall-s`` / ``--budget-gpu-hours``: a new total above the limit that ended the sweep; refused
    (one line) when missing, not larger, or for a search a budget did not end."""
    from orchestrator import results
    from orchestrator.budget import Budget, OnBudget

    from .test_report import MAX_EPOCHS, make_sweep

    folder = make_sweep(tmp_path / "runs" / "wall")
    zoom = {**SPEC["zoom"], "budget_wall_s": 60, "budget_gpu_hours": 2, "on_budget": "stop"}
    (folder / "sweep.yaml").write_text(config.dump(config.parse({**SPEC, "max_epochs": MAX_EPOCHS, "zoom": zoom})))
    where = reuse.locate(folder)

    def ended(reason: str) -> None:
        meta = json.loads((folder / results.ROUNDS).read_text())
        results.write_json(folder / results.ROUNDS, {**meta, "stop_reason": reason})
        results.write_json(folder / "best.json", {"stop_reason": reason})

    def refused(limits: reuse.Limits, *words: str) -> None:
        with pytest.raises(config.ConfigError) as exc:
            reuse.extension(where, limits)
        assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)

    ended("wall-clock budget spent (61 s >= 60 s)")
    refused(reuse.Limits(rounds=5), "wall-clock budget spent", "give --budget-wall-s S (a larger total)")
    refused(reuse.Limits(wall_s=60), "--budget-wall-s 60: its limit was 60 s", "expected more than 60")
    cfg, grown = reuse.extension(where, reuse.Limits(wall_s=600), quiet=True)
    assert cfg.zoom.budget_wall_s == 600 and grown == {"budget": Budget(600, 2, OnBudget.STOP)}
    assert "zoom.budget_wall_s 60 -> 600" in (folder / "resume.log").read_text()
    ended("round budget spent (2 rounds); then GPU-hour budget spent (2.1 >= 2 GPU-hours)")
    refused(reuse.Limits(rounds=3), "give --budget-gpu-hours H (a larger total)")
    refused(reuse.Limits(rounds=3, gpu_hours=1.5), "its limit was 2 GPU-hours")
    cfg, grown = reuse.extension(where, reuse.Limits(rounds=3, gpu_hours=4), quiet=True)
    assert grown == {"max_rounds": 3, "budget": Budget(60, 4, OnBudget.STOP)}
    with pytest.raises(ValueError, match="wall_s=-1"):
        reuse.Limits(wall_s=-1)


@pytest.mark.slow
def test_a_sweep_a_wall_clock_budget_ended_goes_on_with_budget_wall_s(local_ray, tmp_path, capsys):
    """On a real local Ray: a 1-second wall budget ends the sweep in round 0; ``sweep extend --budget-wall-s``
    plans round 1 in the same folder; the final line gives the cost in the units and words of best.json."""
    from orchestrator import run_sweep

    zoom = {**SPEC["zoom"], "budget_wall_s": 1}
    cfg = config.parse({**SPEC, "name": "wall", "storage": str(tmp_path / "runs"), "zoom": zoom})
    first = run_sweep(cfg, quiet=True, config_text=config.dump(cfg))
    folder = first.folder
    assert json.loads((folder / "best.json").read_text())["stop_reason"].startswith("wall-clock budget spent")
    before = _rows(folder)
    _refused(capsys, ["extend", str(folder), "--rounds", "3"], "wall-clock budget spent", "--budget-wall-s S")

    assert cli.main(["extend", str(folder), "--budget-wall-s", "3600", "--quiet"]) == cli.EXIT_OK
    line = capsys.readouterr().out.strip().splitlines()[-1]
    after = _rows(folder)
    assert {t: after[t] for t in before} == before and len(after) > len(before)
    best = json.loads((folder / "best.json").read_text())
    assert best["stop_reason"] == "round budget spent (2 rounds)"
    assert "extended with zoom.budget_wall_s 1 -> 3600" in (folder / "resume.log").read_text()
    said = best["cost"]["text"]
    assert said.startswith("training span ") and " trial-hours" in said and f"cost: {said}, " in line
    md = next(x for x in (folder / "report.md").read_text().splitlines() if x.startswith("- Cost in real units: "))
    assert all(part in md for part in said.split(", "))  # the same words as report.md's cost line


def test_a_resume_that_raises_the_budget_of_an_ended_sweep_points_to_the_extend_flag(tmp_path):
    from orchestrator import folder as folders, results

    from .test_report import MAX_EPOCHS, make_sweep

    folder = make_sweep(tmp_path / "runs" / "wall")
    spec = {**SPEC, "name": "wall", "max_epochs": MAX_EPOCHS, "storage": str(tmp_path / "runs")}
    (folder / "sweep.yaml").write_text(config.dump(config.parse({**spec, "zoom": {"budget_wall_s": 60}})))
    meta = json.loads((folder / results.ROUNDS).read_text())
    results.write_json(folder / results.ROUNDS, {**meta, "stop_reason": "wall-clock budget spent (61 s >= 60 s)"})
    with pytest.raises(config.ConfigError) as exc:
        folders.check_resume(config.parse({**spec, "zoom": {"budget_wall_s": 600}}), folder, str(folder), quiet=True)
    assert "\n" not in str(exc.value) and f"sweep extend {folder} --rounds N (or" in str(exc.value)
    assert "--budget-wall-s S" in str(exc.value)
