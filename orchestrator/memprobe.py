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

import torch

from orchestrator import autobatch
from orchestrator.workloads import Workload


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
    amp: bool = False,
) -> bool:
    """True when one forward and backward pass of ``wl.model`` on ``batch`` training examples (repeated
    when the set is smaller) runs without running out of memory on ``device``; ``amp``: in bfloat16/float16
    autocast as the trial would train. Gradients are cleared after."""
    if batch < 1:
        raise ValueError(f"batch={batch}: expected >= 1")
    n = len(wl.train)  # type: ignore[arg-type]
    index = torch.arange(batch) % n
    x = torch.stack([wl.train[int(i)][0] for i in index]).to(device)
    y = torch.stack([torch.as_tensor(wl.train[int(i)][1]) for i in index]).to(device)
    model = wl.model.to(device)
    guard = limit() if limit is not None else contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    try:
        with guard, torch.autocast(device.type, dtype=dtype, enabled=amp):
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


def largest_batch(
    wl: Workload,
    device: torch.device,
    start: int = 8,
    limit_batch: int = 65536,
    limit: Callable[[], contextlib.AbstractContextManager] | None = None,
    amp: bool = False,
) -> autobatch.Found:
    """The largest batch of ``wl`` that fits on ``device`` (``autobatch.largest`` over ``step_fits``)."""
    return autobatch.largest(lambda b: step_fits(wl, b, device, limit, amp), start=start, limit=limit_batch)


AUTO = "auto"


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
    found = largest_batch(wl, device, limit=limit, amp=bool(config.get("amp", False)) and device.type == "cuda")
    return {**config, "batch_size": found.batch}, found
