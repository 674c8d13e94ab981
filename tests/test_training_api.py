"""The training-function API (``train:`` + ``orchestrator.Trial``): the example on a real local Ray, resume
from a checkpoint, and the one-line errors for a function that breaks the contract (issue #14 items 1, 6).
The functions below are referenced from configs as ``tests.test_training_api:NAME``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from orchestrator import config
from orchestrator.checkpoints import CHECKPOINT_FILE, load_state
from orchestrator.config import ConfigError
from orchestrator.session import TrainingError, Trial
from orchestrator.trial import run_training

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples.custom_loop:train"


def _params() -> list[torch.Tensor]:
    return [torch.zeros(2, requires_grad=True)]


# --- training functions that break the contract, one way each ---------------------------------------------
def never_reports(config: dict, trial: Trial) -> None:
    trial.optimizer(_params())


def wrong_key(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        trial.report(val_los=0.5)


def missing_metric(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        trial.report(accuracy=0.5)


def text_metric(config: dict, trial: Trial) -> None:
    trial.report(val_loss="low")


def skips_a_report(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        pass


def reports_twice(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        trial.report(val_loss=1.0)
        trial.report(val_loss=0.9)


def reports_too_often(config: dict, trial: Trial) -> None:
    for _ in range(trial.max_epochs + 1):
        trial.report(val_loss=1.0)


def raises(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        trial.report(val_loss=1.0 / 0)


def saves_an_object(config: dict, trial: Trial) -> None:
    trial.checkpoint({"model": {"w": torch.zeros(1)}, "sampler": object()})


def saves_the_epoch(config: dict, trial: Trial) -> None:
    trial.checkpoint({"epoch": 3})


def ignores_the_checkpoint(config: dict, trial: Trial) -> None:
    for _ in trial.epochs():
        trial.report(val_loss=1.0)


def goes_nan(config: dict, trial: Trial) -> None:
    for epoch in trial.epochs():
        trial.report(val_loss=math.nan if epoch == 1 else 2.0, note=torch.tensor(7.0))
        config["after"] = epoch  # not reached after the non-finite report


def flaky(config: dict, trial: Trial) -> None:
    """The example, except: raises at lr 1e-3 and reports a NaN loss from lr 1 on (a sweep goes on)."""
    if math.isclose(trial.lr, 1e-3):
        raise RuntimeError("deliberate failure at lr 1e-3")
    if trial.lr >= 1:
        trial.optimizer(_params())
        trial.report(val_loss=math.nan)
    from examples.custom_loop import train

    train(config, trial)


def _run(name: str, state: dict | None = None, **extra):
    return run_training({"train": f"tests.test_training_api:{name}", "lr": 0.1, "max_epochs": 2, **extra}, state=state)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "never_reports",
            "returned without calling trial.report(); expected trial.report(val_loss=...) once per epoch",
        ),
        ("wrong_key", "trial.report(val_los=...) has no 'val_loss' (is 'val_los' it?); expected the sweep's metric"),
        ("missing_metric", "trial.report(accuracy=...) has no 'val_loss'; expected the sweep's metric in every report"),
        ("text_metric", "trial.report(val_loss=str); expected a number"),
        ("skips_a_report", "epoch 1 of 2 ended without trial.report(); expected trial.report(val_loss=...) once"),
        ("reports_twice", "trial.report() called 2 times in epoch 1; expected once per epoch"),
        ("reports_too_often", "trial.report() after the last epoch; expected at most max_epochs=2 reports"),
        ("raises", "raised ZeroDivisionError in epoch 1: float division by zero"),
        ("saves_an_object", "trial.checkpoint: state['sampler'] is a object; expected tensors, dicts, lists"),
        ("saves_the_epoch", "trial.checkpoint(state): key 'epoch' is the trial's own"),
    ],
)
def test_a_function_that_breaks_the_contract_errors_with_one_line_naming_it(name, expected):
    with pytest.raises(TrainingError) as caught:
        _run(name)
    text = str(caught.value)
    assert text.startswith(f"train='tests.test_training_api:{name}'") and expected in text, text
    assert "\n" not in text


def test_a_resumed_function_must_restore_its_state_before_it_reports():
    state = {"epoch": 1, "history": [{"epoch": 1, "val_loss": 1.0}], "model": {"w": torch.zeros(1)}}
    with pytest.raises(TrainingError, match=r"resumed from a checkpoint at epoch 1 but never called trial.restore"):
        _run("ignores_the_checkpoint", state=state)
    assert len(_run("ignores_the_checkpoint", state={"epoch": 1, "history": []})) == 1  # nothing to restore


def test_a_non_finite_metric_ends_the_trial_as_diverged_with_one_line(capsys):
    history = _run("goes_nan", max_epochs=4)
    assert [r["epoch"] for r in history] == [1, 2]  # ended at the NaN: no third epoch
    assert history[0]["note"] == 7.0 and isinstance(history[0]["note"], float)  # a 0-d tensor sent as a number
    assert history[1]["diverged"] is True and history[1]["val_loss"] == math.inf  # the worst value under min
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train='tests.test_training_api:goes_nan'" in err[0], err
    assert "trial.report(val_loss=nan) in epoch 2: expected a finite number; the trial ends as diverged" in err[0]
    # the worst value follows the sweep's direction: -inf when the metric is maximised
    trial = Trial({"lr": 0.1, "max_epochs": 1}, metric="val_accuracy", mode="max")
    with pytest.raises(BaseException) as ended:
        trial.report(val_accuracy=math.nan)
    assert not isinstance(ended.value, Exception)  # a user's `except Exception` does not swallow it
    assert trial.history[0]["val_accuracy"] == -math.inf and trial.history[0]["diverged"] is True


def test_the_example_resumes_from_its_checkpoint_exactly(tmp_path):
    """The trainable's path in plain torch: states saved as the trainable saves them, loaded with
    weights_only, the function called again with one: it runs the epochs left, as the full run did."""
    cfg = {
        "train": EXAMPLE,
        "lr": 0.05,
        "optimizer": "momentum",
        "max_epochs": 3,
        "checkpoint_every": 1,
        "schedule": "inverse",
        "eps": 0.5,
        "width": 16,
    }
    saved = {}

    def sink(metrics, state):
        if state is not None:
            folder = tmp_path / f"checkpoint_{metrics['epoch']:06d}"
            folder.mkdir()
            torch.save(state, folder / CHECKPOINT_FILE)
            saved[metrics["epoch"]] = folder

    full = run_training(cfg, sink)
    assert [r["epoch"] for r in full] == [1, 2, 3] and sorted(saved) == [1, 2, 3]
    assert full[0]["val_accuracy"] > 0.5 and full[2]["val_loss"] < full[0]["val_loss"]
    assert [r["lr_epoch"] for r in full] == pytest.approx([0.05, 0.05 / 1.5, 0.05 / 2])  # the law, per epoch
    state = load_state(str(saved[2]))
    assert sorted(state) == ["epoch", "generator", "history", "model", "optimizer", "schedule"]
    assert state["epoch"] == 2 and [r["epoch"] for r in state["history"]] == [1, 2]
    resumed = run_training(cfg, state=state)
    assert [r["epoch"] for r in resumed] == [3]
    assert resumed[0]["lr_epoch"] == pytest.approx(full[2]["lr_epoch"])
    assert resumed[0]["val_loss"] == pytest.approx(full[2]["val_loss"], rel=1e-6)
    assert run_training(cfg, state=load_state(str(saved[3]))) == []  # all done: nothing to train again


def test_train_and_workload_are_exclusive_and_train_must_name_a_function():
    base = {"name": "x", "max_epochs": 2, "space": {"lr": {"log": [1e-3, 1e-1]}}}
    both = {**base, "workload": "digits_mlp", "train": EXAMPLE}
    for data, expected in [
        (both, "<config>: train: give either workload: (a built-in or"),
        (base, "<config>: workload: required key is missing (or train: 'package.module:function'"),
        ({**base, "train": "digits_mlp"}, "<config>: train='digits_mlp': expected 'package.module:function'"),
        ({**base, "train": "examples.custom_loop:nothing"}, "<config>: train='examples.custom_loop:nothing': module"),
        (
            {**base, "train": EXAMPLE, "space": {"lr": {"log": [1e-3, 1e-1]}, "clipp": 1}},
            "<config>: space.clipp: unknown key, neither the trial nor the training function "
            "examples.custom_loop:train",
        ),
    ]:
        with pytest.raises(ConfigError) as caught:
            config.parse(data)
        assert str(caught.value).startswith(expected) and "\n" not in str(caught.value), str(caught.value)
    cfg = config.load(ROOT / "examples" / "custom-loop.yaml")
    assert cfg.train == EXAMPLE and cfg.workload is None
    assert config.loads(config.dump(cfg)) == cfg.model_copy(update={"storage": "runs"})
    assert "workload" not in config.dump(cfg)


def test_sweep_check_finds_the_example_from_the_repository_root():
    """`sweep` run from the repository root imports examples/ (the current folder), with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sweep = Path(sys.executable).parent / "sweep"
    out = subprocess.run(
        [str(sweep), "check", "examples/custom-loop.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "no pre-flight checks: train: examples.custom_loop:train is a training function "
        "(the checks need a workload: returning a Workload)"
    )


def test_a_sweep_of_training_functions_runs_on_ray_and_goes_on_past_a_broken_trial(local_ray, tmp_path, capsys):
    from orchestrator import cli

    data = yaml.safe_load((ROOT / "examples" / "custom-loop.yaml").read_text())
    data.update(
        name="custom",
        train="tests.test_training_api:flaky",
        storage=str(tmp_path / "runs"),
        max_epochs=2,
        checkpoint_every=1,
        max_failures=0,
        asha={"enabled": False},
        zoom={"max_rounds": 1},
    )
    data["space"]["lr"] = {"log": [1e-3, 10], "per_decade": 0.5}  # 1e-3, 1e-1, 10
    data["space"]["width"] = 16
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--quiet"]) == 0
    folder = tmp_path / "runs" / "custom"
    import pyarrow.parquet as pq

    rows = pq.read_table(folder / "trials.parquet").to_pylist()
    status = {r["lr"]: r["status"] for r in rows}
    assert status == {1e-3: "errored", 1e-1: "completed", 10.0: "diverged"}, status
    (error,) = {r["error"] for r in rows if r["status"] == "errored"}
    assert "TrainingError: train='tests.test_training_api:flaky' raised RuntimeError in epoch 1: deliberate" in error
    ran = [r for r in rows if r["lr"] == 1e-1]
    assert [r["epoch"] for r in ran] == [1, 2] and all(0 < r["val_loss"] < 1 for r in ran)
    assert json.loads(ran[0]["config"])["train"] == "tests.test_training_api:flaky"
    best = json.loads((folder / "best.json").read_text())
    assert best["metric"] == "val_loss" and best["best_trial"]["lr"] == pytest.approx(1e-1)
    checkpoints = sorted(folder.rglob(CHECKPOINT_FILE))
    assert checkpoints and load_state(str(checkpoints[-1].parent))["epoch"] >= 1
