"""Built-in workload: an MLP on scikit-learn's bundled digits (8x8 images, 10 classes, 1797 samples)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from orchestrator.workloads import Workload

SPLIT_SEED = 0  # the train/val split is fixed, whatever the trial's seed: trials are compared on one val set


@functools.lru_cache(maxsize=4)
def digits_arrays(split_seed: int = SPLIT_SEED):
    """Stratified 80/20 split, standardised with training statistics. Cached: loaded once per process."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x.astype(np.float32), y, test_size=0.2, stratify=y, random_state=split_seed
    )
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (always 0 at the border) stay 0
    x_tr = (x_tr - mean) / std
    x_va = (x_va - mean) / std
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_va),
        torch.from_numpy(y_va.astype(np.int64)),
    )


def mlp(n_in: int, n_out: int, width: int, depth: int, dropout: float) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``width`` units, Kaiming-initialised; a linear output layer."""
    if depth < 0 or width < 1:
        raise ValueError(f"depth={depth}, width={width}: expected depth >= 0 and width >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout}: expected 0 <= dropout < 1")
    layers: list[nn.Module] = []
    last = n_in
    for _ in range(depth):
        linear = nn.Linear(last, width)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        last = width
    out = nn.Linear(last, n_out)
    nn.init.xavier_normal_(out.weight)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


def mlp_from_config(n_in: int, n_out: int, config: dict) -> nn.Sequential:
    """``mlp`` sized by the trial config's ``width`` (64), ``depth`` (2) and ``dropout`` (0.0)."""
    return mlp(
        n_in,
        n_out,
        width=int(config.get("width", 64)),
        depth=int(config.get("depth", 2)),
        dropout=float(config.get("dropout", 0.0)),
    )


def digits_mlp(config: dict) -> Workload:
    """Config keys (all optional): ``width`` (64), ``depth`` (2), ``dropout`` (0.0), ``seed`` (0)."""
    x_tr, y_tr, x_va, y_va = digits_arrays()
    torch.manual_seed(int(config.get("seed", 0)))
    model = mlp_from_config(x_tr.shape[1], 10, config)
    return Workload(
        model=model,
        train=torch.utils.data.TensorDataset(x_tr, y_tr),
        val=torch.utils.data.TensorDataset(x_va, y_va),
        loss=nn.CrossEntropyLoss(),
        num_classes=10,
        meta={"name": "digits_mlp", "standardised": True},
    )


digits_mlp.space_keys = frozenset({"width", "depth", "dropout"})  # type: ignore[attr-defined]
