"""Trivial plugin workloads for the orchestration benchmarks (overhead.py, utilization.py).

``workload``: a 4->2 Linear model on 8 random samples, MSE loss: an epoch costs well under a millisecond.
``sleepy``: the same, but each training batch's loss sleeps ``sleep`` seconds (config key, default 0.05),
so that a trial's busy time is proportional to its epochs; with ``batch_size`` >= 8 an epoch is one batch.
The validation pass (run without gradients) does not sleep.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from orchestrator.workloads import Workload


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 4, generator=g)
    y = torch.randn(8, 2, generator=g)
    return torch.utils.data.TensorDataset(x, y)


def workload(config: dict) -> Workload:
    torch.manual_seed(int(config.get("seed", 0)))
    data = _data()
    return Workload(model=nn.Linear(4, 2), train=data, val=data, loss=nn.MSELoss(), meta={"name": "trivial"})


class SleepyLoss(nn.Module):
    """MSE that sleeps ``seconds`` per call while gradients are on (training batches only). Picklable."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.mse = nn.MSELoss()

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.seconds > 0:
            time.sleep(self.seconds)
        return self.mse(out, target)


def sleepy(config: dict) -> Workload:
    torch.manual_seed(int(config.get("seed", 0)))
    data = _data()
    return Workload(
        model=nn.Linear(4, 2), train=data, val=data, loss=SleepyLoss(config.get("sleep", 0.05)), meta={"name": "sleepy"}
    )
