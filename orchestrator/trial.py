"""The one trainable: a training function driven through ``orchestrator.session.Trial``, ``tune.report``
every epoch.

``train:`` in the config names the user's function; without it the function is ``train_workload``, the
built-in epoch loop over the ``workload:`` (``run_epochs`` runs it in plain torch: the benchmarks and the
retraining of picks use it), with the ``LoopOptions`` (mixed precision, clipping, accumulation, DataLoader).
``train_trial`` is the thin Ray Tune wrapper around either; ``trainable`` gives it the workloads the driver
built once and put in Ray's object store (``sharing.share_workloads``), so trials do not build them again.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Iterator

import torch

from orchestrator import session, workloads
from orchestrator.checkpoints import CHECKPOINT_FILE, load_state
from orchestrator.config import SweepConfig
from orchestrator.session import Sink, Trial
from orchestrator.sharing import Shared, share_workloads, shared_workload
from orchestrator.trialkeys import Amp, loop_options


class TensorBatches:
    """The mini-batches of a TensorDataset, sliced directly (no per-item collate); a new order from
    ``generator`` at each iteration when ``shuffle``."""

    def __init__(
        self,
        dataset: torch.utils.data.TensorDataset,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset, self.batch_size, self.shuffle, self.generator = dataset, batch_size, shuffle, generator

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield tuple(t[idx] for t in self.dataset.tensors)


def batches(
    dataset,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterable:
    """Mini-batches, iterable once per epoch: a TensorDataset sliced directly (``TensorBatches``), any
    other dataset through one DataLoader (``num_workers`` processes, kept between epochs; ``pin_memory``);
    shuffled with ``generator`` when ``shuffle``."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return TensorBatches(dataset, batch_size, shuffle, generator)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


SUBSET_SEED = 0  # the permutation ``data_subset`` draws from: one subset for every trial, whatever its seed


def data_subset(dataset, fraction: float):
    """The first ``max(1, round(fraction * n))`` samples of a fixed permutation of ``dataset`` (seed
    ``SUBSET_SEED``), in their original order: trials at one fraction train on the same samples, so they
    stay comparable. ``dataset`` itself at fraction 1; a TensorDataset stays one (sliced directly)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r}: expected a number in (0, 1]")
    n = len(dataset)
    if fraction >= 1 or n == 0:
        return dataset
    k = max(1, round(fraction * n))
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[:k].sort().values
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return torch.utils.data.TensorDataset(*(t[idx] for t in dataset.tensors))
    return torch.utils.data.Subset(dataset, idx.tolist())


def autocast(device: torch.device, amp: Amp) -> contextlib.AbstractContextManager:
    """Mixed precision for ``amp`` on ``device`` (a no-op context for ``Amp.OFF``)."""
    if amp is Amp.OFF:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp is Amp.BF16 else torch.float16)


def evaluate(
    model,
    dataset,
    loss_fn,
    num_classes,
    device,
    batch_size: int = 512,
    amp: Amp = Amp.OFF,
    loader: Iterable | None = None,
) -> tuple[float, float | None]:
    """Mean loss and error rate (None without ``num_classes``) of ``model`` on ``dataset`` (or the batches
    of ``loader``), the loss computed in float32."""
    model.eval()
    total, errors, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader if loader is not None else batches(dataset, batch_size, shuffle=False):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, amp):
                out = model(x)
            out = out.float()
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


def train_workload(config: dict, trial: Trial, workload: workloads.Workload | None = None) -> None:
    """The built-in training function: ``config["workload"]`` built (or ``workload``, built already: the
    driver's shared one), trained epoch by epoch on ``(input, target)`` batches with the ``LoopOptions``
    of ``config``, validated after each. With ``grad_accum`` N the optimizer steps once every N batches on
    their mean gradient (each batch weighted by its size; an epoch's last window may be shorter) and
    ``trial.step()`` follows each step; ``grad_clip`` clips the gradient norm before each step. A NaN or
    infinite loss ends it as diverged (``diverged: True``, losses inf, ``val_error`` 1 for a classifier).
    ``amp: fp16`` without CUDA raises ValueError before training."""
    options = loop_options(config)
    device = trial.device
    if options.amp is Amp.FP16 and device.type != "cuda":
        raise ValueError(
            f"amp=fp16: expected a CUDA device, the trial has {device.type} (amp: bf16 runs on a CPU; or amp: off)"
        )
    torch.manual_seed(trial.seed)
    wl = workload if workload is not None else workloads.build(config["workload"], config)
    model = wl.model.to(device)
    net = trial.parallel.model(model)  # what trains; `model` holds the state (the same parameters)
    train_set = trial.parallel.shard(data_subset(wl.train, options.data_fraction))
    optimizer = trial.optimizer(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=options.amp is Amp.FP16)
    batch_size = int(config.get("batch_size", 32))
    generator = torch.Generator().manual_seed(trial.seed)
    pin = options.pin_memory if options.pin_memory is not None else device.type == "cuda"
    train_batches = batches(
        train_set, batch_size, shuffle=True, generator=generator, num_workers=options.num_workers, pin_memory=pin
    )
    val_batches = batches(wl.val, 512, shuffle=False, num_workers=options.num_workers, pin_memory=pin)
    window = batch_size * options.grad_accum  # samples a full accumulation window holds
    n_train = len(train_set)
    saved = trial.restore()
    if saved:
        model.load_state_dict(saved["model"])
        generator.set_state(saved["generator"])
        if "scaler" in saved:
            scaler.load_state_dict(saved["scaler"])
    for _ in trial.epochs():
        net.train()  # the DDP wrapper and the model it holds
        total, n, diverged = 0.0, 0, False
        optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(train_batches):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            start = (i // options.grad_accum) * window  # the first sample of this batch's window
            with autocast(device, options.amp):
                loss = wl.loss(net(x), y)
            if not torch.isfinite(loss):
                diverged = True
                break
            scaler.scale(loss * (len(y) / min(window, n_train - start))).backward()
            total += loss.item() * len(y)
            n += len(y)
            if (i + 1) % options.grad_accum and n < n_train:
                continue  # the window goes on
            if options.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            trial.step()
        if not diverged:
            train_loss = total / n
            val_loss, val_error = evaluate(
                model, wl.val, wl.loss, wl.num_classes, device, amp=options.amp, loader=val_batches
            )
            diverged = not (math.isfinite(val_loss) and math.isfinite(train_loss))
        if diverged:  # report() does not return: the trial ends as diverged
            trial.report(
                diverged=True,
                train_loss=math.inf,
                val_loss=math.inf,
                val_error=1.0 if wl.num_classes else math.nan,
                val_accuracy=math.nan,
            )
        state = {"model": model.state_dict(), "generator": generator.get_state()}
        trial.checkpoint({**state, "scaler": scaler.state_dict()} if scaler.is_enabled() else state)
        trial.report(
            train_loss=train_loss,
            val_loss=val_loss,
            val_error=val_error if val_error is not None else math.nan,
            val_accuracy=1.0 - val_error if val_error is not None else math.nan,
        )


def run_epochs(
    config: dict,
    report: Sink | None = None,
    state: dict | None = None,
    device: torch.device | None = None,
    workload: workloads.Workload | None = None,
) -> list[dict]:
    """Train ``config`` with the built-in loop (``train_workload``); call ``report(metrics, state_or_None)``
    after each epoch; return the metrics of the epochs run.

    ``state`` (model / optimizer / schedule state and ``epoch``) resumes a run where it stopped.
    ``workload``: built already (else built from ``config``).
    A NaN or infinite loss ends the run as diverged (``diverged: True``, losses set to inf), it is not raised.
    """
    trial = Trial(config, function=f"workload={config['workload']!r}", sink=report, state=state, device=device)
    return session.run(lambda c, t: train_workload(c, t, workload), trial, wrap_errors=False)


def run_training(
    config: dict,
    report: Sink | None = None,
    state: dict | None = None,
    device: torch.device | None = None,
    workload: workloads.Workload | None = None,
) -> list[dict]:
    """Run the trial's training function: the one ``config["train"]`` names (errors name it as
    ``train='pkg.mod:fn'``), else the built-in loop (``run_epochs``, on ``workload`` when given). Returns the
    metrics reported."""
    if not config.get("train"):
        return run_epochs(config, report, state=state, device=device, workload=workload)
    fn = workloads.resolve(str(config["train"]), key="train")
    trial = Trial(config, function=f"train={config['train']!r}", sink=report, state=state, device=device)
    return session.run(fn, trial)


def trainable(cfg: SweepConfig):
    """``train_trial`` for Tune: with the workloads of ``cfg``'s groups built once and shared
    (``tune.with_parameters``) when Ray is connected and they can be (``share_workloads``)."""
    import ray
    from ray import tune

    if cfg.workload is None or not ray.is_initialized():
        return train_trial
    shared = share_workloads([{**cfg.base_config(), **group} for group in cfg.groups()], cfg.zoom.param)
    return train_trial if shared is None else tune.with_parameters(train_trial, shared=shared)


def train_trial(config: dict, shared: Shared | None = None) -> None:
    """Ray Tune function trainable (``run_training``), on the driver's workload when ``shared`` holds one
    for ``config``. Resumes from the trial's last checkpoint when Tune restores it."""
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

    run_training(
        config, report, state=state, device=pick_device(ray.get_gpu_ids()), workload=shared_workload(shared, config)
    )
