"""The results vocabulary (no Ray): one TrialStatus enum, the Parquet schema as the one source of row keys."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator import documents, results, zoom
from orchestrator.results import TrialStatus


def test_statuses_are_the_strings_stored_in_parquet():
    assert [s.value for s in TrialStatus] == ["pending", "running", "completed", "stopped", "diverged", "errored"]
    assert TrialStatus("stopped") is TrialStatus.STOPPED and TrialStatus.STOPPED == "stopped"
    assert f"{TrialStatus.DIVERGED}" == str(TrialStatus.DIVERGED) == "diverged"  # what tables and Parquet show


@pytest.mark.parametrize(
    "diverged, errored, epochs, max_epochs, expected",
    [
        (True, True, 3, 3, "diverged"),  # a non-finite last metric wins over the error
        (False, True, 3, 3, "errored"),
        (False, False, 3, 3, "completed"),
        (False, False, 4, 3, "completed"),
        (False, False, 2, 3, "stopped"),
        (False, False, 2, 0, "stopped"),  # max_epochs unknown: never called completed
    ],
)
def test_an_ended_trials_status_is_derived_in_one_place(diverged, errored, epochs, max_epochs, expected):
    status = TrialStatus.ended(diverged=diverged, errored=errored, epochs=epochs, max_epochs=max_epochs)
    assert status is TrialStatus(expected)


def test_the_schema_is_the_one_source_of_row_keys():
    assert set(results.TRIAL_KEYS) <= set(results.SCHEMA.names)
    assert list(results.TRIAL_KEYS) + list(results.EPOCH_KEYS) == sorted(
        results.SCHEMA.names, key=lambda n: (n not in results.TRIAL_KEYS, results.SCHEMA.names.index(n))
    )
    assert {"epoch", "val_loss", "train_loss", "val_error", "node_ip", "ended_at"} <= set(results.EPOCH_KEYS)


def test_every_column_a_trial_reports_is_kept_and_nothing_else_is_collected(tmp_path):
    from orchestrator.searcher import SweepState

    rules = zoom.Rules(low=-2.0, high=-2.0, spacing=1.0, max_epochs=1)
    s = SweepState(rules=rules, param="lr", metric="val_loss", decision_epoch=1, groups=[{}], base={})
    config = s.next_config("t0").config
    reported = {
        "epoch": 1,
        "train_loss": 0.5,
        "val_loss": 0.4,
        "val_error": 0.1,
        "lr_epoch": 0.01,
        "diverged": False,
        "device": "cpu",
        "node_ip": "10.0.0.7",
        "epoch_seconds": 0.25,
        "ended_at": 1.7e9,
        "hostname": "h",
        "time_total_s": 3.0,
        "training_iteration": 1,
    }  # the last three: Tune's own
    s.record("t0", reported)
    (row,) = s.rows
    assert set(row) <= set(results.SCHEMA.names)  # collected only what is stored
    assert set(results.EPOCH_KEYS) <= set(row)  # every epoch column the trial reported
    results.write_trials(tmp_path, [{**row, "lr": config["lr"], "status": TrialStatus.COMPLETED}])
    (stored,) = results.read_trials(tmp_path)
    assert {k: stored[k] for k in row} == row and stored["status"] == "completed"
    assert not math.isnan(stored["val_loss"])


def test_rounds_json_stores_labelled_brackets_and_still_reads_the_old_pairs(tmp_path):
    """A bracket is the range of rates the zoom searched: stored as {low, high}; folders written before hold
    [centre, half-width] in decades, read as the same bracket; anything else is one line naming the place."""
    r = zoom.Round(1, ((0, -2.0),), {0: (-2.0, 1.0)}, "refine")
    doc = results.rounds_document(
        metric="val_accuracy",
        mode="max",
        param="lr",
        max_epochs=4,
        rounds=[r],
        stop_reason=None,
        groups=None,
        cliff_margin=1.0,
    )
    assert doc["mode"] == "max" and doc["rounds"][0]["brackets"] == {
        "0": {"low": pytest.approx(0.001), "high": pytest.approx(0.1)}
    }
    results.write_json(tmp_path / results.ROUNDS, doc)
    stored = results.read_json(tmp_path / results.ROUNDS)["rounds"][0]["brackets"]["0"]
    assert documents.bracket_of(stored) == documents.bracket_of([-2.0, 1.0]) == documents.Bracket.of(-2.0, 1.0)
    for bad in ({"low": 1}, [1, 2, 3], "ab"):
        (tmp_path / results.ROUNDS).write_text(json.dumps({"rounds": [{"brackets": {"0": bad}}]}))
        with pytest.raises(results.ResultsError, match=r"rounds\[0\]\.brackets\['0'\]: expected \{low, high\}"):
            results.read_json(tmp_path / results.ROUNDS)
    (tmp_path / results.ROUNDS).write_text(json.dumps({"mode": "maximum"}))
    with pytest.raises(results.ResultsError, match="mode: unexpected value 'maximum'"):
        results.read_json(tmp_path / results.ROUNDS)


def test_mode_turns_a_metric_into_the_score_the_zoom_minimises_and_back():
    assert results.Mode.MAX.loss(0.9) == -0.9 and results.Mode.MAX.metric(-0.9) == 0.9
    assert results.Mode.MIN.loss(0.3) == 0.3 == results.Mode.MIN.metric(0.3) and str(results.Mode.MAX) == "max"
