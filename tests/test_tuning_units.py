"""Small pure parts of orchestrator.tuning. No Ray cluster."""

import os

import pytest

from orchestrator import parse_config
from orchestrator.tuning import pending_trials, trial_slots


def cfg(**resources):
    return parse_config(
        {
            "name": "t",
            "workload": "digits_mlp",
            "max_epochs": 3,
            "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}},
            "resources": resources,
        }
    )


@pytest.mark.parametrize(
    "resources, cluster, slots",
    [
        ({"cpu": 1, "gpu": 0}, {"CPU": 16.0}, 16),
        ({"cpu": 1, "gpu": 0.25}, {"CPU": 16.0, "GPU": 1.0}, 4),  # the GPU share decides
        ({"cpu": 2, "gpu": 0.5}, {"CPU": 3.0, "GPU": 2.0}, 1),  # the CPUs decide
        ({"cpu": 1, "gpu": 1, "custom": {"a100": 1}}, {"CPU": 8.0, "GPU": 8.0, "a100": 2.0}, 2),
        ({"cpu": 1, "gpu": 1}, {"CPU": 8.0}, 1),  # no GPU yet (autoscaling): one at a time
    ],
)
def test_trial_slots_is_set_by_the_scarcest_resource(resources, cluster, slots):
    assert trial_slots(cfg(**resources), cluster) == slots


def test_pending_trials_sets_tunes_knob_only_while_it_runs_and_leaves_a_users_value(monkeypatch):
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    with pending_trials(6):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "6"
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "50")
    with pending_trials(6):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "50"
