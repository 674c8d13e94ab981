"""The optimizer a trial's config names: ``make_optimizer`` builds it from ``optimizer``, ``lr``,
``momentum`` and ``weight_decay`` (``Trial.optimizer`` attaches the decay law to it)."""

from __future__ import annotations

import torch

from orchestrator.trialkeys import OPTIMIZERS  # one list of names, also checked at config load


def make_optimizer(config: dict, params) -> torch.optim.Optimizer:
    """``optimizer`` (default sgd), ``lr``, ``momentum`` (sgd: default 0.9; 'momentum': 0.9),
    ``weight_decay`` (default 0)."""
    name = str(config.get("optimizer", "sgd")).lower()
    lr = float(config["lr"])
    wd = float(config.get("weight_decay", 0.0))
    if not lr > 0:
        raise ValueError(f"lr={lr}: expected > 0")
    if wd < 0:
        raise ValueError(f"weight_decay={wd}: expected >= 0")
    if name in ("sgd", "momentum", "nesterov"):
        momentum = float(config.get("momentum", 0.0 if name == "sgd" else 0.9))
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum={momentum}: expected 0 <= momentum < 1")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=name == "nesterov")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer={name!r}: expected one of {', '.join(OPTIMIZERS)}")
