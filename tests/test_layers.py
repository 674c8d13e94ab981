"""The layers hold: the import contract in pyproject.toml (import-linter), one home for each exception, and
the commands that need no Ray (``sweep schedules``, ``sweep report``, ``sweep tensorboard``'s refusals) run
in a process where ``import ray`` fails."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import connect, jobs
from orchestrator import config, errors, lease, results, storage, tuning
from tests.test_report import make_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contract_in_pyproject_is_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), f"{exe}: import-linter is in the test extra (pip install -e '.[test]')"
    proc = subprocess.run(
        [str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Pure modules import neither Ray nor torch KEPT" in proc.stdout and "0 broken" in proc.stdout


def test_the_import_contract_catches_a_module_that_imports_ray(tmp_path):
    """The same kind of contract on a Ray-edge module breaks: the check sees imports, it is not vacuous."""
    exe = Path(sys.executable).with_name("lint-imports")
    toml = tmp_path / "contract.toml"
    toml.write_text(
        '[tool.importlinter]\nroot_packages = ["orchestrator"]\ninclude_external_packages = true\n\n'
        '[[tool.importlinter.contracts]]\nname = "edge"\ntype = "forbidden"\n'
        'source_modules = ["orchestrator.board", "orchestrator.searcher"]\nforbidden_modules = ["ray"]\n'
    )
    proc = subprocess.run([str(exe), "--config", str(toml)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "orchestrator.board is not allowed to import ray" in proc.stdout
    assert "orchestrator.searcher is not allowed to import ray" in proc.stdout


def test_each_exception_has_one_home():
    for module, name in (
        (config, "ConfigError"),
        (storage, "StorageError"),
        (lease, "LeaseHeldError"),
        (results, "ResultsError"),
        (results, "NoMetricError"),
        (tuning, "SweepExistsError"),
        (tuning, "SweepInterrupted"),
        (connect, "AddressError"),
        (jobs, "AddressError"),
        (connect, "ClusterUnreachableError"),
        (jobs, "JobsInputError"),
        (jobs, "JobsError"),
    ):
        assert getattr(module, name) is getattr(errors, name), f"{module.__name__}.{name}"
    with pytest.raises(errors.RunAddressError):  # one AddressError; its two kinds are told apart by name
        connect.resolve_address("http://head:8265")
    with pytest.raises(errors.JobsAddressError):
        jobs.dashboard_address("ray://head:10001")
    assert [int(c) for c in errors.ExitCode] == [0, 1, 2, 3, 130]


@pytest.fixture()
def no_ray(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import ray`` raises ImportError (a ``ray`` package ahead of the real one)."""
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("ray is not installed on this machine (test)")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow.parent), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ray is not installed" in proc.stderr  # the shadow works
    return env


def sweep(env: dict[str, str], *argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_schedules_and_report_run_where_ray_cannot_be_imported(no_ray, tmp_path):
    proc = sweep(no_ray, "schedules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cosine" in proc.stdout and "ray" not in proc.stderr.lower()

    folder = make_sweep(tmp_path / "runs" / "synth")
    proc = sweep(no_ray, "report", str(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (folder / "report.md").is_file() and (folder / "best.json").is_file()
    assert f"report: {folder / 'report.md'}" in proc.stdout

    proc = sweep(no_ray, "report", str(tmp_path / "absent"))  # bad input: still one line, exit 2
    assert proc.returncode == errors.ExitCode.BAD_INPUT
    assert proc.stderr.startswith("sweep: error: ") and len(proc.stderr.strip().splitlines()) == 1

    proc = sweep(no_ray, "tensorboard", str(tmp_path / "absent"))
    assert proc.returncode == errors.ExitCode.BAD_INPUT and "no such sweep folder" in proc.stderr


def test_objects_pickled_under_the_old_module_names_still_load(tmp_path):
    """A sweep folder made before the split holds callbacks pickled as ``orchestrator.monitor.*`` (tuner.pkl)
    and a searcher state as ``orchestrator.searcher.*``, one made before ``tbnames`` a ``Searched`` as
    ``orchestrator.progress.Searched``: resuming it must unpickle them."""
    from orchestrator import board, progress, state, tbnames, zoom

    rules = zoom.Rules(
        low=-3.0, high=-1.0, spacing=1.0, max_epochs=3, max_rounds=2, points_per_round=2, resolution=0.1, tolerance=0.0
    )
    s = state.SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=3, groups=[{}], base={})
    s.next_config("t0")
    sb = board.SweepBoard(tmp_path)
    sb.tally.add("t0", {"lr": 0.01})
    old_state = pickle.dumps(s, protocol=0).replace(b"corchestrator.state\n", b"corchestrator.searcher\n")
    old_board = (
        pickle.dumps(sb, protocol=0)
        .replace(b"corchestrator.board\n", b"corchestrator.monitor\n")
        .replace(b"corchestrator.progress\n", b"corchestrator.monitor\n")
    )
    assert b"orchestrator.state" not in old_state and b"orchestrator.board" not in old_board
    assert b"orchestrator.progress" not in old_board
    s2, sb2 = pickle.loads(old_state), pickle.loads(old_board)
    assert isinstance(s2, state.SweepState) and s2.trials["t0"].config == s.trials["t0"].config
    assert isinstance(sb2, board.SweepBoard) and isinstance(sb2.tally, progress.Tally)
    assert sb2.tally.trials["t0"].lr == 0.01

    searched = tbnames.Searched(param="lr", low=-3.0, high=-1.0, grid=(("optimizer", ("sgd", "adam")),))
    before_tbnames = pickle.dumps(board.SweepBoard(tmp_path, searched=searched), protocol=0)
    before_tbnames = before_tbnames.replace(b"corchestrator.tbnames\n", b"corchestrator.progress\n")
    assert b"orchestrator.tbnames" not in before_tbnames
    assert pickle.loads(before_tbnames).searched == searched
