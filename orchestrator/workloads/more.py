"""More built-in workloads: a small CNN on the digits images, and an MLP regression on scikit-learn's diabetes."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from orchestrator.workloads import Workload
from orchestrator.workloads.digits import SPLIT_SEED, digits_arrays, mlp_from_config


def cnn(channels: int, dropout: float, num_classes: int = 10) -> nn.Sequential:
    """Two 3x3 conv layers (padding 1) with ReLU, a 2x2 max-pool, a linear head; for (N, 1, 8, 8) inputs."""
    if channels < 1:
        raise ValueError(f"channels={channels}: expected an int >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout}: expected 0 <= dropout < 1")
    conv1 = nn.Conv2d(1, channels, 3, padding=1)
    conv2 = nn.Conv2d(channels, channels, 3, padding=1)
    head = nn.Linear(channels * 4 * 4, num_classes)
    for conv in (conv1, conv2):
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        assert conv.bias is not None  # built with bias=True
        nn.init.zeros_(conv.bias)
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    layers: list[nn.Module] = [conv1, nn.ReLU(), conv2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(head)
    return nn.Sequential(*layers)


def digits_cnn(config: dict) -> Workload:
    """Config keys (all optional): ``channels`` (16), ``dropout`` (0.0), ``seed`` (0). Inputs are (1, 8, 8)."""
    x_tr, y_tr, x_va, y_va = digits_arrays()
    torch.manual_seed(int(config.get("seed", 0)))
    model = cnn(int(config.get("channels", 16)), float(config.get("dropout", 0.0)))
    return Workload(
        model=model,
        train=torch.utils.data.TensorDataset(x_tr.reshape(-1, 1, 8, 8), y_tr),
        val=torch.utils.data.TensorDataset(x_va.reshape(-1, 1, 8, 8), y_va),
        loss=nn.CrossEntropyLoss(),
        num_classes=10,
        meta={"name": "digits_cnn", "standardised": True},
    )


digits_cnn.space_keys = frozenset({"channels", "dropout"})  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def diabetes_arrays(split_seed: int = SPLIT_SEED):
    """80/20 split of the 442 diabetes patients; inputs and target standardised with training statistics.

    Targets are (N, 1) float32, the shape of the model's output. Cached: loaded once per process.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True, scaled=False)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x.astype(np.float32), y.astype(np.float32).reshape(-1, 1), test_size=0.2, random_state=split_seed
    )
    x_mean, x_std = x_tr.mean(axis=0), x_tr.std(axis=0)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = y_tr.mean(), y_tr.std()
    return (
        torch.from_numpy((x_tr - x_mean) / x_std),
        torch.from_numpy((y_tr - y_mean) / y_std),
        torch.from_numpy((x_va - x_mean) / x_std),
        torch.from_numpy((y_va - y_mean) / y_std),
    )


def diabetes_regression(config: dict) -> Workload:
    """Config keys (all optional): ``width`` (64), ``depth`` (2), ``dropout`` (0.0), ``seed`` (0).

    Loss: mean squared error on the standardised target (1.0 = predicting the training mean).
    """
    x_tr, y_tr, x_va, y_va = diabetes_arrays()
    torch.manual_seed(int(config.get("seed", 0)))
    model = mlp_from_config(x_tr.shape[1], 1, config)
    return Workload(
        model=model,
        train=torch.utils.data.TensorDataset(x_tr, y_tr),
        val=torch.utils.data.TensorDataset(x_va, y_va),
        loss=nn.MSELoss(),
        num_classes=None,
        meta={"name": "diabetes_regression", "standardised": True},
    )


diabetes_regression.space_keys = frozenset({"width", "depth", "dropout"})  # type: ignore[attr-defined]
