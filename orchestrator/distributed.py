"""Data-parallel trials: one Tune trial trains on ``workers`` processes with Ray Train's ``TorchTrainer``
(DDP; nccl when each worker has a whole GPU, else gloo).

``resources: {workers: N, cpu: C, gpu: G}`` asks C CPUs and G GPUs for each of the N workers. The Tune
trial itself is a driver taking no resources (Ray Train's documented way to tune a trainer since Train V2:
the trainer runs inside a Tune function trainable); it starts the trainer, and forwards rank 0's reports
and checkpoints to Tune with ``tune.report``, so that ASHA, the zoom, checkpoints, resume and the results
see the trial as they see a one-worker trial. Every worker runs the trial's training function (the
built-in loop or ``train:``) with a ``Trial`` whose ``parallel`` is a ``DataParallel``: the model trains
wrapped in DDP, each worker on its equal shard of the training set.

Rates and batches: the searched ``lr`` is the rate every worker's optimizer gets (no rescaling);
``batch_size`` is per worker, so one optimizer step averages ``N x batch_size`` examples.

Failures: Ray Train does not retry (``max_failures=0``): a lost worker or node ends the trainer, the
driver raises, and Tune retries the trial from its last checkpoint up to the sweep's ``max_failures``,
as for a one-worker trial.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from orchestrator import session, trial as trials, workloads

# A rank that stops taking steps (one rank's loss not finite, the others' finite: the built-in loop ends
# that rank's epoch) leaves the others waiting in DDP's gradient average: after this long it is an error.
COLLECTIVE_TIMEOUT_S = 300
# The Tune trial's own ask: no CPU (Ray refuses an empty one; the memory is the driver's own share).
DRIVER: dict[str, float] = {"cpu": 0.0, "memory": float(64 * 2**20)}
# How long a stopped trial waits for its Train controller to abort (end its workers, remove their placement group).
ABORT_TIMEOUT_S = 60.0

# The Train controller of each data-parallel trial running in this process (a Tune trial's actor), by trial id,
# from the trial's first report until its trainer has ended: ``abort_trainer`` ends it.
_controllers: dict[str, Any] = {}


class DataParallel(session.Parallel):
    """DDP over the process group Ray Train set up: ``rank`` of ``world_size``."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: expected 0 <= rank < world_size")
        self.rank, self.world_size, self.device = rank, world_size, device

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, dataset):
        return shard(dataset, self.rank, self.world_size)


def shard(dataset, rank: int, world_size: int):
    """Rank ``rank``'s share of ``dataset``: every ``world_size``-th example from ``rank`` on, of the first
    ``len // world_size * world_size`` examples, so every rank holds as many (and takes as many steps:
    DDP's gradient averaging needs each rank at every step)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: expected 0 <= rank < world_size")
    if world_size == 1:
        return dataset
    n = len(dataset) // world_size * world_size
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return torch.utils.data.TensorDataset(*(t[rank:n:world_size] for t in dataset.tensors))
    return torch.utils.data.Subset(dataset, range(rank, n, world_size))


@dataclass(frozen=True)
class Scaling:
    """A data-parallel trial's shape: ``workers`` processes, each with ``cpu`` CPUs, ``gpu`` GPUs and the
    ``custom`` resources."""

    workers: int
    cpu: float = 1.0
    gpu: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: expected >= 1")

    def backend(self) -> str:
        """nccl when each worker holds a whole GPU (or more); gloo on CPUs and for workers sharing a GPU
        (NCCL refuses two ranks on one device)."""
        return "nccl" if self.gpu >= 1 else "gloo"

    def per_worker(self) -> dict[str, float]:
        return {"CPU": self.cpu, **({"GPU": self.gpu} if self.gpu else {}), **self.custom}


def concurrent_trials(scaling: Scaling, resources: dict[str, float]) -> int:
    """How many data-parallel trials ``resources`` (the cluster's totals) hold at once: the scarcest
    resource over the trial's whole ask (``workers`` x per worker) decides; at least 1. Tune is limited
    to this many (``max_concurrent_trials``): the drivers ask for no CPU, so without it every trial of a
    round would start a trainer, and those that do not fit would time out waiting for their workers."""
    asks = {k: v * scaling.workers for k, v in scaling.per_worker().items() if v > 0}
    slots = [int(resources.get(k, 0.0) / v + 1e-9) for k, v in asks.items()]
    return max(1, min(slots, default=1))


def worker_loop(loop_config: dict) -> None:
    """What each Ray Train worker runs: the trial's training function with a ``DataParallel`` trial;
    every rank reports each epoch (Train's report is collective), only rank 0's metrics and checkpoint
    are kept."""
    import ray.train
    import ray.train.torch

    config, state = loop_config["config"], loop_config["state"]
    torch.set_num_threads(max(1, int(loop_config.get("threads", 1))))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if loop_config.get("gpu") else torch.device("cpu")

    def sink(metrics: dict, save: dict | None) -> None:
        item = None
        if rank == 0:  # Train refuses tensors in metrics: the checkpoint travels as state.pt's bytes
            data = None
            if save is not None:
                buffer = io.BytesIO()
                torch.save(save, buffer)
                data = buffer.getvalue()
            item = (metrics, data)
        ray.train.report({"sweep": item})

    parallel = DataParallel(rank, world, device)
    if config.get("train"):
        fn, name = workloads.resolve(str(config["train"]), key="train"), f"train={config['train']!r}"
        wrap = True
    else:
        fn, name, wrap = trials.train_workload, f"workload={config['workload']!r}", False
    trial = session.Trial(config, function=name, sink=sink, state=state, device=device, parallel=parallel)
    session.run(fn, trial, wrap_errors=wrap)


def _forwarder(queue):
    """A Ray Train callback (built here: ``ray.train`` is imported only in a trial) that puts rank 0's
    ``(metrics, checkpoint state, controller)`` of each report on ``queue``, ``controller`` being the Train
    controller's own actor handle with the first report (None after); once the queue is gone (the Tune
    trial ended: ASHA stopped it), it ends the Train controller, and with it the workers."""
    from ray.train.v2.api.callback import UserCallback

    class Forward(UserCallback):
        def __init__(self, queue) -> None:
            self.queue = queue
            self.sent_controller = False

        def after_report(self, run_context, metrics, checkpoint) -> None:
            import ray

            item = metrics[0].get("sweep") if metrics else None
            if item is None:
                return
            controller = None if self.sent_controller else ray.get_runtime_context().current_actor
            try:
                self.queue.put((*item, controller))
                self.sent_controller = True
            except Exception:  # the queue's actor died with the Tune trial that owned it
                ray.actor.exit_actor()

    return Forward(queue)


def trainable(scaling: Scaling):
    """The Tune trainable of a data-parallel trial: the function trainable of ``ddp_trial`` (a closure over
    ``scaling``; Tune pickles it) whose ``cleanup`` (Tune's stop of the trial: ASHA stopped it, or the sweep
    ended) first aborts the trial's Train run, while the trial's actor still lives (``abort_trainer``)."""
    from ray.tune.trainable.function_trainable import wrap_function

    def ddp_trial(config: dict) -> None:
        from ray import tune
        from ray.train.torch import TorchConfig
        from ray.train.v2.api.config import FailureConfig, RunConfig, ScalingConfig
        from ray.train.v2.torch.torch_trainer import TorchTrainer
        from ray.util.queue import Empty, Queue

        state = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                state = trials.load_state(d)
        queue = Queue(actor_options={"num_cpus": 0})
        trial_id = tune.get_context().get_trial_id() or "trial"
        trainer = TorchTrainer(
            worker_loop,
            train_loop_config={"config": config, "state": state, "threads": scaling.cpu, "gpu": scaling.gpu > 0},
            torch_config=TorchConfig(backend=scaling.backend(), timeout_s=COLLECTIVE_TIMEOUT_S),
            scaling_config=ScalingConfig(
                num_workers=scaling.workers, use_gpu=scaling.gpu > 0, resources_per_worker=scaling.per_worker()
            ),
            run_config=RunConfig(
                name=f"{trial_id}-{os.getpid()}",
                storage_path=os.path.join(tempfile.gettempdir(), "sweep-train"),
                failure_config=FailureConfig(max_failures=0, max_preemption_failures=0),
                callbacks=[_forwarder(queue)],
            ),
        )
        outcome: dict[str, Any] = {}

        def fit() -> None:
            try:
                trainer.fit()
            except BaseException as exc:  # handed to the trial's thread below
                outcome["error"] = exc

        thread = threading.Thread(target=fit, name=f"train-{trial_id}", daemon=True)
        thread.start()
        last = None  # the trial's last report, held until the trainer has ended (see below)
        try:
            while True:
                try:
                    metrics, data, controller = queue.get(timeout=1.0)
                except Empty:
                    if not thread.is_alive() and queue.empty():
                        break
                    continue
                if controller is not None and thread.is_alive():
                    _hold(trial_id, controller)
                if metrics.get("diverged") or int(metrics.get("epoch", 0)) >= int(config["max_epochs"]):
                    last = (metrics, data)
                else:
                    _report(metrics, data)
            if last is not None:
                # Tune (ASHA at max_t) may stop the trial at its last report and kill this actor; the trainer,
                # owned by it, would die before removing its placement group, so the last report waits for it.
                _report(*last)
        finally:
            import ray

            if thread.is_alive():  # the trial ends (stopped, or an error) while its trainer runs: end it
                abort_trainer(trial_id)
            _hold(trial_id, None)
            ray.kill(queue.actor)  # type: ignore[arg-type]  # a trial stopped by ASHA: the callback sees the queue gone, ends the run
        if "error" in outcome:
            error = outcome["error"]
            text = " ".join(str(error).split())
            text = text if len(text) <= 1500 else f"{text[:500]} ... {text[-900:]}"  # the kind, and the cause
            raise RuntimeError(f"data-parallel trial ({scaling.workers} workers): {type(error).__name__}: {text}")

    class DataParallelTrial(wrap_function(ddp_trial)):  # type: ignore[misc]
        def cleanup(self) -> None:
            try:
                abort_trainer(self.trial_id)
            finally:
                super().cleanup()

    return DataParallelTrial


def _hold(trial_id: str, controller: Any) -> None:
    """Keep ``controller`` as the running trial's (None: forget it). A module function, so that the trial's
    function (a closure: Tune pickles it by value, with copies of the globals it names) and the trainable's
    ``cleanup`` share this process's one ``_controllers``."""
    if controller is None:
        _controllers.pop(trial_id, None)
    else:
        _controllers[trial_id] = controller


def abort_trainer(trial_id: str) -> None:
    """End the Train run of the data-parallel trial ``trial_id`` running in this process, if it runs: its
    controller aborts (ends its workers, removes their placement group, stops Train's placement-group
    cleaner) and exits; waits for that, up to ``ABORT_TIMEOUT_S``.

    Tune ends a stopped trial's actor right after its ``cleanup``; the controller, an actor this one owns,
    dies with it, and the placement group it made (owned by the sweep's job) would hold the workers' CPUs
    until the sweep ends: Train's own cleaner asks the Ray State API, which an embedded Ray without a
    dashboard does not serve, whether the controller lives."""
    import ray

    controller = _controllers.pop(trial_id, None)
    if controller is None:
        return
    try:
        ray.get(controller.abort.remote(), timeout=ABORT_TIMEOUT_S)
    except ray.exceptions.RayActorError:  # the abort ends the controller: its call's outcome
        pass
    except ray.exceptions.GetTimeoutError:
        print(f"sweep: warning: trial {trial_id}: Ray Train did not abort within {ABORT_TIMEOUT_S:.0f} s", flush=True)


def _report(metrics: dict, data: bytes | None) -> None:
    """``tune.report`` the metrics, with ``data`` (a ``torch.save`` of the state) as the trial's checkpoint
    when given, in the file one-worker trials save theirs to."""
    from ray import tune

    if data is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, trials.CHECKPOINT_FILE), "wb") as f:
            f.write(data)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
