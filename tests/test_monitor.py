"""Monitoring: the pure tallies and HParams values, the callbacks on stand-in trials (fast), and a real sweep
on a real local Ray read back through a real TensorBoard server's HTTP API (slow)."""

from __future__ import annotations

import glob
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from ray.tune.logger import TBXLoggerCallback

from orchestrator import board, cli, progress, tbnames, tbserver, tbsummary


# --- pure parts --------------------------------------------------------------------------------------
def test_hparams_of_flattens_and_keeps_every_value():
    hp = tbnames.hparams_of(
        {
            "lr": 1e-3,
            "optimizer": "adam",
            "nesterov": True,
            "width": 64,
            "_cpus": 1.0,
            "milestones": [10, 20],
            "law": {"name": "step", "gamma": 0.1},
            "note": None,
            "seed": np.int64(3),
            "bad": math.inf,
        }
    )
    assert hp == {
        "lr": 1e-3,
        "optimizer": "adam",
        "nesterov": True,
        "width": 64.0,
        "milestones": "[10, 20]",
        "law/name": "step",
        "law/gamma": 0.1,
        "seed": 3.0,
        "bad": "inf",
        "schedule": "constant",
    }
    assert tbnames.hparams_of({"schedule": "cosine"})["schedule"] == "cosine"
    assert tbnames.hparams_of({"lr": 0.1, "round": 2, "seed_offset": 1}, ("round", "lr")) == {"lr": 0.1, "round": 2.0}
    law = {"name": "step", "gamma": 0.1}
    assert tbnames.hparams_of({"schedule": law}, ("schedule",)) == {"schedule": '{"gamma": 0.1, "name": "step"}'}


def test_run_names_read_round_rate_searched_values_and_id():
    searched = tbnames.Searched(param="lr", low=1e-4, high=1.0, grid=(("optimizer", ("sgd", "adam")),), max_rounds=3)
    assert searched.keys == ("round", "lr", "optimizer")
    cfg = {"round": 1, "lr": 0.0031622776, "optimizer": "adam", "seed_offset": 2, "checkpoint_every": 5}
    assert tbnames.run_name("3f2a1b9c", cfg, searched) == "r1 lr=0.00316 optimizer=adam 3f2a1b9c"
    assert tbnames.run_name("ab/c d", {"round": 0, "lr": 1e-05}) == "r0 lr=1e-05 ab_c_d"  # no folder separators
    assert tbnames.tag_of("val_loss") == "loss/val_loss" and tbnames.tag_of("lr_epoch") == "lr"
    assert tbnames.tag_of("val_accuracy", "val_accuracy") == "val_accuracy"


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


def test_the_tally_counts_an_epoch_on_a_fraction_of_the_data_as_that_fraction():
    t = progress.Tally()
    t.start("a", {"max_epochs": 4, "round": 0, "lr": 0.01, "data_fraction": 0.25})
    t.start("b", {"max_epochs": 4, "round": 1, "lr": 0.01})
    for e in (1, 2, 3, 4):
        t.result("a", {"epoch": e, "val_loss": 1.0})
        t.result("b", {"epoch": e, "val_loss": 1.0})
    assert t.epochs == 8 and t.fte == pytest.approx((4 * 0.25 + 4) / 4)  # the FTE of the final line, best.json
    state = asdict(t)
    del state["seen"]  # a state saved before the tally weighed epochs by their data
    assert progress.Tally.from_state(json.loads(json.dumps(state))).fte == pytest.approx(t.fte)


def test_the_best_so_far_follows_the_sweeps_mode():
    t = progress.Tally(metric="val_accuracy", mode="max", target=1.0)
    t.start("a", {"max_epochs": 3, "round": 0, "lr": 0.01})
    t.start("b", {"max_epochs": 3, "round": 0, "lr": 0.1})
    for e, acc in ((1, 0.5), (2, 0.8), (3, 0.7)):
        t.result("a", {"epoch": e, "val_accuracy": acc})
    t.result("b", {"epoch": 1, "val_accuracy": 0.6})
    t.result("b", {"epoch": 2, "val_accuracy": math.nan})  # diverged: never the best, whatever the mode
    assert (t.best, t.best_trial, t.best_epoch) == (0.8, "a", 2) and t.trials["b"].best == 0.6
    assert "best val_accuracy 0.8000 (lr 0.01, trial a, epoch 2)" in t.status_line(1)
    table = t.rounds_markdown()
    assert "| highest val_accuracy at any epoch |" in table and "| 0.8000 | 5 |" in table
    assert table.endswith("highest val_accuracy at any epoch 0.8000 at lr 0.01 (trial a, epoch 2)")
    again = progress.Tally.from_state(json.loads(json.dumps(asdict(t))))
    assert again.goal == t.goal and again.best == 0.8
    low = progress.Tally()  # mode min, the default: lower is better, as before
    low.start("a", {"max_epochs": 2, "round": 0, "lr": 0.01})
    low.result("a", {"epoch": 1, "val_loss": 0.5})
    low.result("a", {"epoch": 2, "val_loss": 0.8})
    assert (low.best, low.best_epoch) == (0.5, 1) and "| lowest val_loss at any epoch |" in low.rounds_markdown()


def test_the_first_page_pins_the_losses_unsmoothed(tmp_path):
    url = tbserver.first_page("http://127.0.0.1:6006/", tbserver.metric_of(tmp_path))  # no rounds.json: val_loss
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert url.startswith("http://127.0.0.1:6006/?") and parts.fragment == "timeseries" and query["smoothing"] == "0"
    assert [(c["plugin"], c["tag"]) for c in json.loads(query["pinnedCards"])] == [
        ("scalars", "loss/val_loss"),
        ("scalars", "loss/train_loss"),
        ("scalars", "sweep/best_val_loss"),
        ("scalars", "lr"),
    ]
    assert tbserver.hparams_page("http://127.0.0.1:6006/") == "http://127.0.0.1:6006/#hparams"


def test_the_pick_reads_best_json_and_leaves_out_what_it_lacks():
    new = {
        "lr": 0.01,
        "val_loss": 0.1191,
        "interpolated": False,
        "epochs_spent": 261,
        "fte": 9.67,
        "trials": 11,
        "score": {"value": 0.1191, "statistic": "mean of epochs 25-27", "label": "the trial at this rate"},
        "band": {"low": 0.005, "high": 0.02, "noise": 0.0061, "threshold": 0.01},
        "best_trial": {"trial_id": "57ae2bbd", "lr": 0.01285, "score": 0.1030, "statistic": "mean of epochs 25-27"},
        "warnings": ["the pick sits on the edge"],
    }
    pick = tbsummary.pick_of(new)
    assert (pick["lr"], pick["low"], pick["high"], pick["noise"], pick["score"]) == (0.01, 0.005, 0.02, 0.0061, 0.1191)
    text = tbsummary.pick_markdown(pick)
    assert text.splitlines()[0] == "**chosen lr = 0.01**"
    assert "- band: lr 0.005 .. 0.02, the rates the sweep cannot tell apart from the best (noise 0.0061)" in text
    assert "- val_loss of the chosen rate: 0.1191 (mean of epochs 25-27; the trial at this rate)" in text
    assert "- best trial run: 57ae2bbd at lr 0.0129: val_loss 0.1030 (mean of epochs 25-27)" in text
    assert "- cost: 261 epochs (9.7 FTE), 11 trials" in text and "- warning: the pick sits on the edge" in text
    old = {"lr": 0.01, "val_loss": 0.1030, "interpolated": True, "best_trial": {"trial_id": "57ae2bbd"}}
    pick = tbsummary.pick_of(old)  # an older best.json: no band, and val_loss is the best trial's, not the rate's
    assert "score" not in pick and "low" not in pick
    assert "band" not in tbsummary.pick_markdown(pick) and "0.1030" not in tbsummary.pick_markdown(pick)
    assert tbsummary.pick_markdown(tbsummary.pick_of({})) == "**no lr chosen**\n"


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
                    value = (
                        v.simple_value
                        if v.HasField("simple_value")
                        else (v.tensor.float_val[0] if v.tensor.float_val else v.tensor)
                    )  # the loader makes scalars tensors
                out.setdefault(v.tag, []).append((ev.step, value))
    return out


def text_of(tensor) -> str:
    """The Markdown of a text summary (a string tensor, as the event loader reads it)."""
    return tensor.string_val[0].decode()


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
    trials = [
        FakeTrial(folder, "t1", {**cfg, "round": 0, "lr": 0.01}),
        FakeTrial(folder, "t2", {**cfg, "round": 0, "lr": 1.0}),
        FakeTrial(folder, "t3", {**cfg, "round": 1, "lr": 0.003}),
    ]
    for cb in cbs:
        cb.setup()

    def result(tr, epoch, loss, **extra):
        tr.last_result = {
            "epoch": epoch,
            "training_iteration": epoch,
            "val_loss": loss,
            "train_loss": loss / 2,
            "val_error": 0.1,
            "lr_epoch": tr.config["lr"],
            "diverged": False,
            **extra,
        }
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
    searched = tbnames.Searched(param="lr", low=1e-3, high=1.0, grid=(("optimizer", ("sgd", "adam")),), max_rounds=2)
    cbs = board.callbacks(tmp_path, verbose=True, interval=3600, searched=searched)
    drive(cbs, tmp_path, between_rounds=lambda: clock.advance(75))
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["_sweep", "r0 lr=0.01 optimizer=sgd t1", "r0 lr=1 optimizer=sgd t2", "r1 lr=0.003 optimizer=sgd t3"]
    t1, t2, t3 = (events(tmp_path / name) for name in runs[1:])
    assert [v for _, v in t1["loss/val_loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [s for s, _ in t1["loss/val_loss"]] == [1, 2, 3]  # step = epoch
    assert {
        "loss/val_loss",
        "loss/train_loss",
        "val_error",
        "lr",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    } == set(t1)  # only what a user reads: no ray/tune/* counters
    assert "loss/val_loss" not in t2  # the diverged trial's inf is left out, not written
    start = t1["_hparams_/session_start_info"][0][1].session_start_info
    assert dict(start.hparams) == {
        "round": start.hparams["round"],
        "lr": start.hparams["lr"],
        "optimizer": start.hparams["optimizer"],
    }  # the searched values only
    assert start.hparams["lr"].number_value == 0.01 and start.hparams["optimizer"].string_value == "sgd"
    status = {
        name: ev["_hparams_/session_end_info"][0][1].session_end_info.status
        for name, ev in (("t1", t1), ("t2", t2), ("t3", t3))
    }
    assert status == {"t1": 1, "t2": 2, "t3": 2}  # success; failure for the diverged and the errored one

    sweep = events(tmp_path / board.SWEEP_RUN)
    best = sweep["sweep/best_val_loss"]
    assert [s for s, _ in best] == [1, 2, 3, 4, 5] and best[-1][1] == pytest.approx(1 / 3)  # x: epochs spent
    assert not [tag for tag in sweep if tag.startswith("rounds/")]  # round data: the table in the Text tab
    tables = [text_of(v) for _, v in sweep["sweep/rounds"]]
    assert [s for s, _ in sweep["sweep/rounds"]] == [4, 5]  # when round 0 closed, at the end
    assert "| 0 | 0.01..1 | 2 | 1 | 0 | 1 | 0 | 0.3333 | 4 |" in tables[-1]
    assert "| 1 | 0.003..0.003 | 1 | 0 | 0 | 0 | 1 | 0.9000 | 1 |" in tables[-1]
    assert "| 1 | 0.003..0.003 | 1 | 0 | 0 | 0 | 0 | n/a | 0 |" in tables[0]  # round 1 had just started
    experiment = sweep["_hparams_/experiment"][0][1].experiment
    infos = {h.name: h for h in experiment.hparam_infos}
    assert list(infos) == ["round", "lr", "optimizer"]  # declared: the searched values, nothing else
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (1e-3, 1.0)
    assert [v.string_value for v in infos["optimizer"].domain_discrete.values] == ["sgd", "adam"]
    assert [(m.name.tag, m.display_name) for m in experiment.metric_infos] == [
        ("loss/val_loss", "val_loss (last epoch)"),
        ("loss/train_loss", "train_loss (last epoch)"),
        ("val_error", "val_error (last epoch)"),
    ]
    assert "custom_scalars__config__" in sweep

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[sweep 0:00:00] round 0 started | trials 1 running, 2 waiting, 0 ended")
    assert any("trial t2 (round 0, lr 1) diverged after 1 epochs" in line for line in out)
    assert any("trial t1 (round 0, lr 0.01) completed after 3 epochs: best val_loss 0.3333" in line for line in out)
    assert any(line.startswith("[sweep 0:01:15] round 1 started") for line in out)
    assert out[-1].startswith("[sweep 0:01:15] round 1 (lr 0.003..0.003)")
    assert "1 completed, 0 stopped early, 1 diverged, 1 errored" in out[-1] and "5 epochs" in out[-1]


def test_the_sweep_run_and_the_status_line_follow_a_max_metric(tmp_path, capsys):
    _, sweep_board, live = board.callbacks(tmp_path, metric="val_accuracy", mode="max", target=1.0, interval=0)
    trial = FakeTrial(tmp_path, "a", {"max_epochs": 3, "round": 0, "lr": 0.01})
    for cb in (sweep_board, live):
        cb.setup()
        cb.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for e, acc in ((1, 0.5), (2, 0.8), (3, 0.7)):
        for cb in (sweep_board, live):
            cb.on_trial_result(iteration=0, trials=[trial], trial=trial, result={"epoch": e, "val_accuracy": acc})
    live.on_step_end(iteration=0, trials=[trial])
    sweep_board.writer.close()
    best = events(tmp_path / board.SWEEP_RUN)["sweep/best_val_accuracy"]
    assert [(s, round(v, 6)) for s, v in best] == [(1, 0.5), (2, 0.8), (3, 0.8)]  # the highest so far
    assert "best val_accuracy 0.8000 (lr 0.01, trial a, epoch 2)" in capsys.readouterr().out


def test_quiet_prints_nothing_and_state_survives_a_resume(tmp_path, capsys):
    cbs = board.callbacks(tmp_path / "a", quiet=True)
    drive(cbs, tmp_path / "a")
    assert capsys.readouterr().out == ""
    fresh = board.callbacks(tmp_path / "a", quiet=True)
    for old, new in zip(cbs[1:], fresh[1:]):
        new.set_state(pickle.loads(pickle.dumps(old.get_state())))  # what Tune does on Tuner.restore
        assert new.tally.epochs == 5 and new.tally.best_trial == "t1"
    assert fresh[1].emitted == [0, 1]
    board_again = pickle.loads(pickle.dumps(cbs[0]))  # a TrialBoard stored in tuner.pkl travels without writers
    assert board_again._writers == {} and board_again.folder == tmp_path / "a"


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
    req = urllib.request.Request(
        url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
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


def _page(browser: str, url: str) -> str:
    """The page as a headless Chromium renders it (charts as SVG), after 15 s of page time."""
    parts = urllib.parse.urlsplit(url)
    svg = urllib.parse.urlunsplit(parts._replace(query="&".join(q for q in (parts.query, "forceSVG=true") if q)))
    proc = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1600,1000",
            "--virtual-time-budget=15000",
            "--dump-dom",
            svg,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


@pytest.mark.slow
def test_real_sweep_in_tensorboard(local_ray, small_config, tensorboard_over, capsys, tmp_path):
    """One small sweep read back through a real TensorBoard server's HTTP API and a real headless browser:
    readable run names, only the user's scalars, the rounds as a table, the chosen rate with what best.json
    says, HParams limited to the searched values and the metrics, and the two screenshots of docs/
    (``make screenshots`` copies them there: SWEEP_SCREENSHOTS=docs)."""
    from orchestrator import config, tuning

    summary = tuning.run(config.load(small_config("tb")), tuning.RunOptions(quiet=True))
    folder = summary.folder
    assert "[sweep " not in capsys.readouterr().out  # quiet: no progress lines
    rows = pq.read_table(folder / "trials.parquet").to_pylist()
    last = {}  # trial id -> (epoch, val_loss) of its last row
    for r in rows:
        if r["epoch"] >= last.get(r["trial_id"], (0, 0.0))[0]:
            last[r["trial_id"]] = (r["epoch"], r["val_loss"])
    names = {r["trial_id"]: f"r{r['round']} lr={r['lr']:.3g} {r['trial_id']}" for r in rows}  # run -> name
    lr_of = {names[r["trial_id"]]: r["lr"] for r in rows}
    best = json.loads((folder / "best.json").read_text())
    n_rounds = len(json.loads((folder / "rounds.json").read_text())["rounds"])

    server = tensorboard_over(folder)
    assert server.url.startswith("http://127.0.0.1:")
    deadline = time.time() + 120
    while True:  # TensorBoard loads the logdir in the background: wait until it has read all of it
        runs = set(_get(server.url, "/data/runs"))
        tags = _get(server.url, "/data/plugin/scalars/tags")
        images = _get(server.url, "/data/plugin/images/tags").get(board.SWEEP_RUN, {})
        done = (
            set(names.values()) | {board.SWEEP_RUN} <= runs
            and "chosen/lr" in tags.get(board.SWEEP_RUN, {})
            and "chosen/val_loss_vs_lr" in images
            and all("lr" in tags.get(n, {}) for n in names.values())
        )
        if done or time.time() > deadline:
            break
        time.sleep(1)
    assert runs == set(names.values()) | {board.SWEEP_RUN}  # named by round, rate and id; no hash-only run
    every_tag = {tag for run in tags.values() for tag in run}
    assert not [t for t in every_tag if t.startswith("ray/") or "iterations" in t or "restore" in t]
    for name in names.values():
        assert (
            {"lr", "time/epoch_seconds"}
            <= set(tags[name])
            <= {"loss/val_loss", "loss/train_loss", "val_error", "lr", "time/epoch_seconds"}
        )
    assert {"sweep/best_val_loss", "sweep/best_lr", "chosen/lr"} <= set(tags[board.SWEEP_RUN])
    chosen = _get(server.url, f"/data/plugin/scalars/scalars?run={board.SWEEP_RUN}&tag=chosen/lr")
    assert [p[2] for p in chosen] == [pytest.approx(best["lr"], rel=1e-6)] and best["lr"] == summary.lr
    assert chosen[0][1] == best["epochs_spent"]  # step = epochs spent, as sweep/best_*
    band = best.get("band") or {}
    for key in ("low", "high"):
        if key in band:  # best.json carries the band: TensorBoard shows the same numbers
            got = _get(server.url, f"/data/plugin/scalars/scalars?run={board.SWEEP_RUN}&tag=chosen/lr_{key}")
            assert got[0][2] == pytest.approx(band[key], rel=1e-6)
    if (best.get("score") or {}).get("value") is not None:  # the chosen rate's own score, as best.json has it
        own = _get(server.url, f"/data/plugin/scalars/scalars?run={board.SWEEP_RUN}&tag=chosen/val_loss")
        assert own[0][2] == pytest.approx(best["score"]["value"], rel=1e-6)
    texts = _get(server.url, "/data/plugin/text/tags").get(board.SWEEP_RUN, [])
    assert {"sweep/rounds", "chosen/summary"} <= set(texts)
    summary_text = _get(server.url, f"/data/plugin/text/text?run={board.SWEEP_RUN}&tag=chosen/summary")[-1]["text"]
    assert f"chosen lr = {best['lr']:.3g}" in summary_text
    rounds_text = _get(server.url, f"/data/plugin/text/text?run={board.SWEEP_RUN}&tag=sweep/rounds")[-1]["text"]
    assert all(f"<td>{k}</td>" in rounds_text for k in range(n_rounds))  # the table, one row per round
    plots = _get(server.url, f"/data/plugin/images/images?run={board.SWEEP_RUN}&tag=chosen/val_loss_vs_lr")
    assert [p["step"] for p in plots] == list(range(n_rounds))  # one plot per round

    experiment = _get(server.url, "/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    assert sorted(infos) == ["lr", "round"]  # the searched values only: no seed_offset, checkpoint_every, ...
    assert infos["lr"]["domainInterval"] == {"minValue": 1e-4, "maxValue": 1.0}
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == ["loss/val_loss", "loss/train_loss", "val_error"]
    groups = _get(
        server.url,
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "startIndex": 0,
            "sliceSize": 1000,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [
                {"hparam": "lr", "order": "ORDER_ASC", "includeInResult": True},
                {"metric": {"tag": "loss/val_loss", "group": ""}, "includeInResult": True},
            ],
        },
    )
    assert groups["totalSize"] == len(names)
    assert {g["name"]: g["hparams"]["lr"] for g in groups["sessionGroups"]} == pytest.approx(lr_of)
    assert [g["hparams"]["lr"] for g in groups["sessionGroups"]] == sorted(lr_of.values())  # sortable by lr
    for g in groups["sessionGroups"]:  # the metric column: val_loss at the trial's last epoch, as stored
        trial_id = g["name"].rsplit(" ", 1)[1]
        value = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}.get("loss/val_loss")
        if math.isfinite(last[trial_id][1]):
            assert value == pytest.approx(last[trial_id][1], rel=1e-5)

    first = tbserver.first_page(server.url, tbserver.metric_of(folder))
    assert first.endswith("#timeseries") and "smoothing=0" in first
    browser = tbserver.find_browser()
    if browser is None and os.environ.get("SWEEP_SCREENSHOTS"):
        pytest.fail(f"no headless Chromium on PATH ({', '.join(tbserver.BROWSERS)}): no screenshots taken")
    if browser is None:
        pytest.skip("no headless Chromium on PATH: the HTTP API was checked, the pages were not")
    page = _page(browser, first)  # the pinned cards on top, then every section, as on the default page
    titles = re.findall(r'class="group-title" title="([^"]*)"', page)
    assert titles == ["chosen", "loss", "lr", "sweep", "time", "val_error"]  # the user's sections, in this order
    assert 'class="group-title">Pinned<' in page and all(n in page for n in names.values())
    shots = Path(os.environ.get("SWEEP_SCREENSHOTS") or tmp_path)
    for page, file in ((first, "tensorboard.png"), (tbserver.hparams_page(server.url), "tensorboard_hparams.png")):
        png = tbserver.screenshot(page, tmp_path / file, browser=browser)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        if shots != tmp_path:
            shutil.copyfile(png, shots / file)
