"""Does a batch fit? One real training step (forward, backward) of a workload's model at a given batch size,
out-of-memory caught: the ``fits`` that ``orchestrator.autobatch.largest`` searches with.

On a GPU the device itself runs out (``torch.cuda.OutOfMemoryError``). Elsewhere, or to test the same path
on a CPU, ``limit`` is a stand-in: ``ActivationLimit(bytes)`` counts the bytes autograd saves for the
backward pass (the part of a step's memory that grows with the batch) and raises ``torch.OutOfMemoryError``
past the limit, as the device would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from orchestrator import autobatch
from orchestrator.trialkeys import AUTO
from orchestrator.workloads import Workload

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig


class ActivationLimit:
    """A memory stand-in: a context in which tensors saved for backward may total at most ``limit`` bytes;
    one more raises ``torch.OutOfMemoryError``. ``peak``: the bytes saved in the last step."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit}: expected >= 1 byte")
        self.limit, self.peak = int(limit), 0

    @contextlib.contextmanager
    def __call__(self):
        self.peak = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            self.peak += t.numel() * t.element_size()
            if self.peak > self.limit:
                raise torch.OutOfMemoryError(f"stand-in: {self.peak} bytes saved for backward > limit {self.limit}")
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield


def step_fits(
    wl: Workload,
    batch: int,
    device: torch.device,
    limit: Callable[[], contextlib.AbstractContextManager] | None = None,
    amp: bool | str = False,
) -> bool:
    """True when one forward and backward pass of ``wl.model`` on ``batch`` training examples (repeated
    when the set is smaller) runs without running out of memory on ``device``; ``amp``: the trial's
    precision (``off``, ``bf16``, ``fp16``; True: float16 on CUDA, else bfloat16), autocast as the trial
    would train. Gradients are cleared after."""
    if batch < 1:
        raise ValueError(f"batch={batch}: expected >= 1")
    n = len(wl.train)  # type: ignore[arg-type]
    index = torch.arange(batch) % n
    x = torch.stack([wl.train[int(i)][0] for i in index]).to(device)
    y = torch.stack([torch.as_tensor(wl.train[int(i)][1]) for i in index]).to(device)
    model = wl.model.to(device)
    guard = limit() if limit is not None else contextlib.nullcontext()
    dtype = _autocast_dtype(amp, device)
    try:
        with guard, torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = wl.loss(model(x), y)
        loss.backward()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        del x, y
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a trial's ``amp`` (None: full precision)."""
    if amp is True:
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(amp)) if amp else None


def largest_batch(
    wl: Workload,
    device: torch.device,
    start: int = 8,
    limit_batch: int = 65536,
    limit: Callable[[], contextlib.AbstractContextManager] | None = None,
    amp: bool | str = False,
) -> autobatch.Found:
    """The largest batch of ``wl`` that fits on ``device`` (``autobatch.largest`` over ``step_fits``)."""
    return autobatch.largest(lambda b: step_fits(wl, b, device, limit, amp), start=start, limit=limit_batch)


def resolve_auto(
    config: dict, device: torch.device, limit: Callable[[], contextlib.AbstractContextManager] | None = None
) -> tuple[dict, autobatch.Found | None]:
    """``config`` with ``batch_size: auto`` replaced by the largest batch of its workload that fits on
    ``device`` (with ``amp`` as configured), and the search's answer; any other config as it is, None."""
    if config.get("batch_size") != AUTO:
        return config, None
    from orchestrator import workloads

    if not config.get("workload"):
        raise ValueError("batch_size='auto': expected a workload: config (a train: function sizes its own batches)")
    wl = workloads.build(str(config["workload"]), {**config, "batch_size": 1})
    found = largest_batch(wl, device, limit=limit, amp=config.get("amp", False))
    return {**config, "batch_size": found.batch}, found


@dataclass(frozen=True)
class Search:
    """How the largest batch is looked for: doubling from ``start`` up to ``max`` (``autobatch.largest``);
    ``memory_limit_bytes``: the ``ActivationLimit`` stand-in (None: the device's own out-of-memory)."""

    start: int = 8
    max: int = 65536
    memory_limit_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.start < 1 or self.max < self.start:
            raise ValueError(f"start={self.start}, max={self.max}: expected 1 <= start <= max")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes < 1:
            raise ValueError(f"memory_limit_bytes={self.memory_limit_bytes}: expected >= 1 or None")

    @classmethod
    def of(cls, cfg: SweepConfig) -> Search:
        a = cfg.autobatch
        mb = a.memory_limit_mb
        return cls(a.start, a.max, None if mb is None else max(1, int(mb * 2**20)))

    def limit(self) -> Callable[[], contextlib.AbstractContextManager] | None:
        n = self.memory_limit_bytes
        return None if n is None else (lambda: ActivationLimit(n)())

    def bounded_on(self, device: torch.device) -> bool:
        """Whether something bounds the batch on ``device``: a GPU's memory, or the stand-in."""
        return device.type == "cuda" or self.memory_limit_bytes is not None


@dataclass(frozen=True)
class Sized:
    """The largest batch that fits every trial config probed (``batch``: the smallest group's answer), on
    ``device`` at ``amp``, and how it was found."""

    batch: int
    device: str
    amp: str
    limited: bool  # the search reached ``Search.max`` without running out: more may fit
    probes: int
    stand_in: int | None  # the memory stand-in's bytes, None: the device's memory

    def text(self) -> str:
        """'batch 1024 (cpu, amp off, memory stand-in 3 MiB; 10 probes)'."""
        memory = f"memory stand-in {self.stand_in / 2**20:.4g} MiB" if self.stand_in else f"{self.device} memory"
        more = ", the search's max: more may fit" if self.limited else ""
        return f"batch {self.batch} ({self.device}, amp {self.amp}, {memory}; {self.probes} probes{more})"


def largest_for(configs: list[dict], device: torch.device, search: Search) -> Sized:
    """The largest batch that fits each of ``configs`` (trial configs of one workload: the sweep's groups)
    on ``device``, the smallest of them. Raises ``autobatch.NothingFits`` (not even ``search.start``) and
    ``WorkloadError`` (a workload that cannot be built)."""
    from orchestrator import trialkeys, workloads

    if not configs:
        raise ValueError("configs=[]: expected at least one trial config")
    answers = []
    for config in configs:
        wl = workloads.build(str(config["workload"]), {**config, "batch_size": 1})
        amp = trialkeys.loop_options(config).amp.value
        found = largest_batch(wl, device, search.start, search.max, search.limit(), amp)
        answers.append((found.batch, found, amp))
    batch, found, amp = min(answers, key=lambda a: a[0])
    probes = sum(len(a[1].probes) for a in answers)
    return Sized(batch, device.type, amp, found.limited, probes, search.memory_limit_bytes)


def _sized_here(configs: list[dict], search: Search, threads: int) -> Sized | str:
    """A Ray task's body: ``largest_for`` on this worker's GPU (if Ray gave it one), else its CPU; an
    error as one line (the driver raises it)."""
    import ray

    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
    if not search.bounded_on(device):
        return f"no GPU where the trials run ({device.type}) and no autobatch.memory_limit_mb: nothing bounds the batch"
    try:
        return largest_for(configs, device, search)
    except Exception as exc:  # NothingFits, a workload that does not build: the sweep does not start
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def resolve_sweep(cfg: SweepConfig, quiet: bool = False) -> SweepConfig:
    """``cfg`` with ``space.batch_size: auto`` replaced by the largest batch that fits, found where the trials
    run: a Ray task with one trial's resources (one worker's, for a data-parallel trial: the batch is per
    worker) on the connected Ray; ``cfg`` itself when its batch size is not ``auto``. Raises ``ConfigError``
    (one line) when no batch fits or the search cannot run there."""
    import ray

    from orchestrator.errors import ConfigError

    if cfg.space.get("batch_size") != AUTO:
        return cfg
    r = cfg.resources
    configs = [{**cfg.base_config(), **group} for group in cfg.groups()]
    task = ray.remote(_sized_here).options(num_cpus=r.cpu, num_gpus=r.gpu, resources=dict(r.custom), max_retries=0)
    sized = ray.get(task.remote(configs, Search.of(cfg), int(r.cpu)))
    if isinstance(sized, str):
        raise ConfigError(f"space.batch_size: auto: {sized}")
    if not quiet:
        print(f"[sweep] batch_size: auto -> {sized.text()}", flush=True)
    return cfg.model_copy(update={"space": {**cfg.space, "batch_size": sized.batch}})
