"""Small CLI paths, in-process (`main() -> int`), and the trainable's edge cases."""

import copy
import shutil
import struct
import subprocess
from pathlib import Path

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
    config = {
        "workload": "digits_mlp",
        "lr": 0.02,
        "momentum": 0.9,
        "max_epochs": 4,
        "checkpoint_every": 1,
        "schedule": "inverse",
        "eps": 0.3,
    }
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
    out = subprocess.run(
        ["make", "-n", "demo", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in out.splitlines() if " pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 1 and installs[0].endswith(" -e ."), out
    assert "constraints.txt" in installs[0] and "constraints-test" not in out and "[test" not in out
    assert f"{venv}/bin/sweep run examples/digits.yaml" in out


# --- overrides, resume, Ctrl-C at start-up, Ray's own lines (issue #15, items 12-14) --------------------
def _demo(tmp_path, workload="digits_mlp", name="demo"):
    path = tmp_path / "demo.yaml"
    path.write_text(
        f"name: {name}\nworkload: {workload}\nmax_epochs: 3\nstorage: {tmp_path / 'runs'}\n"
        "space: {lr: {log: [1e-3, 1e-1]}, optimizer: sgd}\n"
    )
    return path


def test_name_and_set_override_the_file_and_are_checked_like_it(tmp_path, capsys):
    from orchestrator import config

    path = _demo(tmp_path)
    args = cli.build_parser().parse_args(
        [
            "run",
            str(path),
            "--name",
            "007",
            "--set",
            "space.optimizer=adam",
            "--set",
            "max_epochs=5",
            "--set",
            "zoom.max_rounds=3",
        ]
    )
    cfg, text = cli.load(args)
    assert (cfg.name, cfg.space["optimizer"], cfg.max_epochs, cfg.zoom.max_rounds) == ("007", "adam", 5, 3)
    assert config.loads(text) == cfg  # the text stored as sweep.yaml is the effective config
    assert text.startswith(f"# {path} with --name 007 --set space.optimizer=adam --set max_epochs=5")
    assert cli.resume_command(args) == (
        f"sweep run {path} --name 007 --set space.optimizer=adam --set max_epochs=5 --set zoom.max_rounds=3 --resume"
    )
    for flags, expected in [
        (["--set", "space.optimizer=sgdd"], f"{path} (with --set space.optimizer=sgdd): space.optimizer: 'sgdd'"),
        (["--set", "space.optimiser=adam"], "space.optimiser: unknown key"),
        (["--set", "max_epochs"], "--set 'max_epochs': expected KEY=VALUE"),
        (["--set", "space.lr.log.low=1"], "--set 'space.lr.log.low=1': space.lr.log is [0.001, 0.1]"),
        (["--name", "../up"], "(with --name ../up): name: name='../up': expected letters"),
    ]:
        assert cli.main(["check", str(path), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (flags, err)
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_missing_sweep_is_refused_in_one_line(tmp_path, capsys):
    path = _demo(tmp_path)
    assert cli.main(["run", str(path), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"sweep: error: {tmp_path / 'runs' / 'demo'}: nothing to resume (no sweep "
        f"folder there); start the sweep without --resume\n"
    )
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_during_start_up_says_there_is_nothing_to_resume(tmp_path, capsys):
    # a plugin beside the config (found there, whatever the working folder) that is "interrupted" when
    # the pre-flight checks build it: before Ray starts, before the sweep folder exists
    (tmp_path / "interrupting.py").write_text("def make(config):\n    raise KeyboardInterrupt\n")
    path = _demo(tmp_path, workload="interrupting:make")
    assert cli.main(["run", str(path)]) == 130
    err = capsys.readouterr().err
    assert err == f"sweep: error: interrupted before {tmp_path / 'runs' / 'demo'} was created; nothing to resume\n"


def test_ray_warnings_show_with_verbose_only_and_levels_are_restored(caplog):
    import logging

    names = [
        "ray.tune.tune",
        "ray.tune.execution.experiment_state",
        "ray.tune.analysis.experiment_analysis",
        "ray._private.authentication.authentication_token_setup",
    ]
    before = [logging.getLogger(n).getEffectiveLevel() for n in ["ray.tune", *names]]
    with caplog.at_level(logging.INFO):
        for verbose in (False, True):
            with cli.ray_lines(verbose):
                for n in names:
                    logging.getLogger(n).warning("%s says %s", n, verbose)
                logging.getLogger("ray.tune.tune").error("an error shows either way %s", verbose)
    shown = [r.getMessage() for r in caplog.records]
    assert shown == [
        "an error shows either way False",
        *[f"{n} says True" for n in names],
        "an error shows either way True",
    ]
    assert [logging.getLogger(n).getEffectiveLevel() for n in ["ray.tune", *names]] == before


@pytest.mark.slow
def test_the_example_plugin_runs_from_another_folder_with_overrides(tmp_path):
    """examples/plugin as a user copies it: `sweep run` started elsewhere finds blobs.py beside the config, in
    the driver and in the trials; --name/--set reach the sweep and its stored sweep.yaml; Ray's own
    warnings stay out of a run without --verbose."""
    import json
    import os
    import sys

    config = ROOT / "examples" / "plugin" / "blobs.yaml"
    sweep = Path(sys.executable).with_name("sweep")
    command = [str(sweep)] if sweep.exists() else [sys.executable, "-m", "orchestrator.cli"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [
            *command,
            "run",
            str(config),
            "--name",
            "plug",
            "--set",
            f"storage={tmp_path}",
            "--set",
            "max_epochs=3",
            "--set",
            "zoom.max_rounds=1",
            "--set",
            "asha.enabled=false",
            "--set",
            "space.lr={log: [1e-2, 1e-1]}",
            "--set",
            "space.hidden=16",
            "--no-check",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "plug"
    trials = json.loads((folder / "best.json").read_text())
    assert trials["lr"] in (0.01, 0.1)
    import pandas as pd

    rows = pd.read_parquet(folder / "trials.parquet")
    assert set(rows["status"]) == {"completed"} and set(rows["lr"]) == {0.01, 0.1}
    assert all(json.loads(c)["hidden"] == 16 for c in rows["config"])
    stored = (folder / "sweep.yaml").read_text()
    assert stored.startswith(f"# {config} with --name plug --set storage={tmp_path}") and "hidden: 16" in stored
    assert [line for line in done.stderr.splitlines() if not line.startswith(("[sweep", "sweep:"))] == []


def test_the_report_warns_when_the_pick_is_the_highest_rate_tried(tmp_path, capsys):
    from orchestrator import results
    from tests.test_report import GROUPS, MAX_EPOCHS, make_sweep, trial_rows

    folder = tmp_path / "edge"
    folder.mkdir()
    rows = []  # better and better up to the highest rate tried: the best may lie above it
    for i, (lr, v) in enumerate({1e-4: 0.9, 1e-3: 0.6, 1e-2: 0.4, 1e-1: 0.3}.items()):
        rows += [
            {**r, "val_loss": v, "train_loss": v / 2} for r in trial_rows(f"t{i}", 0, 0, lr, MAX_EPOCHS, "completed")
        ]
    results.write_trials(folder, rows)
    results.write_json(
        folder / results.ROUNDS,
        {
            "metric": "val_loss",
            "param": "lr",
            "max_epochs": MAX_EPOCHS,
            "stop_reason": "round budget spent",
            "rounds": [{"index": 0, "points": 4, "reason": "coarse grid", "brackets": {"0": [-2.5, 1.5]}}],
            "groups": [GROUPS[0]],
            "cliff_margin": None,
        },
    )
    assert cli.main(["report", str(folder)]) == 0
    assert (
        "**Warning:** the chosen lr 0.1 is the highest rate tried (0.0001 .. 0.1): the best may lie above it; "
        "widen space.lr past it and run again."
    ) in (folder / "report.md").read_text()
    inside = make_sweep(tmp_path / "inside")  # its pick lies between the rates tried: no warning
    assert cli.main(["report", str(inside)]) == 0
    assert "**Warning:** the chosen" not in (inside / "report.md").read_text()


def test_only_a_folder_holding_tune_state_is_called_resumable(tmp_path):
    from orchestrator import storage

    where = storage.target(str(tmp_path), "s")
    assert not cli.resumable(where)  # no folder (Ctrl-C during start-up): nothing to resume
    where.folder.mkdir()
    (where.folder / "sweep.yaml").write_text("name: s\n")
    assert not cli.resumable(where)  # claimed, but Ctrl-C came before Tune saved anything
    (where.folder / "tuner.pkl").write_bytes(b"")  # what Tune writes first, and Tuner.can_restore asks for
    assert cli.resumable(where)
