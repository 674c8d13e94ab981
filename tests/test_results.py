"""The results vocabulary (no Ray): one TrialStatus enum, the Parquet schema as the one source of row keys."""
from __future__ import annotations

import math

import pytest

from orchestrator import results, zoom
from orchestrator.results import TrialStatus


def test_statuses_are_the_strings_stored_in_parquet():
    assert [s.value for s in TrialStatus] == ["pending", "running", "completed", "stopped", "diverged", "errored"]
    assert TrialStatus("stopped") is TrialStatus.STOPPED and TrialStatus.STOPPED == "stopped"
    assert f"{TrialStatus.DIVERGED}" == str(TrialStatus.DIVERGED) == "diverged"  # what tables and Parquet show


@pytest.mark.parametrize("diverged, errored, epochs, max_epochs, expected", [
    (True, True, 3, 3, "diverged"),  # a non-finite last metric wins over the error
    (False, True, 3, 3, "errored"),
    (False, False, 3, 3, "completed"),
    (False, False, 4, 3, "completed"),
    (False, False, 2, 3, "stopped"),
    (False, False, 2, 0, "stopped"),  # max_epochs unknown: never called completed
])
def test_an_ended_trials_status_is_derived_in_one_place(diverged, errored, epochs, max_epochs, expected):
    status = TrialStatus.ended(diverged=diverged, errored=errored, epochs=epochs, max_epochs=max_epochs)
    assert status is TrialStatus(expected)


def test_the_schema_is_the_one_source_of_row_keys():
    assert set(results.TRIAL_KEYS) <= set(results.SCHEMA.names)
    assert list(results.TRIAL_KEYS) + list(results.EPOCH_KEYS) == sorted(
        results.SCHEMA.names, key=lambda n: (n not in results.TRIAL_KEYS, results.SCHEMA.names.index(n)))
    assert {"epoch", "val_loss", "train_loss", "val_error", "node_ip", "ended_at"} <= set(results.EPOCH_KEYS)


def test_every_column_a_trial_reports_is_kept_and_nothing_else_is_collected(tmp_path):
    from orchestrator.searcher import SweepState

    rules = zoom.Rules(low=-2.0, high=-2.0, spacing=1.0, max_epochs=1)
    s = SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=1, groups=[{}], base={})
    config = s.next_config("t0").config
    reported = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_error": 0.1, "lr_epoch": 0.01, "diverged": False,
                "device": "cpu", "node_ip": "10.0.0.7", "epoch_seconds": 0.25, "ended_at": 1.7e9,
                "hostname": "h", "time_total_s": 3.0, "training_iteration": 1}  # the last three: Tune's own
    s.record("t0", reported)
    (row,) = s.rows
    assert set(row) <= set(results.SCHEMA.names)  # collected only what is stored
    assert set(results.EPOCH_KEYS) <= set(row)  # every epoch column the trial reported
    results.write_trials(tmp_path, [{**row, "lr": config["lr"], "status": TrialStatus.COMPLETED}])
    (stored,) = results.read_trials(tmp_path)
    assert {k: stored[k] for k in row} == row and stored["status"] == "completed"
    assert not math.isnan(stored["val_loss"])
