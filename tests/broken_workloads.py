"""Deliberately broken workloads, each with one bug, for the pre-flight checks' tests.

Importable as plugins: ``tests.broken_workloads:NAME``. Each is the digits MLP with exactly one thing
wrong; the module docstring of each says which pre-flight check should catch it.
"""

from __future__ import annotations

import torch
from torch import nn

from orchestrator.workloads import Workload
from orchestrator.workloads.digits import digits_arrays, mlp


def _digits(config: dict, *, n_out: int = 10, raw: bool = False, loss=None, model=None, overlap: int = 0) -> Workload:
    x_tr, y_tr, x_va, y_va = digits_arrays()
    if raw:  # undo the standardisation: raw 0..16 pixel intensities
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_tr, x_va, y_tr, y_va = (
            torch.as_tensor(a)
            for a in train_test_split(x.astype("float32"), y.astype("int64"), test_size=0.2, stratify=y, random_state=0)
        )
    if overlap:  # the first `overlap` training rows leak into the validation set
        x_va = torch.cat([x_va[overlap:], x_tr[:overlap]])
        y_va = torch.cat([y_va[overlap:], y_tr[:overlap]])
    torch.manual_seed(int(config.get("seed", 0)))
    if model is None:
        model = mlp(
            x_tr.shape[1],
            n_out,
            width=int(config.get("width", 64)),
            depth=int(config.get("depth", 2)),
            dropout=float(config.get("dropout", 0.0)),
        )
    return Workload(
        model=model,
        train=torch.utils.data.TensorDataset(x_tr, y_tr),
        val=torch.utils.data.TensorDataset(x_va, y_va),
        loss=loss if loss is not None else nn.CrossEntropyLoss(),
        num_classes=10,
        meta={"name": "broken"},
    )


def wrong_output_size(config: dict) -> Workload:
    """100 outputs for 10 classes: runs (targets 0..9 are valid indices) but starts at ~ln(100).

    Caught by: initial_loss.
    """
    return _digits(config, n_out=100)


def _uniform_target_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the uniform distribution: starts at ~ln(C), never uses ``targets``."""
    return -torch.log_softmax(outputs, dim=-1).mean()


def labels_ignored(config: dict) -> Workload:
    """The loss never looks at the labels (its floor is ln(C), so nothing can be memorised).

    Caught by: overfit_small.
    """
    return _digits(config, loss=_uniform_target_loss)


class _LeakyBackwardReLU(torch.autograd.Function):
    """ReLU forward; backward forgets the mask and passes every gradient through (straight-through)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output  # bug: should be grad_output * (x > 0)


class BadReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LeakyBackwardReLU.apply(x)


def bad_backward(config: dict) -> Workload:
    """A custom autograd Function with a wrong backward in place of every ReLU.

    Caught by: gradients. (The wrong gradient is still a descent-ish direction, so it trains.)
    """
    work = _digits(config)
    work.model = nn.Sequential(*(BadReLU() if isinstance(m, nn.ReLU) else m for m in work.model))
    return work


def raw_inputs(config: dict) -> Workload:
    """Un-normalised inputs: raw 0..16 pixel values (means up to ~14, stds up to ~7).

    Caught by: preprocessing; and, inevitably, by initial_loss: the first layer is Kaiming-scaled for
    unit-variance inputs, so ~6x larger inputs give ~6x larger logits and an initial loss far above ln(C).
    """
    return _digits(config, raw=True)


def zero_init(config: dict) -> Workload:
    """Every Linear weight and bias initialised to zero.

    Caught by: initialisation; and, inevitably, by overfit_small: at an all-zero ReLU network every
    weight gradient is exactly zero (ReLU'(0) = 0 and zero weights downstream), so only the output
    bias ever moves and the loss stalls at the entropy of the labels. (A variant with zero weights and
    PyTorch's default random biases does escape, slowly: whether it memorises 16 examples within 300
    steps depended on the seed (3 of 18 width/depth/seed combinations did), so it makes no reliable test.)
    """
    work = _digits(config)
    for module in work.model:
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    return work


def train_val_overlap(config: dict) -> Workload:
    """50 training rows are also in the validation set.

    Caught by: validation_split.
    """
    return _digits(config, overlap=50)
