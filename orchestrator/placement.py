"""What each trial asks of the Ray cluster and how many run at once: ``trainable_with_resources`` (the
trainable with its CPUs, GPUs and custom resources; a data-parallel trial's driver and Ray Train workers),
``data_parallel_slots`` (the concurrency limit for data-parallel trials), ``trial_slots`` (trials the cluster
holds at once) and ``pending_trials`` (Tune's pending placement groups while a sweep runs). Ray edge."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

from ray import tune

from orchestrator.config import SweepConfig
from orchestrator.trial import trainable


def trainable_with_resources(cfg: SweepConfig):
    r = cfg.resources
    if r.workers > 1:  # a data-parallel trial: a driver taking no CPU; Ray Train asks for its workers
        from orchestrator import distributed

        scaling = distributed.Scaling(workers=r.workers, cpu=r.cpu, gpu=r.gpu, custom=dict(r.custom))
        return tune.with_resources(distributed.trainable(scaling), distributed.DRIVER)
    res: dict[str, Any] = {"cpu": r.cpu, "gpu": r.gpu, **r.custom}
    return tune.with_resources(trainable(cfg), res)  # the workloads built once, shared (trial.trainable)


def data_parallel_slots(cfg: SweepConfig) -> int | None:
    """Data-parallel trials at once on the connected cluster (``distributed.concurrent_trials``); None
    (no limit) for one-worker trials."""
    r = cfg.resources
    if r.workers == 1:
        return None
    import ray

    from orchestrator import distributed

    scaling = distributed.Scaling(workers=r.workers, cpu=r.cpu, gpu=r.gpu, custom=dict(r.custom))
    return distributed.concurrent_trials(scaling, ray.cluster_resources())


def trial_slots(cfg: SweepConfig, resources: dict[str, float] | None = None) -> int:
    """How many trials the cluster holds at once: the scarcest resource a trial asks for decides."""
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    asks = {"CPU": cfg.resources.cpu, "GPU": cfg.resources.gpu, **cfg.resources.custom}
    slots = [int(resources.get(k, 0.0) / v + 1e-9) for k, v in asks.items() if v > 0]
    return max(1, min(slots, default=1))


@contextmanager
def pending_trials(n: int):
    """Let Tune keep ``n`` trials pending (placement groups requested at once) while the block runs, by
    setting ``TUNE_MAX_PENDING_TRIALS_PG`` (Tune reads it only from the environment) and removing it
    after; a value the user set is left as it is. Why: docs/decisions.md, "one pending trial per slot"."""
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(n)
    try:
        yield
    finally:
        os.environ.pop(key, None)
