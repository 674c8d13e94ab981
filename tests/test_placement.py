"""GPU placement without GPUs: a ``ray.cluster_utils.Cluster`` whose two worker nodes advertise fake
GPUs; a sweep asking for ``{cpu: 0.5, gpu: 0.5}`` per trial must run every trial on a GPU node with
``CUDA_VISIBLE_DEVICES`` set, use both nodes, and never run more trials at once than the nodes fit.

The trials record where they ran through a plugin workload (``tests.test_placement:recording_workload``,
the digits MLP plus a record per trial: node id, CUDA_VISIBLE_DEVICES, Ray's GPU ids, first and last
use of the loss). torch sees no CUDA here, so the trials train on the CPU; that is expected.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

# Per node: 1 CPU and 2 fake GPUs (the default num_cpus of cluster_utils nodes is 1).
NODE_CPUS, NODE_GPUS = 1, 2
TRIAL_CPU, TRIAL_GPU = 0.5, 0.5


def trials_per_node(cpus: float = NODE_CPUS, gpus: float = NODE_GPUS) -> int:
    """How many trials a node fits: the scarcer of its CPUs and GPUs decides (here 1 CPU / 0.5 = 2,
    although 2 GPUs / 0.5 = 4)."""
    return min(math.floor(cpus / TRIAL_CPU), math.floor(gpus / TRIAL_GPU))


class _TimedLoss:
    """The workload's loss, recording the time of its first and last call into the trial's record."""

    def __init__(self, loss, path: Path, record: dict):
        self.loss, self.path, self.record = loss, path, record

    def __call__(self, outputs, targets):
        self.record["end"] = time.time()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record))
        os.replace(tmp, self.path)
        return self.loss(outputs, targets)


def recording_workload(config: dict):
    """Plugin workload: the digits MLP, plus ``record_dir/<trial id>.json`` saying where the trial ran."""
    import ray
    from ray import tune

    from orchestrator.workloads.digits import digits_mlp

    wl = digits_mlp(config)
    trial_id = tune.get_context().get_trial_id()
    record = {
        "trial_id": trial_id,
        "node_id": ray.get_runtime_context().get_node_id(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "pid": os.getpid(),
        "lr": config["lr"],
        "start": time.time(),
        "end": time.time(),
    }
    path = Path(config["record_dir"]) / f"{trial_id}.json"
    loss = _TimedLoss(wl.loss, path, record)
    loss(*[t[:2] for t in wl.val.tensors])  # write the record now
    # A barrier: wait until `barrier` trials have started. Trials this small end before Ray has started
    # the other nodes' actors, so without it one reused actor could run them all. Never reached within
    # the deadline: the trial fails (and with it the test), it does not go on without the others.
    barrier, deadline = int(config.get("barrier", 0)), time.monotonic() + 120
    while (started := len(list(path.parent.glob("*.json")))) < barrier:
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier: {started} of {barrier} trials started within 120 s")
        time.sleep(0.2)
    return dataclasses.replace(wl, loss=loss)


@pytest.fixture
def gpu_cluster(ray_temp):
    """A head (1 CPU, no GPU) and two worker nodes with 1 CPU and 2 fake GPUs each; torn down after."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # a session-wide local Ray of another test: this test needs its own cluster
        ray.shutdown()
    temp = ray_temp
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "num_gpus": 0, "temp_dir": temp, "include_dashboard": False},
    )
    try:
        nodes = {
            name: cluster.add_node(num_cpus=NODE_CPUS, num_gpus=NODE_GPUS, resources={name: 1}, temp_dir=temp)
            for name in ("node_a", "node_b")
        }
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, {name: node.node_id for name, node in nodes.items()}
    finally:
        ray.shutdown()
        cluster.shutdown()
        left = _pids_using(temp)
        assert not left, f"processes of the test cluster survived its shutdown: {left}"


def _pids_using(temp: str, wait: float = 10.0) -> list[int]:
    """Processes whose command line names the cluster's temp dir (raylets, GCS, workers), after a grace."""
    deadline = time.monotonic() + wait
    while True:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and temp.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


SWEEP = """\
name: placement
workload: tests.test_placement:recording_workload
max_epochs: 2
storage: {storage}
space:
  lr: {{log: [1e-4, 1e0], per_decade: 1}}
  optimizer: sgd
  width: 16
  record_dir: {records}
  barrier: {barrier}
asha: {{enabled: false}}
zoom: {{max_rounds: 1}}
max_failures: 0
resources: {{cpu: {cpu}, gpu: {gpu}}}
"""


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end sorts before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_max_overlap():
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([(0, 3), (1, 2), (1.5, 4), (5, 6)]) == 3


@pytest.mark.slow
def test_trials_run_on_fake_gpu_nodes_within_their_capacity(gpu_cluster, tmp_path):
    from orchestrator import config, run_sweep

    _cluster, gpu_nodes = gpu_cluster
    records = tmp_path / "records"
    records.mkdir()
    capacity = trials_per_node() * len(gpu_nodes)  # 2 nodes x 2 = 4 trials at once, of 5
    assert capacity == 4
    text = SWEEP.format(storage=tmp_path / "runs", records=records, cpu=TRIAL_CPU, gpu=TRIAL_GPU, barrier=capacity)
    cfg = config.parse(__import__("yaml").safe_load(text), "placement.yaml")
    assert (cfg.resources.cpu, cfg.resources.gpu) == (0.5, 0.5)  # fractions are allowed

    summary = run_sweep(cfg, quiet=True)

    rows = pq.read_table(summary.folder / "trials.parquet").to_pylist()
    trial_ids = {r["trial_id"] for r in rows}
    assert len(trial_ids) == 5 and all(r["status"] == "completed" for r in rows), [
        (r["trial_id"], r["status"], r.get("error")) for r in rows if r["status"] != "completed"
    ]
    recs = {p.stem: json.loads(p.read_text()) for p in records.glob("*.json")}
    assert set(recs) == trial_ids, "one record per trial, from inside the trial"

    node_of = {node_id: name for name, node_id in gpu_nodes.items()}
    for rec in recs.values():
        assert rec["node_id"] in node_of, f"trial {rec['trial_id']} ran off the GPU nodes: {rec}"
        assert rec["cuda_visible_devices"] in {str(i) for i in range(NODE_GPUS)}, rec
        assert rec["gpu_ids"] == [rec["cuda_visible_devices"]], rec  # one fake GPU, shared (gpu 0.5)
    assert {node_of[r["node_id"]] for r in recs.values()} == {"node_a", "node_b"}, "both GPU nodes were used"
    assert len({(r["node_id"], r["cuda_visible_devices"]) for r in recs.values()}) >= 2

    for name, node_id in gpu_nodes.items():
        spans = [(r["start"], r["end"]) for r in recs.values() if r["node_id"] == node_id]
        assert max_overlap(spans) <= trials_per_node(), f"{name} ran more trials at once than it fits"
    # never more than the nodes fit, and (the barrier holds the first trials) the bound is reached
    assert max_overlap([(r["start"], r["end"]) for r in recs.values()]) == capacity
