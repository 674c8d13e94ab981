"""Workloads built once by the driver and shared with the trials through Ray's object store: the driver
calls ``share_workloads`` (one build per group, each tensor put once as a numpy array) and hands the
``Shared`` to ``trial.train_trial``; a trial gets its group's workload with ``shared_workload`` (tensors
mapped zero-copy, read-only) or None, and then builds its own. Ray is imported inside the functions; needs
torch. Ray edge."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import torch

from orchestrator import workloads
from orchestrator.trialkeys import declared_keys

NOT_SHARED = ("round", "group", "seed_offset")  # trial keys that no workload factory reads


@dataclasses.dataclass(frozen=True)
class Shared:
    """Workloads the driver built once, in Ray's object store: ``refs`` maps ``share_key`` of a group's
    config to the ref of its packed workload (model, loss, and refs to the tensors of its datasets, each
    tensor put once as a numpy array: trials map them zero-copy, read-only). ``param``: the zoomed key,
    left out of the key (the factory does not read it)."""

    param: str
    refs: dict[str, Any]


def share_key(config: dict, param: str) -> str:
    """The key of the shared workload a trial config uses: its values but ``param``, ``NOT_SHARED`` and
    private ``_`` keys."""
    kept = {str(k): v for k, v in config.items() if k != param and k not in NOT_SHARED and not str(k).startswith("_")}
    return json.dumps(kept, sort_keys=True, default=repr)


def share_workloads(configs: list[dict], param: str) -> Shared | None:
    """Build the workload of each config once (under ``torch.manual_seed(seed)``) and put it in Ray's
    object store (Ray connected). Shared only when the workload declares its ``space_keys`` without
    ``param``, and for a config whose datasets are ``TensorDataset``s of CPU tensors numpy can hold; any
    other (or one whose build raises) is left to its trials to build. None when none is shared."""
    import ray

    names = {str(c.get("workload")) for c in configs}
    if not configs or any(c.get("train") for c in configs) or len(names) != 1:
        return None
    try:
        declared = declared_keys(workloads.resolve(names.pop()), "workload")
    except Exception:  # the trials resolve it again, and error with their own message
        return None
    if declared is None or param in declared:
        return None
    puts: dict[tuple, Any] = {}  # one put per distinct tensor (views of one cached array share it)
    refs: dict[str, Any] = {}
    for config in configs:
        try:
            torch.manual_seed(int(config.get("seed", 0)))
            wl = workloads.build(str(config["workload"]), config)
            packed = {
                "model": wl.model,
                "loss": wl.loss,
                "num_classes": wl.num_classes,
                "meta": wl.meta,
                "train": [_put(t, puts, ray) for t in _tensors(wl.train)],
                "val": [_put(t, puts, ray) for t in _tensors(wl.val)],
            }
        except Exception:  # a plugin's own error, data Ray cannot hold: its trials build it (and may raise)
            continue
        refs[share_key(config, param)] = ray.put(packed)
    return Shared(param, refs) if refs else None


def _tensors(dataset) -> tuple[torch.Tensor, ...]:
    if not isinstance(dataset, torch.utils.data.TensorDataset):
        raise TypeError(f"{type(dataset).__name__}: not a TensorDataset")
    return dataset.tensors


def _put(t: torch.Tensor, puts: dict[tuple, Any], ray) -> Any:
    """A ref to ``t`` as a numpy array; TypeError for a tensor numpy cannot hold (bfloat16) or on a GPU."""
    if t.device.type != "cpu":
        raise TypeError(f"a tensor on {t.device}")
    key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
    if key not in puts:
        puts[key] = ray.put(t.detach().contiguous().numpy())
    return puts[key]


def shared_workload(shared: Shared | None, config: dict) -> workloads.Workload | None:
    """The driver's workload for ``config`` from the object store (its tensors mapped zero-copy, read-only:
    the loop only reads them), or None when it shares none for this config."""
    ref = shared.refs.get(share_key(config, shared.param)) if shared is not None else None
    if ref is None:
        return None
    import ray

    packed = ray.get(ref)
    with warnings.catch_warnings():  # from_numpy warns that the mapped arrays are read-only
        warnings.simplefilter("ignore", UserWarning)
        train, val = ([torch.from_numpy(a) for a in ray.get(packed[k])] for k in ("train", "val"))
    return workloads.Workload(
        model=packed["model"],
        train=torch.utils.data.TensorDataset(*train),
        val=torch.utils.data.TensorDataset(*val),
        loss=packed["loss"],
        num_classes=packed["num_classes"],
        meta=packed["meta"],
    )
