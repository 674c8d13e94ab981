"""A ``state.pt`` planted in the storage must not run code: checkpoints are loaded with
``torch.load(weights_only=True)`` on the worker (a trial's retry) and on the driver (resume)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from orchestrator.checkpoints import CHECKPOINT_FILE, checkpoint_history, load_state
from orchestrator.errors import CheckpointError
from orchestrator.trial import run_epochs


class Planted:
    """What an attacker with write access to the storage would save: unpickling it calls ``open(path, 'w')``
    (creating the marker file) instead of building a state."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Planted(str(marker)), "epoch": 1, "history": []}, folder / CHECKPOINT_FILE)
    return folder / CHECKPOINT_FILE


def test_a_planted_state_is_refused_in_one_line_and_never_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    path = plant(tmp_path / "trial" / "checkpoint_000001", marker)
    with pytest.raises(CheckpointError) as info:
        load_state(str(path.parent))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: checkpoint refused: it holds ")
    assert "open" in message  # names what it would have called
    assert not marker.exists()
    # a newest sibling found for a checkpoint Tune deleted goes through the same check
    with pytest.raises(CheckpointError):
        load_state(str(tmp_path / "trial" / "checkpoint_000000"))
    assert not marker.exists()


def test_a_planted_state_on_the_driver_at_resume_is_skipped_with_a_warning(tmp_path, capsys):
    from ray import tune

    marker = tmp_path / "code-ran"
    path = plant(tmp_path / "checkpoint_000001", marker)
    assert checkpoint_history(tune.Checkpoint.from_directory(str(path.parent))) == []
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("[sweep] warning: ") and "checkpoint refused" in err
    assert not marker.exists()


def test_a_non_dict_state_is_refused(tmp_path):
    (tmp_path / "c").mkdir()
    torch.save([torch.zeros(2)], tmp_path / "c" / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError, match="expected a dict of tensors and plain data, found list"):
        load_state(str(tmp_path / "c"))


@pytest.mark.parametrize(
    "extra",
    [{"optimizer": "adam"}, {"optimizer": "sgd", "momentum": 0.9, "schedule": "plateau", "patience": 0, "warmup": 1}],
)
def test_the_states_the_trainable_saves_load_as_plain_data_and_resume_exactly(tmp_path, extra):
    config = {
        "workload": "digits_mlp",
        "max_epochs": 3,
        "lr": 0.01,
        "width": 16,
        "seed": 0,
        "checkpoint_every": 1,
        **extra,
    }
    saved = []

    def report(metrics, state):
        if state is not None:
            folder = tmp_path / f"checkpoint_{metrics['epoch']:06d}"
            folder.mkdir()
            torch.save(state, folder / CHECKPOINT_FILE)
            saved.append(folder)

    full = run_epochs(config, report)
    state = load_state(str(saved[1]))  # weights_only=True: tensors, dicts, lists, numbers, strings
    assert state["epoch"] == 2 and [r["epoch"] for r in state["history"]] == [1, 2]
    resumed = run_epochs(config, state=state)
    assert [r["epoch"] for r in resumed] == [3]
    assert resumed[0]["val_loss"] == pytest.approx(full[2]["val_loss"], rel=1e-6)


def planting_trainable(config: dict) -> None:
    """First attempt: report a checkpoint whose state.pt is planted, then crash. Tune retries the trial
    from that checkpoint with the real trainable, as after a worker crash."""
    from ray import tune

    from orchestrator.trial import train_trial

    if tune.get_checkpoint() is None:
        with tempfile.TemporaryDirectory() as d:
            plant(Path(d), Path(config["marker"]))
            tune.report({"epoch": 1, "val_loss": 1.0}, checkpoint=tune.Checkpoint.from_directory(d))
        raise RuntimeError("deliberate crash after the first checkpoint")
    train_trial(config)


def test_a_trial_retried_from_a_planted_checkpoint_errors_and_runs_no_code(local_ray, tmp_path):
    from ray import tune

    marker = tmp_path / "code-ran"
    config = {
        "workload": "digits_mlp",
        "max_epochs": 2,
        "lr": 0.01,
        "width": 8,
        "checkpoint_every": 1,
        "marker": str(marker),
    }
    tuner = tune.Tuner(
        planting_trainable,
        param_space=config,
        run_config=tune.RunConfig(
            name="planted",
            storage_path=str(tmp_path / "runs"),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    grid = tuner.fit()
    error = str(grid[0].error)
    assert "checkpoint refused" in error and "deliberate crash" not in error  # the retry hit the refusal
    assert not marker.exists()
    assert os.listdir(tmp_path / "runs" / "planted")  # the run happened
