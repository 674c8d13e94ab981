"""Data-parallel trials (``resources: {workers: 2}``): each trial a Ray Train ``TorchTrainer`` of 2 gloo
workers, inside the sweep's Tune experiment, on a multi-node local cluster (``ray.cluster_utils.Cluster``);
a worker node is removed mid-trial and the trial it held resumes from its checkpoint on the other node once
that node is free (Tune's ``max_failures`` retry, as for a one-worker trial)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import node_lost_once_trained
from tests.test_resilience import trials_by_lr

EPOCHS = 8


def test_shards_are_equal_disjoint_and_cover_whole_steps():
    from orchestrator import distributed

    data = torch.utils.data.TensorDataset(torch.arange(11), torch.arange(11) * 10)
    parts = [distributed.shard(data, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]  # 11 // 3 * 3 = 9 examples: every rank takes as many steps
    seen = sorted(int(x) for p in parts for x in p.tensors[0])
    assert seen == list(range(9))
    assert all(torch.equal(p.tensors[1], p.tensors[0] * 10) for p in parts)  # pairs stay together
    assert distributed.shard(data, 0, 1) is data
    listed = distributed.shard(list(range(7)), 1, 2)  # any other dataset: a Subset
    assert list(listed) == [1, 3, 5]
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        distributed.shard(data, 2, 2)
    two = distributed.Scaling(workers=2, cpu=1, gpu=0.5)
    assert distributed.concurrent_trials(two, {"CPU": 5, "GPU": 4}) == 2  # CPUs: 5 // 2; GPUs: 4 // 1
    assert distributed.concurrent_trials(two, {"CPU": 1}) == 1  # never below one (it waits for a node)
    assert (two.backend(), distributed.Scaling(2, gpu=1).backend(), distributed.Scaling(2).backend()) == (
        "gloo",
        "nccl",
        "gloo",
    )  # NCCL refuses two ranks on one GPU


@pytest.mark.slow
def test_two_worker_trials_on_a_cluster_survive_a_lost_node(tmp_path, ray_temp):
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator import config, run_sweep

    # examples/ddp.yaml (workers: 2, the built-in loop), shortened: one round of 2 rates, ASHA off
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "ddp.yaml").read_text())
    data.update(
        name="ddp",
        max_epochs=EPOCHS,
        storage=str(tmp_path / "runs"),
        checkpoint_every=1,
        max_failures=2,
        asha={"enabled": False},
        zoom={"max_rounds": 1},
    )
    data["space"].update(lr={"log": [1e-2, 1e-1], "per_decade": 1}, width=32, batch_size=64)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = config.load(path)
    assert (cfg.resources.workers, cfg.resources.cpu) == (2, 1)
    temp = ray_temp
    # the head runs the drivers (no CPU); each worker node fits one trial's 2 workers (packed on it)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": temp, "include_dashboard": False}
    )
    nodes = [cluster.add_node(num_cpus=2, temp_dir=temp) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    folder = tmp_path / "runs" / "ddp"
    try:  # both trials training, 2 epochs saved each: a node goes (the retried trial waits for the other node)
        with node_lost_once_trained(cluster, nodes[1], folder, timeout=400) as loss:
            summary = run_sweep(cfg, quiet=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert loss.removed, loss.gave_up or "the sweep ended before a node could be removed"
    rows = trials_by_lr(summary.folder)
    assert sorted(rows) == pytest.approx([1e-2, 1e-1])
    for lr, trial_rows in rows.items():  # only rank 0 reports: one row per epoch, every epoch once
        assert trial_rows[-1]["status"] == "completed", (lr, trial_rows[-1])
        assert [r["epoch"] for r in trial_rows] == list(range(1, EPOCHS + 1))
        assert trial_rows[0]["lr_epoch"] == pytest.approx(lr)  # the searched rate, not rescaled
    retried = {lr: r for lr, r in rows.items() if r[0]["failures"] >= 1}
    assert retried, "the trial on the lost node was retried"
    for lr, trial_rows in retried.items():  # resumed from its checkpoint, not restarted
        before = [r["epoch"] for r in trial_rows if r["ended_at"] < loss.time]
        assert before == list(range(1, len(before) + 1)) and len(before) >= 1, f"lr {lr}: {before}"
    assert summary.lr in rows
