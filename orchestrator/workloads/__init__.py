"""Workloads: the plugin contract and the built-in ones.

A workload is anything callable as ``fn(config: dict) -> Workload``. The YAML key ``workload:`` names a
built-in (see ``BUILTINS``) or a ``package.module:callable`` plugin. ``train:`` instead names a training
function ``train(config, trial)`` (``orchestrator.session``), loaded by the same ``resolve``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from orchestrator.errors import WorkloadError  # also re-exported; one home: errors.py


@dataclass
class Workload:
    """What a trial trains: a model, its data and its loss.

    ``train`` and ``val`` are torch Datasets of ``(input, target)`` pairs; ``loss(outputs, targets)``
    returns a scalar tensor. ``num_classes`` is set for classification (the trial then reports
    ``val_error``). ``meta`` carries free-form facts for pre-flight checks and reports.
    """

    model: torch.nn.Module
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    num_classes: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(f"Workload.model={type(self.model).__name__}: expected a torch.nn.Module")
        for name in ("train", "val"):
            data = getattr(self, name)
            if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
                raise TypeError(f"Workload.{name}={type(data).__name__}: expected a torch Dataset")
        if not callable(self.loss):
            raise TypeError(f"Workload.loss={self.loss!r}: expected a callable")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"Workload.num_classes={self.num_classes}: expected an int >= 2 or None")


BUILTINS = {
    "digits_mlp": "orchestrator.workloads.digits:digits_mlp",
    "digits_cnn": "orchestrator.workloads.more:digits_cnn",
    "diabetes_regression": "orchestrator.workloads.more:diabetes_regression",
}


def resolve(name: str, key: str = "workload") -> Callable[..., Any]:
    """Turn a built-in name or ``package.module:callable`` into the callable; ``key`` (``workload`` or
    ``train``) names the config key in errors, and only ``workload`` has built-ins. A module that is not
    importable as it is is looked up in the current folder too (the folder ``sweep`` runs in, as
    ``python -m`` does; Ray's workers have it on their path)."""
    target = BUILTINS.get(name, name) if key == "workload" else name
    if ":" not in target:
        expected = (
            f"a built-in ({', '.join(sorted(BUILTINS))}) or 'package.module:callable'"
            if key == "workload"
            else "'package.module:function' naming a training function train(config, trial)"
        )
        raise WorkloadError(f"{key}={name!r}: expected {expected}")
    module_name, _, attr = target.partition(":")
    try:
        module = _import(module_name)
    except Exception as exc:  # ImportError, or whatever the plugin raises at import
        raise WorkloadError(f"{key}={name!r}: cannot import module {module_name!r} ({exc})") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise WorkloadError(f"{key}={name!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise WorkloadError(f"{key}={name!r}: {attr!r} is not callable")
    return fn


def _import(module_name: str) -> Any:
    """``importlib.import_module``; when the module's top package is not found and the current folder is
    not on ``sys.path``, the current folder is appended (after every installed package) and it is tried again."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module_name.split(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path or "." in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def build(name: str, config: dict) -> Workload:
    """Resolve ``name`` and call it with the trial's config; check the contract."""
    result = resolve(name)(dict(config))
    if not isinstance(result, Workload):
        raise WorkloadError(f"workload={name!r}: returned {type(result).__name__}, expected orchestrator.Workload")
    return result
