"""Behaviours no other test covers: ASHA's scope (coarse round only, or every round), a round whose trials
all error, and pre-flight's regularisation FAIL and WARN bands. Real ASHA, real torch; the one Ray sweep is
marked slow."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from torch import nn

from orchestrator import Workload, parse_config, zoom
from orchestrator.preflight import run_checks
from orchestrator.searcher import Suggestion, SweepState
from orchestrator.workloads.digits import digits_arrays, digits_mlp, mlp

PREFLIGHT = {"width": 64, "depth": 2, "dropout": 0.0, "weight_decay": 0.0, "batch_size": 32, "lr": 0.01, "seed": 0}


# --- workloads, importable as tests.test_behaviours:NAME ------------------------------------------------
def dropout_ignored(config: dict) -> Workload:
    """digits_mlp that never builds its Dropout layers, whatever the config's ``dropout``."""
    return digits_mlp({**config, "dropout": 0.0})


def shifted_inputs(config: dict) -> Workload:
    """digits with standardised inputs then multiplied by ``scale`` and shifted by ``shift`` (config keys)."""
    x_tr, y_tr, x_va, y_va = digits_arrays()
    scale, shift = float(config.get("scale", 1.0)), float(config.get("shift", 0.0))
    torch.manual_seed(int(config.get("seed", 0)))
    return Workload(
        model=mlp(64, 10, 64, 2, 0.0),
        train=torch.utils.data.TensorDataset(x_tr * scale + shift, y_tr),
        val=torch.utils.data.TensorDataset(x_va * scale + shift, y_va),
        loss=nn.CrossEntropyLoss(),
        num_classes=10,
    )


def scaled_init(config: dict) -> Workload:
    """digits_mlp whose hidden Linear weights are ``init_scale`` x their Kaiming init; ``init_scale: default``
    re-initialises them the way PyTorch's nn.Linear does by default (0.41x Kaiming for ReLU: 1/sqrt(3) of the
    Kaiming-uniform bound at a=sqrt(5), i.e. std 1/sqrt(3 fan_in) against sqrt(2/fan_in))."""
    work = digits_mlp(config)
    hidden = [m for m in work.model if isinstance(m, nn.Linear)][:-1]
    with torch.no_grad():
        for layer in hidden:
            if config["init_scale"] == "default":
                layer.reset_parameters()
            else:
                layer.weight.mul_(float(config["init_scale"]))
    return work


def always_raises(config: dict) -> Workload:
    """Crashes at every build: a user's bug that no learning rate escapes."""
    raise RuntimeError(f"deliberate failure at every lr (this one {config['lr']})")


# --- 16. ASHA's scope ------------------------------------------------------------------------------------
def asha_config(coarse_only: bool):
    return parse_config(
        {
            "name": "t",
            "workload": "digits_mlp",
            "max_epochs": 6,
            "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}},
            "asha": {"grace_period": 2, "reduction_factor": 3, "coarse_only": coarse_only},
        }
    )


def drive(scheduler, rounds_and_losses: list[tuple[int, float]], epochs: int = 4) -> dict[str, list[str]]:
    """Drive ``scheduler`` as Tune does: trials added, then results epoch by epoch, all trials in step.
    Each trial is a real (stub) Tune Trial with its round in its config. Returns each trial's decisions."""
    from ray.tune.experiment import Trial

    scheduler.set_search_properties("val_loss", "min")
    trials = [
        Trial("__fake", config={"round": rnd, "lr": 0.01}, trial_id=f"r{rnd}_{i}", stub=True)
        for i, (rnd, _) in enumerate(rounds_and_losses)
    ]
    for t in trials:
        scheduler.on_trial_add(None, t)
    decisions: dict[str, list[str]] = {t.trial_id: [] for t in trials}
    live = list(zip(trials, (loss for _, loss in rounds_and_losses)))
    for epoch in range(1, epochs + 1):
        for t, loss in list(live):
            decision = scheduler.on_trial_result(
                None, t, {"epoch": epoch, "val_loss": loss / epoch, "training_iteration": epoch}
            )
            decisions[t.trial_id].append(decision)
            if decision == "STOP":
                live.remove((t, loss))
    return decisions


def test_asha_stops_only_coarse_round_trials_by_default():
    from orchestrator.tuning import make_scheduler

    # three round-0 trials, then round-1 trials worse than all of them: ASHA (rung at epoch 2, keep the best
    # third) stops the two worse round-0 trials and would stop round 1's; coarse_only lets those run
    plan = [(0, 1.0), (0, 2.0), (0, 3.0), (1, 5.0), (1, 6.0), (1, 7.0)]
    decisions = drive(make_scheduler(asha_config(coarse_only=True)), plan)
    assert decisions["r0_0"] == ["CONTINUE"] * 4
    assert decisions["r0_1"][-1] == "STOP" and decisions["r0_2"][-1] == "STOP" and len(decisions["r0_2"]) == 2
    for tid in ("r1_3", "r1_4", "r1_5"):
        assert decisions[tid] == ["CONTINUE"] * 4, (tid, decisions[tid])  # refinement runs to the end


def test_asha_applies_to_every_round_when_coarse_only_is_false():
    from orchestrator.tuning import make_scheduler

    plan = [(0, 1.0), (0, 2.0), (0, 3.0), (1, 5.0), (1, 6.0), (1, 7.0)]
    decisions = drive(make_scheduler(asha_config(coarse_only=False)), plan)
    stopped = {tid for tid, d in decisions.items() if d[-1] == "STOP"}
    assert {"r1_4", "r1_5"} <= stopped and "r0_0" not in stopped  # round 1 is judged at the rung as well
    assert all(len(decisions[tid]) == 2 for tid in stopped)  # at the first rung, epoch 2


# --- 17. a round whose trials all error --------------------------------------------------------------------
def searcher_state(max_rounds: int = 3) -> SweepState:
    rules = zoom.Rules(low=-3.0, high=-1.0, spacing=1.0, max_epochs=3, max_rounds=max_rounds, points_per_round=2)
    return SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=1, groups=[{}], base={"seed": 0})


def test_a_round_whose_trials_all_error_ends_the_search_with_the_reason():
    s = searcher_state()
    for i in range(3):
        s.next_config(f"t{i}")
    assert s.next_config("t3") == Suggestion(None, finished=False)  # round 0 running: ask again later
    for i in range(3):
        s.complete(f"t{i}", None, errored=True)  # each crashed before reporting an epoch
    assert s.next_config("t4").finished  # not a wait: Tune would otherwise ask forever
    assert s.stop_reason == "no trial of round 0 reported a result (all errored)"
    # a later round: round 0 trained, every round-1 trial crashed
    s = searcher_state()
    for i in range(3):
        s.next_config(f"t{i}")
        for e in (1, 2, 3):
            s.record(f"t{i}", {"epoch": e, "val_loss": 1.0 + abs(i - 1) / e})
        s.complete(f"t{i}", None, errored=False)
    round1 = []
    while s.next_config(f"u{len(round1)}").config is not None:
        round1.append(f"u{len(round1)}")
    assert round1 and {s.trials[t].round for t in round1} == {1}
    for tid in round1:
        s.complete(tid, None, errored=True)
    assert s.next_config("v").finished and s.stop_reason == "no trial of round 1 reported a result (all errored)"


@pytest.mark.slow
def test_a_sweep_whose_every_trial_errors_ends_with_the_error_not_a_hang(local_ray, tmp_path, capsys):
    from orchestrator import cli

    path = tmp_path / "doomed.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "doomed",
                "workload": "tests.test_behaviours:always_raises",
                "max_epochs": 2,
                "storage": str(tmp_path / "runs"),
                "max_failures": 0,
                "space": {"lr": {"log": [1e-3, 1e-2], "per_decade": 1}},
                "zoom": {"max_rounds": 3},
            }
        )
    )
    assert cli.main(["run", str(path), "--no-check", "--quiet"]) == 1  # a run-time failure, not bad input
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sweep: error: "), err
    assert "the search stopped: no trial of round 0 reported a result (all errored)" in err[0]
    assert "2 of 2 trials errored, first `" in err[0] and "RuntimeError: deliberate failure at every lr" in err[0]
    folder = tmp_path / "runs" / "doomed"
    import pyarrow.parquet as pq

    rows = pq.read_table(folder / "trials.parquet").to_pylist()
    assert sorted(r["lr"] for r in rows) == [1e-3, 1e-2] and {r["status"] for r in rows} == {"errored"}


# --- 19. pre-flight: regularisation FAIL, and the WARN bands -------------------------------------------------
def test_regularisation_fails_for_a_workload_that_ignores_dropout():
    (check,) = run_checks(
        "tests.test_behaviours:dropout_ignored", {**PREFLIGHT, "dropout": 0.3}, only=["regularisation"]
    )
    assert check.status == "fail" and "no effect" in check.advice, check
    on, off = (float(v) for v in check.measured.removeprefix("objective ").split(" off")[0].split(" on vs "))
    assert on == off  # the two runs are the same run
    # the honest workload passes with the same config
    (honest,) = run_checks("digits_mlp", {**PREFLIGHT, "dropout": 0.3}, only=["regularisation"])
    assert honest.status == "pass", honest
    # weight decay is the optimiser's, so a workload cannot ignore it: passes even here
    (wd,) = run_checks(
        "tests.test_behaviours:dropout_ignored",
        {**PREFLIGHT, "dropout": 0.3, "weight_decay": 1e-3},
        only=["regularisation"],
    )
    assert wd.status == "pass", wd


def test_regularisation_is_a_warning_when_the_model_cannot_overfit_either():
    (check,) = run_checks(
        "tests.broken_workloads:labels_ignored", {**PREFLIGHT, "dropout": 0.3}, only=["regularisation"]
    )
    assert check.status == "warn" and "inconclusive" in check.advice, check


@pytest.mark.parametrize(
    "scale, shift, status",
    [
        (1.0, 0.0, "pass"),
        (1.0, 0.49, "pass"),  # |mean| <= 0.5
        (1.0, 1.0, "warn"),  # 0.5 < |mean| <= 3: e.g. one global normalisation for all pixels
        (1.0, 2.9, "warn"),
        (1.0, 3.2, "fail"),  # |mean| > 3
        (0.55, 0.0, "pass"),  # std in [0.5, 2]
        (0.3, 0.0, "warn"),  # std in [0.1, 0.5)
        (1.8, 0.0, "pass"),
        (4.0, 0.0, "warn"),  # std in (2, 10]
        (0.05, 0.0, "fail"),  # std < 0.1
        (12.0, 0.0, "fail"),  # std > 10
    ],
)
def test_preprocessing_bands(scale, shift, status):
    (check,) = run_checks(
        "tests.test_behaviours:shifted_inputs", {**PREFLIGHT, "scale": scale, "shift": shift}, only=["preprocessing"]
    )
    assert check.status == status, check


@pytest.mark.parametrize(
    "init_scale, status",
    [
        (1.0, "pass"),  # Kaiming
        ("default", "warn"),  # PyTorch's default Linear init: 0.41x Kaiming, in [0.2, 0.5)
        (0.45, "warn"),  # weights in [0.2, 0.5) and activations still above 0.1x (0.45^2 after 2 layers)
        (2.5, "warn"),  # weights in (2, 5] and activations under 10x (2.5^2)
        (0.3, "fail"),  # weights would only warn, but the signal collapses: 0.3^2 = 0.09x the input's std
        (0.1, "fail"),  # under 0.2x the law
    ],
)
def test_initialisation_bands(init_scale, status):
    (check,) = run_checks(
        "tests.test_behaviours:scaled_init", {**PREFLIGHT, "init_scale": init_scale}, only=["initialisation"]
    )
    assert check.status == status, check
    if init_scale == "default":
        low, high = (float(v) for v in check.measured.split("weight std/law in [")[1].split("]")[0].split(", "))
        assert math.isclose(low, 1 / math.sqrt(6), rel_tol=0.15) and high < 0.5  # 1/sqrt(3 fan_in) / sqrt(2/fan_in)
