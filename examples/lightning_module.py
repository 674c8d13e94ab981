"""A ``LightningModule`` swept by ``examples/lightning.yaml`` (needs ``pip install -e '.[lightning]'``).

An MLP on scikit-learn's digits (shipped with scikit-learn, no download). The module is plain Lightning: it
logs ``train_loss``, ``val_loss`` and ``val_accuracy``; it has no ``configure_optimizers`` of its own, as
``orchestrator.integrations.lightning.fit`` supplies the sweep's optimizer and decay law at the trial's
learning rate, the epochs left, checkpoints and the per-epoch report.
"""
from __future__ import annotations

from orchestrator.integrations import lightning as sweep_lightning  # first: names the extra to install if missing

# isort: split
import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

space_keys = {"width", "batch_size"}  # what this function reads from the sweep's space


class DigitsMLP(L.LightningModule):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_accuracy", (out.argmax(dim=1) == y).float().mean())


def digits(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1797 digits, pixels scaled to [0, 1]; 80% train, 20% val (a fixed shuffle)."""
    x, y = load_digits(return_X_y=True)
    x_t, y_t = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y_t), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(order))
    return TensorDataset(x_t[order[:cut]], y_t[order[:cut]]), TensorDataset(x_t[order[cut:]], y_t[order[cut:]])


def train(config: dict, trial) -> None:
    L.seed_everything(int(config.get("seed", 0)), verbose=False)
    module = DigitsMLP(width=int(config.get("width", 64)))
    train_set, val_set = digits()
    batch = int(config.get("batch_size", 32))
    trainer = L.Trainer(accelerator="cpu" if trial.device.type == "cpu" else "auto", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    sweep_lightning.fit(trainer, module, trial,
                        train_dataloaders=DataLoader(train_set, batch_size=batch, shuffle=True),
                        val_dataloaders=DataLoader(val_set, batch_size=512))
