"""The adapters (issue #14 items 3, 4): a Hugging Face ``Trainer`` and a Lightning ``Trainer`` swept through
``orchestrator.integrations``, each by its example YAML on a real local Ray with real training on small
data (a 2-layer BERT from a ``BertConfig`` on generated tokens; an MLP on digits): per-epoch reports under
the sweep's names, ASHA stopping a weak trial, checkpoints that hold the model, and a resume from one that
goes on where it stopped. Skipped only where the extra is not installed (``make test`` installs both)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from orchestrator import cli
from orchestrator.checkpoints import CHECKPOINT_FILE, load_state
from orchestrator.trial import run_training

ROOT = Path(__file__).resolve().parents[1]


def sweep_example(tmp_path: Path, example: str, **overrides) -> tuple[Path, list[dict]]:
    """Run ``examples/<example>`` through ``sweep run`` (in this process, on the test's local Ray) with
    ``overrides`` of its top-level keys and of ``space``; return the sweep folder and its trials.parquet rows."""
    data = yaml.safe_load((ROOT / "examples" / example).read_text())
    data["space"].update(overrides.pop("space", {}))
    data.update(storage=str(tmp_path / "runs"), zoom={"max_rounds": 1}, **overrides)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--quiet", "--no-check"]) == 0
    folder = tmp_path / "runs" / data["name"]
    return folder, pq.read_table(folder / "trials.parquet").to_pylist()


def by_lr(rows: list[dict]) -> dict[float, list[dict]]:
    out: dict[float, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["epoch"]):
        out.setdefault(row["lr"], []).append(row)
    return out


def resume_from_last_checkpoint(folder: Path, trial_rows: list[dict], more: int = 1) -> list[dict]:
    """Load the newest checkpoint of the trial whose rows are ``trial_rows`` (a completed trial: its last
    epoch), check it holds the model's weights, and train ``more`` epochs from it with the real ``Trial``
    (``run_training``, as a restored Tune trial does); return the epochs it reported."""
    trial_id = trial_rows[0]["trial_id"]
    states = sorted(p for p in folder.rglob(CHECKPOINT_FILE) if trial_id in str(p))
    assert states, f"no checkpoint of trial {trial_id} under {folder}"
    state = load_state(str(states[-1].parent))
    assert state is not None and state["epoch"] == len(trial_rows)
    assert state["model"] and all(isinstance(v, torch.Tensor) for v in state["model"].values())
    config = json.loads(trial_rows[0]["config"])
    config["max_epochs"] = len(trial_rows) + more
    return run_training(config, state=state)


@pytest.mark.slow
def test_a_lightning_module_swept_by_the_example(local_ray, tmp_path):
    pytest.importorskip("lightning", reason="the [lightning] extra is not installed (make test installs it)")
    folder, rows = sweep_example(
        tmp_path,
        "lightning.yaml",
        max_epochs=3,
        asha={"grace_period": 1},
        space={"lr": {"log": [1e-3, 10], "per_decade": 1}, "width": 32},
    )
    trials = by_lr(rows)
    assert sorted(trials) == [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    for curve in trials.values():  # one report per epoch, with what the module logs (val_loss, train_loss)
        assert [r["epoch"] for r in curve] == list(range(1, len(curve) + 1))
        assert all(r["val_loss"] > 0 and r["train_loss"] > 0 for r in curve)
    status = {lr: curve[0]["status"] for lr, curve in trials.items()}
    stopped = [lr for lr, s in status.items() if s == "stopped"]
    assert stopped and all(len(trials[lr]) < 3 for lr in stopped), status  # ASHA ended them after epoch 1
    assert status[1e-1] == "completed" and trials[1e-1][-1]["val_loss"] < 0.5  # it learned (chance: 2.3)
    best = json.loads((folder / "best.json").read_text())
    assert 1e-2 <= best["lr"] <= 1.0
    (resumed,) = resume_from_last_checkpoint(folder, trials[1e-1])
    assert resumed["epoch"] == 4 and resumed["val_accuracy"] > 0.9
    # the weights went on from epoch 3: a first epoch from scratch averages a far higher training loss
    assert resumed["train_loss"] < 0.5 * trials[1e-1][0]["train_loss"]


@pytest.mark.slow
def test_a_hugging_face_trainer_swept_by_the_example(local_ray, tmp_path):
    pytest.importorskip("transformers", reason="the [hf] extra is not installed (make test installs it)")
    folder, rows = sweep_example(
        tmp_path,
        "hf-trainer.yaml",
        max_epochs=2,
        asha={"grace_period": 1},
        space={"lr": {"log": [1e-2, 1], "per_decade": 1}},
    )
    trials = by_lr(rows)
    assert sorted(trials) == [1e-2, 1e-1, 1.0]
    for curve in trials.values():  # eval_loss -> val_loss, and the train loss the Trainer logged each epoch
        assert [r["epoch"] for r in curve] == list(range(1, len(curve) + 1))
        assert all(r["val_loss"] > 0 and r["train_loss"] > 0 for r in curve)
    assert trials[1e-2][0]["status"] == "completed" and trials[1e-2][-1]["val_loss"] < 0.5  # learned (chance: 0.69)
    assert trials[1.0][0]["status"] == "stopped" and len(trials[1.0]) == 1  # ASHA: far worse at epoch 1
    (resumed,) = resume_from_last_checkpoint(folder, trials[1e-2])
    assert resumed["epoch"] == 3 and resumed["val_accuracy"] > 0.85  # eval_accuracy -> val_accuracy
    # the weights went on from epoch 2: a first epoch from scratch averages a far higher training loss
    assert resumed["train_loss"] < 0.75 * trials[1e-2][0]["train_loss"]


@pytest.mark.parametrize(
    "module, framework, extra",
    [
        ("orchestrator.integrations.hf", "transformers", "hf"),
        ("orchestrator.integrations.lightning", "lightning", "lightning"),
    ],
)
def test_a_missing_framework_names_the_extra(monkeypatch, module, framework, extra):
    monkeypatch.setitem(sys.modules, framework, None)  # `import framework` now fails as if not installed
    monkeypatch.setitem(sys.modules, f"{framework}.pytorch", None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError) as caught:
        importlib.import_module(module)
    assert str(caught.value) == (
        f"{framework} is not installed: the sweep's adapter for it needs the extra, "
        f"pip install 'sweep-orchestrator[{extra}]' (from a clone: pip install -e '.[{extra}]')"
    )


def test_the_adapters_refuse_a_trainer_that_does_not_report_each_epoch(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
    lightning = pytest.importorskip("lightning", reason="the [lightning] extra is not installed")
    from orchestrator.integrations import hf, lightning as sweep_lightning
    from orchestrator.session import Trial

    trial = Trial({"lr": 0.1, "max_epochs": 2})
    args = transformers.TrainingArguments(output_dir=str(tmp_path), eval_strategy="no", report_to="none")
    trainer = transformers.Trainer(model=torch.nn.Linear(2, 2), args=args)
    with pytest.raises(ValueError, match=r"^TrainingArguments.eval_strategy='no': expected 'epoch'"):
        hf.fit(trainer, trial)
    pl_trainer = lightning.Trainer(check_val_every_n_epoch=2, logger=False, accelerator="cpu")
    with pytest.raises(ValueError, match=r"^Trainer\(check_val_every_n_epoch=2\): expected 1"):
        sweep_lightning.fit(pl_trainer, lightning.LightningModule(), trial)
    assert hf.val_metrics(
        {
            "eval_loss": 0.5,
            "eval_accuracy": 0.75,
            "eval_runtime": 1.0,
            "epoch": 2.0,
            "eval_samples_per_second": 9.0,
            "eval_steps_per_second": 1.0,
            "custom": 3,
        }
    ) == {"val_loss": 0.5, "val_accuracy": 0.75, "custom": 3.0}
