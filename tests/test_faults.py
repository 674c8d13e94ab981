"""Faults and bad input: crashing and diverging trials, malformed configs, storage. Real Ray, real torch."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator import config, run_sweep, tuning
from orchestrator.config import ConfigError


# --- malformed input ---------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
keys = st.sampled_from(["name", "workload", "max_epochs", "space", "lr", "log", "per_decade", "asha", "zoom",
                        "grace_period", "resources", "gpu", "cpu", "seed", "storage", "metric", "mode",
                        "points_per_round", "bogus"]) | st.text(max_size=8)
documents = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                         | st.dictionaries(keys, children, max_size=6), max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_raise_only_config_error(doc):
    try:
        config.parse(doc, "fuzz.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text_raises_only_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        config.load(path)


@pytest.mark.parametrize("text, key", [
    ("name: x\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1], per_decade: 0}}", "per_decade"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1]}}\nzoom: {max_rounds: 1000000}", "zoom.max_rounds"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: 10000000\nspace: {lr: {log: [1e-3, 1e-1]}}", "max_epochs"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: []}}", "space.lr"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1]}, wd: {linear: [1, 0]}}", "space.wd"),
    ("name: ..\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1]}}", "name"),
    ("name: x\nworkload: 'tests.faulty_workloads:nothing'\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1]}}", "workload"),
    ("name: x\nworkload: digits_mlp\nmax_epochs: 5\nspace: {lr: {log: [1e-3, 1e-1]}}\nresources: {cpu: -1}", "resources.cpu"),
])
def test_malformed_configs_name_the_key(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert key in str(info.value) and str(path) in str(info.value)


def test_two_sweeps_with_one_name_never_share_a_folder(tmp_path):
    folder = tmp_path / "runs" / "same"
    tuning.claim_folder(folder, "first")
    with pytest.raises(tuning.SweepExistsError, match="already exists"):
        tuning.claim_folder(folder, "second")
    assert (folder / "sweep.yaml").read_text() == "first"


# --- crashing and diverging trials ---------------------------------------------------------------
@pytest.mark.slow
def test_crashing_and_diverging_trials_do_not_stop_the_sweep(local_ray, tmp_path):
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump({
        "name": "faulty", "workload": "tests.faulty_workloads:raises_at_1e_3", "max_epochs": 3,
        "storage": str(tmp_path / "runs"), "max_failures": 1,
        "space": {"lr": {"log": [1e-3, 1e5], "per_decade": 0.5}, "optimizer": "sgd", "momentum": 0.9, "width": 32},
        "asha": {"enabled": False}, "zoom": {"max_rounds": 2, "points_per_round": 2},
    }))
    summary = run_sweep(config.load(path), quiet=True)
    rows = pq.read_table(summary.folder / "trials.parquet").to_pylist()
    by_lr = {}
    for r in rows:
        by_lr.setdefault(r["lr"], []).append(r)
    crashed = by_lr[0.001]
    assert len(crashed) == 1 and crashed[0]["status"] == "errored"
    assert "deliberate failure for lr=0.001" in crashed[0]["error"]
    assert crashed[0]["failures"] == 2  # tried, retried once (max_failures: 1), then recorded
    diverged = by_lr[1e5]
    assert diverged[-1]["status"] == "diverged" and diverged[-1]["val_loss"] == math.inf
    assert len(diverged) < 3  # ended at once, not trained on
    assert 1e-3 < summary.lr < 10  # neither the crash nor the divergence poisoned the pick
    assert len(json.loads((summary.folder / "rounds.json").read_text())["rounds"]) == 2
    report = (summary.folder / "report.md").read_text()
    assert "errored" in report and "diverged" in report
