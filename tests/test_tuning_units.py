"""Small pure parts of orchestrator.tuning, its RunOptions and orchestrator.placement. No Ray cluster."""

import dataclasses
import os
import re

import pytest

from orchestrator import parse_config, tuning
from orchestrator.placement import pending_trials, trial_slots
from orchestrator.runoptions import RunOptions


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


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("quiet", "yes", "quiet='yes'"),
        ("resume", 1, "resume=1"),
        ("verbose", None, "verbose=None"),
        ("config_text", b"name: t", "config_text=b'name: t'"),
        ("checks", "big", "checks='big'"),
    ],
)
def test_run_options_refuse_a_bad_value_naming_it(field, value, named):
    with pytest.raises(ValueError, match=f"^{re.escape(named)}: expected"):
        RunOptions(**{field: value})


def test_run_options_are_frozen_with_sane_defaults_and_run_takes_nothing_else():
    options = RunOptions(checks=[1, 2])  # a list is kept as a tuple: the options stay hashable
    assert options.checks == (1, 2) and hash(options) == hash(RunOptions(checks=(1, 2)))
    assert RunOptions() == RunOptions(resume=False, quiet=False, verbose=False, config_text="", checks=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.quiet = True  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"^options='name: t': expected a tuning.RunOptions"):
        tuning.run(cfg(), "name: t")  # type: ignore[arg-type]  # the old positional config_text: refused
    with pytest.raises(ValueError, match=r"^limits=3: expected a reuse.Limits"):
        tuning.extend("runs/t", 3)  # type: ignore[arg-type]  # the old positional rounds: refused
