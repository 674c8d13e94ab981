"""A data-parallel trial that ASHA stops mid-way gives its workers' CPUs back: the next trial starts.

examples/ddp.yaml (2 workers x 1 CPU: one trial at a time on a 2-CPU Ray), shortened to one round of 4
rates of 2 epochs, ASHA on with a grace period of 1 epoch: the third trial (lr 1e-3, worse than both before
it at epoch 1) is stopped after its first epoch, and the fourth must still get both CPUs; no placement group
is left once the sweep has ended. The Ray is started as the
sweep's embedded one is, without a dashboard, so Ray Train's own placement-group cleaner cannot tell that
the stopped trial's controller is gone (it asks the State API); the trial aborts its Train run itself.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_resilience import trials_by_lr


@pytest.mark.slow
@pytest.mark.timeout(1200)  # unfixed, the 4th trial waits for ever; fixed: ~15 min at load 40 on 2 cores
def test_a_trial_asha_stops_frees_its_workers_for_the_next(tmp_path, ray_temp):
    import ray

    from orchestrator import config, run_sweep

    data = yaml.safe_load((ROOT / "examples" / "ddp.yaml").read_text())
    data.update(
        name="ddp-asha",
        max_epochs=2,
        storage=str(tmp_path / "runs"),
        checkpoint_every=1,
        max_failures=0,
        asha={"grace_period": 1},
        zoom={"max_rounds": 1, "points_per_round": 2},
    )
    data["space"].update(width=32, batch_size=64)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = config.load(path)
    ray.init(address="local", num_cpus=2, _temp_dir=ray_temp, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_sweep(cfg, quiet=True)
        left = {k: v["state"] for k, v in ray.util.placement_group_table().items() if v["state"] != "REMOVED"}
    finally:
        ray.shutdown()
    assert not left, f"placement groups still held after the sweep: {left}"
    rows = trials_by_lr(summary.folder)
    assert sorted(rows) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    ended = {lr: r[-1] for lr, r in rows.items()}
    stopped = [lr for lr, last in ended.items() if last["status"] == "stopped" and last["epoch"] < 2]
    assert stopped, {lr: (last["status"], last["epoch"]) for lr, last in ended.items()}
    first_stop = min(ended[lr]["ended_at"] for lr in stopped)
    later = [lr for lr, r in rows.items() if r[0]["ended_at"] > first_stop]
    assert later, "a trial trained after one was stopped early (it got the stopped trial's CPUs)"
