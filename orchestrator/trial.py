"""The one trainable: a training function driven through ``orchestrator.session.Trial``, ``tune.report``
every epoch.

``train:`` in the config names the user's function; without it the function is ``train_workload``, the
built-in epoch loop over the ``workload:`` (``run_epochs`` runs it in plain torch: the benchmarks and the
retraining of picks use it). ``train_trial`` is the thin Ray Tune wrapper around either.
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
from collections.abc import Iterator

import torch

from orchestrator import session, workloads
from orchestrator.errors import CheckpointError  # also re-exported; one home: errors.py
from orchestrator.session import Sink, Trial, make_optimizer  # noqa: F401  (make_optimizer re-exported)


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


def train_workload(config: dict, trial: Trial) -> None:
    """The built-in training function: ``config["workload"]`` built, trained epoch by epoch on
    ``(input, target)`` batches, validated after each. A NaN or infinite loss ends it as diverged
    (``diverged: True``, losses inf, ``val_error`` 1 for a classifier)."""
    torch.manual_seed(trial.seed)
    wl = workloads.build(config["workload"], config)
    device = trial.device
    model = wl.model.to(device)
    net = trial.parallel.model(model)  # what trains; `model` holds the state (the same parameters)
    train_set = trial.parallel.shard(wl.train)
    optimizer = trial.optimizer(model.parameters())
    batch_size = int(config.get("batch_size", 32))
    generator = torch.Generator().manual_seed(trial.seed)
    saved = trial.restore()
    if saved:
        model.load_state_dict(saved["model"])
        generator.set_state(saved["generator"])
    for _ in trial.epochs():
        net.train()  # the DDP wrapper and the model it holds
        total, n, diverged = 0.0, 0, False
        for x, y in batches(train_set, batch_size, shuffle=True, generator=generator):
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = wl.loss(net(x), y)
            if not torch.isfinite(loss):
                diverged = True
                break
            loss.backward()
            optimizer.step()
            trial.step()
            total += loss.item() * len(y)
            n += len(y)
        if not diverged:
            train_loss = total / n
            val_loss, val_error = evaluate(model, wl.val, wl.loss, wl.num_classes, device)
            diverged = not (math.isfinite(val_loss) and math.isfinite(train_loss))
        if diverged:  # report() does not return: the trial ends as diverged
            trial.report(diverged=True, train_loss=math.inf, val_loss=math.inf,
                         val_error=1.0 if wl.num_classes else math.nan, val_accuracy=math.nan)
        trial.checkpoint({"model": model.state_dict(), "generator": generator.get_state()})
        trial.report(train_loss=train_loss, val_loss=val_loss,
                     val_error=val_error if val_error is not None else math.nan,
                     val_accuracy=1.0 - val_error if val_error is not None else math.nan)


def run_epochs(config: dict, report: Sink | None = None,
               state: dict | None = None, device: torch.device | None = None) -> list[dict]:
    """Train ``config`` with the built-in loop (``train_workload``); call ``report(metrics, state_or_None)``
    after each epoch; return the metrics of the epochs run.

    ``state`` (model / optimizer / schedule state and ``epoch``) resumes a run where it stopped.
    A NaN or infinite loss ends the run as diverged (``diverged: True``, losses set to inf), it is not raised.
    """
    trial = Trial(config, function=f"workload={config['workload']!r}", sink=report, state=state, device=device)
    return session.run(train_workload, trial, wrap_errors=False)


def run_training(config: dict, report: Sink | None = None,
                 state: dict | None = None, device: torch.device | None = None) -> list[dict]:
    """Run the trial's training function: the one ``config["train"]`` names (errors name it as
    ``train='pkg.mod:fn'``), else the built-in loop (``run_epochs``). Returns the metrics reported."""
    if not config.get("train"):
        return run_epochs(config, report, state=state, device=device)
    fn = workloads.resolve(str(config["train"]), key="train")
    trial = Trial(config, function=f"train={config['train']!r}", sink=report, state=state, device=device)
    return session.run(fn, trial)


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
    from orchestrator import atomicfs

    if checkpoint is None or not atomicfs.is_local(checkpoint.filesystem):
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
    """Ray Tune function trainable (``run_training``). Resumes from the trial's last checkpoint when Tune
    restores it."""
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

    run_training(config, report, state=state, device=pick_device(ray.get_gpu_ids()))
