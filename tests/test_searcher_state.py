"""SweepState: the searcher's bookkeeping, driven by hand as Tune would drive it. No Ray cluster."""
from orchestrator import zoom
from orchestrator.searcher import SweepState


def state() -> SweepState:
    rules = zoom.Rules(low=-3.0, high=-1.0, spacing=1.0, max_epochs=3, max_rounds=2, points_per_round=2,
                       resolution=0.1, tolerance=0.0)
    return SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=3, groups=[{}], base={"seed": 0})


def test_hands_out_the_coarse_round_then_waits_for_it():
    s = state()
    configs = [s.next_config(f"t{i}") for i in range(3)]
    assert sorted(c["lr"] for c in configs) == [0.001, 0.01, 0.1]
    assert s.next_config("t3") is None  # round 0 still running


def test_reconcile_requeues_a_planned_trial_tune_never_saved():
    s = state()
    configs = {f"t{i}": s.next_config(f"t{i}") for i in range(3)}
    s.record("t0", {"epoch": 1, "val_loss": 1.0})
    lost = configs.pop("t2")  # the crash came after the searcher planned t2, before Tune saved it
    requeued, adopted = s.reconcile(configs)
    assert (requeued, adopted) == (["t2"], [])
    again = s.next_config("t9")
    assert again["lr"] == lost["lr"] and again["seed_offset"] == lost["seed_offset"]  # the same point, retrained
    assert "t2" not in s.trials and len(s.trials["t0"].curve) == 1  # nothing else touched


def test_reconcile_adopts_a_trial_tune_saved_ahead_of_the_searcher():
    s = state()
    ahead = state()
    configs = {f"t{i}": ahead.next_config(f"t{i}") for i in range(3)}
    for tid in ("t0", "t1"):
        s.next_config(tid)  # the searcher's saved state knew only t0 and t1; Tune's knew t2 as well
    requeued, adopted = s.reconcile(configs)
    assert (requeued, adopted) == ([], ["t2"])
    assert s.queue == [] and s.trials["t2"].config == configs["t2"]
    assert s.next_config("t3") is None  # the adopted point is not handed out a second time
    for tid in ("t0", "t1", "t2"):
        for e in (1, 2, 3):
            s.record(tid, {"epoch": e, "val_loss": 1.0 / e})
        s.complete(tid, None, False)
    assert s.next_config("t4")["round"] == 1  # round 0 complete: the zoom moves on


def test_reconcile_of_agreeing_states_changes_nothing():
    s = state()
    configs = {f"t{i}": s.next_config(f"t{i}") for i in range(3)}
    before = (dict(s.trials), list(s.queue))
    assert s.reconcile(configs) == ([], [])
    assert (dict(s.trials), list(s.queue)) == before
