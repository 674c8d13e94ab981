"""Monitoring: the pure tallies and HParams values, the callbacks on stand-in trials (fast), and a real sweep
on a real local Ray read back through a real TensorBoard server's HTTP API (slow)."""
from __future__ import annotations

import glob
import json
import math
import pickle
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from ray.tune.logger import TBXLoggerCallback

from orchestrator import board, cli, progress, tbserver


# --- pure parts --------------------------------------------------------------------------------------
def test_hparams_of_flattens_and_keeps_every_value():
    hp = progress.hparams_of({"lr": 1e-3, "optimizer": "adam", "nesterov": True, "width": 64, "_cpus": 1.0,
                             "milestones": [10, 20], "law": {"name": "step", "gamma": 0.1}, "note": None,
                             "seed": np.int64(3), "bad": math.inf})
    assert hp == {"lr": 1e-3, "optimizer": "adam", "nesterov": True, "width": 64.0, "milestones": "[10, 20]",
                  "law/name": "step", "law/gamma": 0.1, "seed": 3.0, "bad": "inf", "schedule": "constant"}
    assert progress.hparams_of({"schedule": "cosine"})["schedule"] == "cosine"


def test_tally_counts_epochs_rounds_and_outcomes():
    t = progress.Tally()
    cfg = {"max_epochs": 4}
    t.add("c", {**cfg, "round": 0, "lr": 1.0})
    assert t.count("pending") == 1
    assert t.start("a", {**cfg, "round": 0, "lr": 0.01}) is True  # first start in round 0
    assert t.start("b", {**cfg, "round": 0, "lr": 0.1}) is False
    assert t.start("c", {**cfg, "round": 0, "lr": 1.0}) is False
    for e in (1, 2, 3, 4):
        assert t.result("a", {"epoch": e, "val_loss": 1.0 / e})
    assert not t.result("a", {"epoch": 4, "val_loss": 0.25})  # Tune re-sends the last result: counted once
    t.result("b", {"epoch": 1, "val_loss": 0.9})
    t.result("b", {"epoch": 2, "val_loss": 0.8})
    t.result("c", {"epoch": 1, "val_loss": math.inf, "diverged": True})
    assert t.end("a", {"epoch": 4}).status == "completed"
    assert t.end("b", {"epoch": 2}).status == "stopped"
    assert t.end("c", {"epoch": 1, "diverged": True}).status == "diverged"
    assert t.epochs == 7 and t.fte == pytest.approx(7 / 4)
    assert (t.best, t.best_trial, t.best_epoch, t.best_lr()) == (0.25, "a", 4, 0.01)
    assert t.bracket(0) == (0.01, 1.0) and t.round_done(0)
    assert t.start("d", {**cfg, "round": 1, "lr": 0.03}) is True
    t.end("d", None, errored=True)
    assert t.count("errored", round_index=1) == 1 and t.current_round == 1
    line = t.status_line(75)
    assert line.startswith("[sweep 0:01:15] round 1 (lr 0.03..0.03)")
    assert "0 running" in line and "1 completed, 1 stopped early, 1 diverged, 1 errored" in line
    assert "best val_loss 0.2500 (lr 0.01, trial a, epoch 4)" in line and "7 epochs = 1.8 FTE" in line
    state = json.dumps(asdict(t), sort_keys=True)
    assert json.dumps(asdict(progress.Tally.from_state(json.loads(state))), sort_keys=True) == state


# --- callbacks on stand-in trials --------------------------------------------------------------------
class FakeTrial:
    def __init__(self, folder: Path, trial_id: str, config: dict):
        self.trial_id = trial_id
        self.config = config
        self.evaluated_params = config
        self.local_path = str(folder / trial_id)
        self.last_result: dict = {}

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def __hash__(self):
        return hash(self.trial_id)


def events(path: Path) -> dict[str, list]:
    """tag -> [(step, value or hparams plugin payload)] from the event files under ``path``."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.plugins.hparams import plugin_data_pb2

    out: dict[str, list] = {}
    for f in sorted(glob.glob(str(path / "events.out.tfevents*"))):
        for ev in event_file_loader.EventFileLoader(f).Load():
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    value = plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
                else:
                    value = v.simple_value if v.HasField("simple_value") else (
                        v.tensor.float_val[0] if v.tensor.float_val else v.tensor)  # the loader makes scalars tensors
                out.setdefault(v.tag, []).append((ev.step, value))
    return out


class Clock:
    """Stands in for the ``time`` module: ``time()`` is ``now``, which only ``advance`` moves."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drive(cbs, folder: Path, between_rounds=lambda: None) -> list[FakeTrial]:
    """A tiny two-round sweep of stand-in trials through the callbacks, the way Tune calls them;
    ``between_rounds()`` is called after round 0 ended, before round 1 starts."""
    cfg = {"max_epochs": 3, "optimizer": "sgd", "_cpus": 1.0}
    trials = [FakeTrial(folder, "t1", {**cfg, "round": 0, "lr": 0.01}),
              FakeTrial(folder, "t2", {**cfg, "round": 0, "lr": 1.0}),
              FakeTrial(folder, "t3", {**cfg, "round": 1, "lr": 0.003})]
    for cb in cbs:
        cb.setup()

    def result(tr, epoch, loss, **extra):
        tr.last_result = {"epoch": epoch, "training_iteration": epoch, "val_loss": loss, "train_loss": loss / 2,
                          "val_error": 0.1, "lr_epoch": tr.config["lr"], "diverged": False, **extra}
        for cb in cbs:
            cb.on_trial_result(iteration=0, trials=trials, trial=tr, result=dict(tr.last_result))

    def call(hook, tr):
        for cb in cbs:
            getattr(cb, hook)(iteration=0, trials=trials[:2] if tr is not trials[2] else trials, trial=tr)
        for cb in cbs:
            cb.on_step_end(iteration=0, trials=trials)

    call("on_trial_start", trials[0])
    call("on_trial_start", trials[1])
    for e in (1, 2, 3):
        result(trials[0], e, 1.0 / e)
    result(trials[1], 1, math.inf, diverged=True)
    call("on_trial_complete", trials[1])
    call("on_trial_complete", trials[0])
    between_rounds()
    call("on_trial_start", trials[2])
    result(trials[2], 1, 0.9)
    call("on_trial_error", trials[2])
    for cb in cbs:
        cb.on_experiment_end(trials=trials)
    return trials


def test_callbacks_pickle_and_replace_the_default_tbx_logger(tmp_path):
    cbs = board.callbacks(tmp_path, verbose=True)
    assert isinstance(cbs[0], TBXLoggerCallback)  # so Tune adds no second TBX logger
    again = pickle.loads(pickle.dumps(cbs))  # Tune pickles the RunConfig into tuner.pkl
    assert [type(c) for c in again] == [type(c) for c in cbs] and again[2].verbose


def test_callbacks_write_trial_hparams_and_the_sweep_run(tmp_path, capsys, monkeypatch):
    clock = Clock(1_700_000_000.0)  # the progress clock is the test's: it moves only when told
    monkeypatch.setattr(board, "time", clock)
    cbs = board.callbacks(tmp_path, verbose=True, interval=3600)
    drive(cbs, tmp_path, between_rounds=lambda: clock.advance(75))
    t1, t2, t3 = (events(tmp_path / t) for t in ("t1", "t2", "t3"))
    assert [v for _, v in t1["ray/tune/val_loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert "ray/tune/lr_epoch" in t1 and "ray/tune/train_loss" in t1 and "ray/tune/val_error" in t1
    assert "ray/tune/val_loss" not in t2  # the diverged trial's inf is left out, not written
    assert "_hparams_/experiment" not in t1  # TensorBoard derives the experiment from all trials
    start = t1["_hparams_/session_start_info"][0][1].session_start_info
    assert start.hparams["lr"].number_value == 0.01 and start.hparams["optimizer"].string_value == "sgd"
    assert start.hparams["schedule"].string_value == "constant" and "_cpus" not in start.hparams
    status = {name: ev["_hparams_/session_end_info"][0][1].session_end_info.status
              for name, ev in (("t1", t1), ("t2", t2), ("t3", t3))}
    assert status == {"t1": 1, "t2": 2, "t3": 2}  # success; failure for the diverged and the errored one

    sweep = events(tmp_path / board.SWEEP_RUN)
    best = sweep["sweep/best_val_loss"]
    assert [s for s, _ in best] == [1, 2, 3, 4, 5] and best[-1][1] == pytest.approx(1 / 3)  # x: epochs spent
    assert [s for s, _ in sweep["rounds/lr_low"]] == [0, 1]  # step = round index
    assert [v for _, v in sweep["rounds/lr_low"]] == pytest.approx([0.01, 0.003])
    assert [v for _, v in sweep["rounds/lr_high"]] == pytest.approx([1.0, 0.003])
    assert [v for _, v in sweep["rounds/trials_started"]] == [2, 1]
    assert [v for _, v in sweep["rounds/trials_diverged"]] == [1, 0]
    assert [v for _, v in sweep["rounds/trials_errored"]] == [0, 1]
    assert "sweep/summary/text_summary" in sweep and "custom_scalars__config__" in sweep

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[sweep 0:00:00] round 0 started | trials 1 running, 2 waiting, 0 ended")
    assert any("trial t2 (round 0, lr 1) diverged after 1 epochs" in line for line in out)
    assert any("trial t1 (round 0, lr 0.01) completed after 3 epochs: best val_loss 0.3333" in line for line in out)
    assert any(line.startswith("[sweep 0:01:15] round 1 started") for line in out)
    assert out[-1].startswith("[sweep 0:01:15] round 1 (lr 0.003..0.003)")
    assert "1 completed, 0 stopped early, 1 diverged, 1 errored" in out[-1] and "5 epochs" in out[-1]


def test_quiet_prints_nothing_and_state_survives_a_resume(tmp_path, capsys):
    cbs = board.callbacks(tmp_path / "a", quiet=True)
    drive(cbs, tmp_path / "a")
    assert capsys.readouterr().out == ""
    fresh = board.callbacks(tmp_path / "a", quiet=True)
    for old, new in zip(cbs[1:], fresh[1:]):
        new.set_state(pickle.loads(pickle.dumps(old.get_state())))  # what Tune does on Tuner.restore
        assert new.tally.epochs == 5 and new.tally.best_trial == "t1"
    assert fresh[1].emitted == [0, 1]


def test_cli_tensorboard_errors_are_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["tensorboard", str(tmp_path / "absent")]) == 2
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert cli.main(["tensorboard", str(a_file)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("sweep: error: ") for line in lines)
    assert "no such sweep folder" in lines[0] and "not a folder" in lines[1]
    assert cli.main(["tensorboard", str(tmp_path), "--port", "70000"]) == 2  # argparse's usage error


# --- a real sweep, a real TensorBoard ----------------------------------------------------------------
def _get(url: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def tensorboard_over():
    servers = []

    def start(folder: Path) -> tbserver.TensorBoardServer:
        server = tbserver.launch(folder, host="127.0.0.1", port=0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert server.process.poll() is not None


@pytest.mark.slow
def test_real_sweep_in_tensorboard(local_ray, small_config, tensorboard_over, capsys):
    from orchestrator import config, tuning

    summary = tuning.run(config.load(small_config("tb")), quiet=True)
    folder = summary.folder
    assert "[sweep " not in capsys.readouterr().out  # quiet: no progress lines
    rows = pq.read_table(folder / "trials.parquet").to_pylist()
    trial_lr = {r["trial_id"]: r["lr"] for r in rows}
    assert (folder / board.SWEEP_RUN).is_dir()

    server = tensorboard_over(folder)
    assert server.url.startswith("http://127.0.0.1:")
    n_rounds = len(json.loads((folder / "rounds.json").read_text())["rounds"])
    deadline = time.time() + 120
    while True:  # TensorBoard loads the logdir in the background: wait until it has read all of it
        runs = set(_get(server.url, "/data/runs"))
        tags = _get(server.url, "/data/plugin/scalars/tags")
        lows = (_get(server.url, f"/data/plugin/scalars/scalars?run={board.SWEEP_RUN}&tag=rounds/lr_low")
                if "rounds/lr_low" in tags.get(board.SWEEP_RUN, {}) else [])
        done = set(trial_lr) | {board.SWEEP_RUN} <= runs and len(lows) == n_rounds and all(
            "ray/tune/val_loss" in tags.get(t, {}) for t in trial_lr)
        if done or time.time() > deadline:
            break
        time.sleep(1)
    assert set(trial_lr) | {board.SWEEP_RUN} <= runs
    for t in trial_lr:
        assert {"ray/tune/val_loss", "ray/tune/train_loss", "ray/tune/val_error", "ray/tune/lr_epoch"} <= set(tags[t])
    assert {"sweep/best_val_loss", "sweep/best_lr", "rounds/lr_low", "rounds/lr_high", "rounds/trials_started",
            "rounds/trials_stopped"} <= set(tags[board.SWEEP_RUN])
    assert n_rounds == 2 and [p[1] for p in lows] == [0, 1]  # one point per round (step = round index)
    assert lows[0][2] == pytest.approx(1e-4, rel=1e-6)  # round 0's lowest learning rate
    # written at the very end (on_experiment_end), into the sweep folder itself, not Tune's staging copy
    assert "sweep/summary/text_summary" in _get(server.url, "/data/plugin/text/tags").get(board.SWEEP_RUN, [])

    experiment = _get(server.url, "/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    assert {"lr", "optimizer", "schedule", "round", "momentum", "width"} <= set(infos)
    assert infos["lr"]["differs"] and infos["round"]["differs"] and not infos["optimizer"]["differs"]
    assert infos["lr"]["domainInterval"] == {"minValue": 1e-4, "maxValue": 1.0}
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"ray/tune/val_loss", "ray/tune/lr_epoch"} <= metrics
    groups = _get(server.url, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 1000,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": "lr", "order": "ORDER_ASC", "includeInResult": True},
                      {"metric": {"tag": "ray/tune/val_loss", "group": ""}, "includeInResult": True}]})
    assert groups["totalSize"] == len(trial_lr)
    seen = {g["name"]: g["hparams"]["lr"] for g in groups["sessionGroups"]}
    assert seen == pytest.approx(trial_lr)
    assert [g["hparams"]["lr"] for g in groups["sessionGroups"]] == sorted(trial_lr.values())  # sortable by lr
