"""A complete workload plugin: copy this folder, edit ``make``, run ``sweep run blobs.yaml``.

``sweep run`` and ``sweep check`` find this module next to the config file (``workload: blobs:make``),
wherever they are started from. Data: three Gaussian blobs in 8 dimensions, made here (no download).
"""
from __future__ import annotations

import torch
from torch import nn

from orchestrator import Workload

# The keys of `space` this workload reads besides the trial's own (lr, optimizer, momentum, batch_size,
# schedule, ...): any other key in `space` is refused as a likely typo.
space_keys = {"hidden"}


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points around three fixed centres, with their labels; standardised per feature with the
    statistics of the first 80% (the training part)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.randint(0, 3, (n,), generator=g)
    x = centres[y] + torch.randn(n, 8, generator=g)
    train = x[: n * 4 // 5]
    return (x - train.mean(0)) / train.std(0), y


def make(config: dict) -> Workload:
    """An MLP with one hidden ReLU layer of ``hidden`` units (default 32), Kaiming-initialised."""
    x, y = blobs(600, seed=1)
    torch.manual_seed(int(config.get("seed", 0)))
    first, last = nn.Linear(8, int(config.get("hidden", 32))), nn.Linear(int(config.get("hidden", 32)), 3)
    nn.init.kaiming_normal_(first.weight, nonlinearity="relu")
    nn.init.zeros_(first.bias)
    data = torch.utils.data.TensorDataset
    return Workload(model=nn.Sequential(first, nn.ReLU(), last), train=data(x[:480], y[:480]),
                    val=data(x[480:], y[480:]), loss=nn.CrossEntropyLoss(), num_classes=3)
