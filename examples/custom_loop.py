"""A training function of your own, swept by ``sweep run examples/custom-loop.yaml``.

Plain torch on scikit-learn's digits: the sweep hands ``train`` the learning rate, the optimizer with its
decay law, the epochs to run and a place to checkpoint; the function keeps its model, data and loop (here a
label-smoothed loss, gradient clipping and an accuracy metric, which the built-in loop does not have).
The contract: docs/training-api.md.
"""
from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from orchestrator import Trial

space_keys = {"width", "batch_size", "clip", "smoothing"}  # the space keys this function reads


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed stratified 80/20 split of digits, standardised with the training statistics."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std[std == 0] = 1.0  # pixels constant in training (the border) stay constant

    def standard(a):
        return torch.tensor((a - mean) / std, dtype=torch.float32)

    return standard(x_tr), torch.tensor(y_tr), standard(x_va), torch.tensor(y_va)


def train(config: dict, trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    x_tr, y_tr, x_va, y_va = (t.to(trial.device) for t in digits())
    width = int(config.get("width", 64))
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)).to(trial.device)
    optimizer = trial.optimizer(model.parameters())  # the sweep's optimizer at trial.lr, decay law attached
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config.get("smoothing", 0.0)))
    batch_size, clip = int(config.get("batch_size", 32)), float(config.get("clip", 1.0))
    generator = torch.Generator().manual_seed(trial.seed)

    saved = trial.restore()  # None on a fresh start; what checkpoint() got, when resumed
    if saved:
        model.load_state_dict(saved["model"])
        generator.set_state(saved["generator"])

    for _epoch in trial.epochs():  # the epochs left to run
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_tr), generator=generator).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            trial.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_va)
            val_loss = nn.functional.cross_entropy(out, y_va).item()
            accuracy = (out.argmax(dim=1) == y_va).float().mean().item()
        trial.checkpoint({"model": model.state_dict(), "generator": generator.get_state()})
        trial.report(val_loss=val_loss, val_accuracy=accuracy, train_loss=total / len(x_tr))
