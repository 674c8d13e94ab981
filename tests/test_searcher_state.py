"""SweepState: the searcher's bookkeeping, driven by hand as Tune would drive it. No Ray cluster."""

from orchestrator import zoom
from orchestrator.state import SweepState


def state() -> SweepState:
    rules = zoom.Rules(
        low=-3.0, high=-1.0, spacing=1.0, max_epochs=3, max_rounds=2, points_per_round=2, resolution=0.1, tolerance=0.0
    )
    return SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=3, groups=[{}], base={"seed": 0})


def test_hands_out_the_coarse_round_then_waits_for_it():
    s = state()
    configs = [s.next_config(f"t{i}").config for i in range(3)]
    assert sorted(c["lr"] for c in configs) == [0.001, 0.01, 0.1]
    assert s.next_config("t3").config is None  # round 0 still running


def test_reconcile_requeues_a_planned_trial_tune_never_saved():
    s = state()
    configs = {f"t{i}": s.next_config(f"t{i}").config for i in range(3)}
    s.record("t0", {"epoch": 1, "val_loss": 1.0})
    lost = configs.pop("t2")  # the crash came after the searcher planned t2, before Tune saved it
    changes = s.reconcile(configs)
    assert changes == {"requeued": ["t2"], "adopted": [], "filled": [], "completed": []}
    again = s.next_config("t9").config
    assert again["lr"] == lost["lr"] and again["seed_offset"] == lost["seed_offset"]  # the same point, retrained
    assert "t2" not in s.trials and len(s.trials["t0"].curve) == 1  # nothing else touched


def test_reconcile_adopts_a_trial_tune_saved_ahead_of_the_searcher():
    s = state()
    ahead = state()
    configs = {f"t{i}": ahead.next_config(f"t{i}").config for i in range(3)}
    for tid in ("t0", "t1"):
        s.next_config(tid)  # the searcher's saved state knew only t0 and t1; Tune's knew t2 as well
    changes = s.reconcile(configs)
    assert changes["adopted"] == ["t2"] and not changes["requeued"]
    assert s.queue == [] and s.trials["t2"].config == configs["t2"]
    assert s.next_config("t3").config is None  # the adopted point is not handed out a second time
    for tid in ("t0", "t1", "t2"):
        for e in (1, 2, 3):
            s.record(tid, {"epoch": e, "val_loss": 1.0 / e})
        s.complete(tid, None, False)
    assert s.next_config("t4").config["round"] == 1  # round 0 complete: the zoom moves on


def test_reconcile_of_agreeing_states_changes_nothing():
    s = state()
    configs = {f"t{i}": s.next_config(f"t{i}").config for i in range(3)}
    before = (dict(s.trials), list(s.queue))
    assert not any(s.reconcile(configs).values())
    assert (dict(s.trials), list(s.queue)) == before


def test_reconcile_fills_epochs_the_searcher_lost_from_the_checkpoint_and_completes_finished_trials():
    s = state()
    configs = {f"t{i}": s.next_config(f"t{i}").config for i in range(3)}
    s.record("t0", {"epoch": 1, "val_loss": 0.9})  # the searcher saved t0 at epoch 1, t1 at none
    saved = [{"epoch": e, "val_loss": 1.0 / e} for e in (1, 2)]  # Tune's checkpoints are at epoch 2
    changes = s.reconcile(
        configs, {"t0": saved, "t1": saved, "t2": saved + [{"epoch": 3, "val_loss": 0.3}]}, finished={"t2"}
    )
    assert changes == {"requeued": [], "adopted": [], "filled": ["t0", "t1", "t2"], "completed": ["t2"]}
    assert s.trials["t0"].curve == [0.9, 0.5] and s.trials["t1"].curve == [1.0, 0.5]
    assert s.trials["t2"].done and len(s.trials["t2"].curve) == 3
    s.record("t1", {"epoch": 3, "val_loss": 0.4})  # Tune resumes t1 after its checkpoint: stays aligned
    assert s.trials["t1"].curve == [1.0, 0.5, 0.4]
    assert sorted(r["epoch"] for r in s.rows if r["trial_id"] == "t1") == [1, 2, 3]


def test_the_last_result_tune_resends_as_a_trial_ends_never_cuts_the_curve():
    s = state()
    s.next_config("t0")
    for epoch in (1, 2, 3):
        s.record("t0", {"epoch": epoch, "val_loss": 1.0 / epoch})
    # after a driver crash Tune's saved last result can be older than the checkpoint the trial resumed
    # from (epoch 3, nothing left to run): as the trial ends, Tune re-sends that stale result with done
    s.record("t0", {"epoch": 1, "val_loss": 1.0, "done": True})
    s.complete("t0", {"epoch": 1, "val_loss": 1.0, "done": True}, errored=False)
    assert s.trials["t0"].curve == [1.0, 0.5, 1.0 / 3] and s.trials["t0"].done
    assert [r["epoch"] for r in s.rows] == [1, 2, 3]
    s.next_config("t1")
    s.record("t1", {"epoch": 1, "val_loss": 2.0})
    s.record("t1", {"epoch": 1, "val_loss": 1.5})  # a replayed epoch (no done) still replaces the old one
    assert s.trials["t1"].curve == [1.5]
