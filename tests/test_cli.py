"""Small CLI paths, in-process (`main() -> int`), and the trainable's edge cases."""
import copy
import shutil
import struct
import subprocess

import pytest

from orchestrator import cli
from orchestrator.trial import run_epochs

from .conftest import ROOT


def test_schedules_lists_every_law_and_plots(tmp_path, capsys):
    import schedules

    png = tmp_path / "laws.png"
    assert cli.main(["schedules", "--plot", str(png), "--epochs", "50"]) == 0
    out = capsys.readouterr().out
    for name in schedules.LAWS:
        assert name in out
    assert "Robbins" in out or "RM" in out or "robbins" in out.lower()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 300 <= width <= 4000 and 200 <= height <= 4000


def test_unknown_subcommand_is_exit_2(capsys):
    assert cli.main(["frobnicate"]) == 2


def test_a_trial_restored_with_no_epochs_left_finishes_at_once():
    config = {"workload": "digits_mlp", "lr": 0.01, "max_epochs": 2, "checkpoint_every": 1}
    saved = []
    run_epochs(config, report=lambda metrics, state: saved.append(state))
    assert saved[-1]["epoch"] == 2
    calls = []
    assert run_epochs(config, report=lambda m, s: calls.append(m), state=saved[-1]) == []
    assert calls == []


def test_a_restored_trial_continues_the_same_curve():
    config = {"workload": "digits_mlp", "lr": 0.02, "momentum": 0.9, "max_epochs": 4, "checkpoint_every": 1,
              "schedule": "inverse", "eps": 0.3}
    full, states = [], []
    # deep copies: a state holds live tensors (the trainable writes it to disk at once)
    run_epochs(config, report=lambda m, s: (full.append(m), states.append(copy.deepcopy(s))))
    assert [m["epoch"] for m in states[1]["history"]] == [1, 2]  # a checkpoint carries the results so far
    resumed = run_epochs(config, report=lambda m, s: states.append(s), state=states[1])
    assert [m["epoch"] for m in resumed] == [3, 4]
    assert states[-1]["history"][:2] == full[:2] and [m["epoch"] for m in states[-1]["history"]] == [1, 2, 3, 4]
    assert [m["val_loss"] for m in resumed] == pytest.approx([m["val_loss"] for m in full[2:]], rel=1e-6)
    assert [m["lr_epoch"] for m in resumed] == pytest.approx([m["lr_epoch"] for m in full[2:]])


def test_make_demo_installs_without_the_test_extras(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    venv = tmp_path / "venv"  # absent: make -n lists every step of a fresh install, runs none
    out = subprocess.run(["make", "-n", "demo", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    installs = [line for line in out.splitlines() if " pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 1 and installs[0].endswith(" -e ."), out
    assert "constraints.txt" in installs[0] and "constraints-test" not in out and "[test" not in out
    assert f"{venv}/bin/sweep run examples/digits.yaml" in out
