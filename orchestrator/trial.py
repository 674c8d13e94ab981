"""The one trainable: workload + optimizer + decay law, an epoch loop, ``tune.report`` every epoch.

``run_epochs`` is plain torch (used by the trainable, the benchmarks and the retraining of picks);
``train_trial`` is the thin Ray Tune wrapper around it.
"""
from __future__ import annotations

import glob
import math
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import torch

import schedules
from orchestrator import workloads
from orchestrator.config import OPTIMIZERS  # one list of names, also checked at config load
from orchestrator.errors import CheckpointError  # also re-exported; one home: errors.py


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


def batches(dataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches: a TensorDataset sliced directly (no per-item collate), any other dataset through a
    DataLoader; shuffled with ``generator`` when ``shuffle``."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i: i + batch_size]
            yield tuple(t[idx] for t in dataset.tensors)  # type: ignore[misc]
    else:
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def evaluate(model, dataset, loss_fn, num_classes, device, batch_size: int = 512) -> tuple[float, float | None]:
    model.eval()
    total, errors, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in batches(dataset, batch_size, shuffle=False):
            x, y = x.to(device), y.to(device)
            out = model(x)
            total += float(loss_fn(out, y)) * len(y)
            if num_classes:
                errors += int((out.argmax(dim=1) != y).sum())
            n += len(y)
    return total / n, (errors / n if num_classes else None)


def pick_device(gpu_ids: list | None = None) -> torch.device:
    """CUDA when Ray gave this trial a GPU and torch sees one, else the CPU."""
    if gpu_ids and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def run_epochs(config: dict, report: Callable[[dict, dict | None], None] | None = None,
               state: dict | None = None, device: torch.device | None = None) -> list[dict]:
    """Train ``config`` epoch by epoch; call ``report(metrics, state_or_None)`` after each.

    ``state`` (model / optimizer / schedule state and ``epoch``) resumes a run where it stopped.
    A NaN or infinite loss ends the run as diverged (``diverged: True``, losses set to inf), it is not raised.
    """
    device = device or torch.device("cpu")
    seed = int(config.get("seed", 0)) + int(config.get("seed_offset", 0))
    torch.manual_seed(seed)
    wl = workloads.build(config["workload"], config)
    model = wl.model.to(device)
    optimizer = make_optimizer(config, model.parameters())
    stepper = schedules.attach(optimizer, schedules.law_from_config(config))
    batch_size = int(config.get("batch_size", 32))
    max_epochs = int(config["max_epochs"])
    every = int(config.get("checkpoint_every", 0) or 0)
    generator = torch.Generator().manual_seed(seed)
    start = 0
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stepper.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        start = int(state["epoch"])
    past = list(state.get("history", [])) if state else []  # results before the checkpoint
    history = []
    for epoch in range(start, max_epochs):
        t0 = time.perf_counter()
        lr_now = stepper.lr
        model.train()
        total, n, diverged = 0.0, 0, False
        for x, y in batches(wl.train, batch_size, shuffle=True, generator=generator):
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = wl.loss(model(x), y)
            if not torch.isfinite(loss):
                diverged = True
                break
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            n += len(y)
        if not diverged:
            train_loss = total / n
            val_loss, val_error = evaluate(model, wl.val, wl.loss, wl.num_classes, device)
            diverged = not (math.isfinite(val_loss) and math.isfinite(train_loss))
        metrics = {"epoch": epoch + 1, "lr_epoch": lr_now, "device": str(device), "diverged": diverged,
                   "epoch_seconds": time.perf_counter() - t0, "ended_at": time.time()}
        if diverged:
            metrics.update(train_loss=math.inf, val_loss=math.inf, val_error=1.0 if wl.num_classes else math.nan,
                           val_accuracy=math.nan)
        else:
            metrics.update(train_loss=train_loss, val_loss=val_loss,
                           val_error=val_error if val_error is not None else math.nan,
                           val_accuracy=1.0 - val_error if val_error is not None else math.nan)
            stepper.step(val_loss)
        history.append(metrics)
        save = None
        if every and not diverged and ((epoch + 1) % every == 0 or epoch + 1 == max_epochs):
            save = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": stepper.state_dict(), "generator": generator.get_state(), "epoch": epoch + 1,
                    "history": past + history}  # the results so far, for a driver that lost them
        if report:
            report(metrics, save)
        if diverged:
            break
    return history


CHECKPOINT_FILE = "state.pt"


def load_state(directory: str) -> dict | None:
    """The state saved in one checkpoint folder; when that folder holds none (Tune may point at a
    checkpoint it already deleted), the newest sibling ``checkpoint_*`` that holds one, else None (the
    trial starts over). Raises ``CheckpointError`` for a file that is not plain tensors and data.
    Why: docs/decisions.md, "Resume from the newest sibling checkpoint"."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(path):
        sibling = _newest_sibling_state(directory)
        if sibling is None:
            return None
        path = sibling
    return _load_plain(path)


def _load_plain(path: str) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, so a ``state.pt`` planted in
    the storage cannot run code here (a full unpickle would call whatever its ``__reduce__`` names).
    Raises ``CheckpointError`` for anything else; the trial errors (Tune retries it, then records it as
    errored with this message) instead of starting over, so tampered storage is seen, not hidden."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)|Unsupported operand \S+", str(exc))
        what = found.group(1) or found.group(0) if found else "objects that are not tensors or plain data"
        raise CheckpointError(f"{path}: checkpoint refused: it holds {what} (only tensors, dicts, lists, "
                              f"numbers and strings are loaded; whoever can write the storage must be trusted "
                              f"to restore from it)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint refused: expected a dict of tensors and plain data, "
                              f"found {type(state).__name__}")
    return state


def _newest_sibling_state(directory: str) -> str | None:
    """The state file of the newest ``checkpoint_*`` folder beside ``directory`` (Tune numbers them with
    zero padding, so names sort by age); None if none holds one."""
    parent = os.path.dirname(os.path.normpath(directory))
    states = sorted(glob.glob(os.path.join(glob.escape(parent), "checkpoint_*", CHECKPOINT_FILE)))
    return states[-1] if states else None


def mend_checkpoint(checkpoint) -> str | None:
    """When ``checkpoint`` (a Tune checkpoint on local storage) has no state, copy the newest sibling
    ``checkpoint_*`` that holds one into it, so that Tune can restore the trial from there. Returns the
    folder copied, or None when nothing was missing (or it is not local, or no sibling holds a state).
    Why: docs/decisions.md, "Resume from the newest sibling checkpoint"."""
    import pyarrow.fs

    if checkpoint is None or not isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        return None
    target = checkpoint.path
    if os.path.exists(os.path.join(target, CHECKPOINT_FILE)):
        return None
    state = _newest_sibling_state(target)
    if state is None:
        return None
    source = os.path.dirname(state)
    shutil.copytree(source, target, dirs_exist_ok=True)
    return source


def checkpoint_history(checkpoint) -> list[dict]:
    """The per-epoch results saved in a trial checkpoint (none if it has no checkpoint)."""
    if checkpoint is None:
        return []
    with checkpoint.as_directory() as d:
        try:
            state = load_state(d)
        except CheckpointError as exc:  # the driver lists no epochs from it; the trial itself errors on it
            print(f"[sweep] warning: {exc}", file=sys.stderr, flush=True)
            return []
    return list(state.get("history", [])) if state else []


def train_trial(config: dict) -> None:
    """Ray Tune function trainable. Resumes from the trial's last checkpoint when Tune restores it."""
    import ray
    from ray import tune

    cpus = max(1, int(config.get("_cpus", 1)))
    torch.set_num_threads(cpus)
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_state(d)

    def report(metrics: dict, save: dict | None) -> None:
        if save is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(save, os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    run_epochs(config, report, state=state, device=pick_device(ray.get_gpu_ids()))
