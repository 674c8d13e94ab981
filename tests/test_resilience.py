"""Faults caused for real: the driver SIGKILLed mid-sweep then resumed; a Ray node lost mid-sweep."""

from __future__ import annotations

import collections
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import ROOT, checkpointed, node_lost_once_trained

EPOCHS = 20  # long enough that a kill lands inside a round even on an idle machine


def write_config(path: Path, name: str, storage: Path, log: Path, **extra) -> Path:
    data = {
        "name": name,
        "workload": "tests.faulty_workloads:logged",
        "max_epochs": EPOCHS,
        "storage": str(storage),
        "checkpoint_every": 1,
        "space": {
            "lr": {"log": [1e-3, 1e-1], "per_decade": 1},
            "optimizer": "sgd",
            "momentum": 0.9,
            "width": 32,
            "log_path": str(log),
        },
        "asha": {"enabled": False},
        # deterministic rounds: each planned once the previous one finished
        "zoom": {"max_rounds": 2, "points_per_round": 2, "decision_epoch": EPOCHS},
        **extra,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def sweep_cmd(*args: str) -> list[str]:
    # --no-check: the pre-flight checks build the workload too, and the build log counts trial starts
    return [sys.executable, "-m", "orchestrator.cli", "run", *args, "--no-check"]


def run_ok(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, _sweep_lines(done.stdout + done.stderr)[-4000:]
    return done


def _sweep_lines(output: str) -> str:
    """The output without Ray's repeated warnings (their three-line blocks bury the sweep's own lines)."""
    kept, skip = [], 0
    for line in output.splitlines():
        if "WARNING experiment_state.py" in line:
            skip = 3
        if skip:
            skip -= 1
            continue
        kept.append(line)
    return "\n".join(kept)


def wait_for(what: str, ready: Callable[[], object], timeout: float = 300.0, proc: subprocess.Popen | None = None):
    """Poll ``ready()`` until it returns something true and return that; fail the test, naming ``what``,
    when ``timeout`` seconds pass first or ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def trials_by_lr(folder: Path) -> dict[float, list[dict]]:
    out = collections.defaultdict(list)
    for row in pq.read_table(folder / "trials.parquet").to_pylist():
        out[row["lr"]].append(row)
    return {lr: sorted(rows, key=lambda r: r["epoch"]) for lr, rows in out.items()}


@pytest.mark.slow
def test_driver_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path, capsys):
    """The driver is SIGKILLed in round 1; ``--resume`` takes its sweep over and ends with what an
    uninterrupted run gives. While it ran, a second driver was refused (one driver per sweep: its lease)."""
    from orchestrator import cli, lease

    storage = tmp_path / "runs"
    ref_log, crash_log = tmp_path / "ref.log", tmp_path / "crash.log"
    ref_cfg = write_config(tmp_path / "ref.yaml", "ref", storage, ref_log)
    crash_cfg = write_config(tmp_path / "crash.yaml", "crash", storage, crash_log)
    run_ok(sweep_cmd(str(ref_cfg), "--quiet"))
    n_round0 = sum(rows[0]["round"] == 0 for rows in trials_by_lr(storage / "ref").values())

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        sweep_cmd(str(crash_cfg)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    folder = storage / "crash"
    try:
        # once Tune has saved its state (the sweep is driven): a second driver is refused, naming the first
        wait_for("Tune's experiment state", lambda: list(folder.glob("experiment_state-*.json")), proc=proc)
        assert cli.main(["run", str(crash_cfg), "--resume", "--quiet"]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another driver is running this sweep" in err and f"pid {proc.pid}" in err
        assert proc.poll() is None  # untouched by the refusal
        assert lease.parse((folder / lease.LEASE_FILE).read_bytes(), "").pid == proc.pid
        for line in proc.stdout:  # wait until the later round has started
            if line.startswith("[sweep] round 1"):
                break
        # then until one of its trials has trained and saved an epoch (round 0 had 3 trials)
        wait_for("a round-1 trial's first checkpoint", lambda: len(checkpointed(folder)) > n_round0, proc=proc)
        saved, killed_at = checkpointed(folder), time.time()
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: a crash, not a clean stop
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the embedded Ray it left behind
        except ProcessLookupError:
            pass
    assert not (folder / "best.json").exists()

    assert cli.main(["run", str(crash_cfg), "--no-check"]) == cli.EXIT_BAD_INPUT
    assert "--resume" in capsys.readouterr().err  # never silently overwritten
    taken = run_ok(sweep_cmd(str(crash_cfg), "--resume"))
    assert f"took over the sweep: its driver (pid {proc.pid} on {socket.gethostname()}) is gone" in taken.stderr
    assert not (folder / lease.LEASE_FILE).exists()  # given back at the end

    ref, crash = trials_by_lr(storage / "ref"), trials_by_lr(folder)
    assert sorted(ref) == sorted(crash), "same trials in both runs"
    for lr in ref:
        assert [r["round"] for r in ref[lr]] == [r["round"] for r in crash[lr]]
        assert [r["epoch"] for r in crash[lr]] == list(range(1, EPOCHS + 1))
        assert [r["val_loss"] for r in crash[lr]] == pytest.approx([r["val_loss"] for r in ref[lr]], rel=1e-5)
    best_ref = json.loads((storage / "ref" / "best.json").read_text())
    best_crash = json.loads((folder / "best.json").read_text())
    assert best_crash["lr"] == best_ref["lr"]
    assert {**best_crash["config"], "log_path": ""} == {**best_ref["config"], "log_path": ""}
    rounds_ref = json.loads((storage / "ref" / "rounds.json").read_text())["rounds"]
    assert json.loads((folder / "rounds.json").read_text())["rounds"] == rounds_ref
    # No finished epoch trained again (an epoch trained again replaces its row, and ends after the kill):
    # round 0 had ended before the kill; a round-1 trial resumed from its newest checkpoint (or the one
    # before, when the driver had not yet taken that). A trial that ended after Tune's last save of its
    # own state (every >= 10 s) is built again on resume, and trains nothing: builds are at most 2.
    for lr, rows in crash.items():
        before = [r["epoch"] for r in rows if r["ended_at"] < killed_at]
        assert before == list(range(1, len(before) + 1)), f"lr {lr}: {before}"
        if rows[0]["round"] == 0:
            assert len(before) == EPOCHS, f"lr {lr} (round 0) trained epochs {len(before) + 1}.. again"
        else:
            at_kill = saved.get(rows[0]["trial_id"], 0)
            assert len(before) >= at_kill - 1, f"lr {lr} restarted at epoch {len(before) + 1}; saved {at_kill}"
    assert any(saved.get(rows[0]["trial_id"], 0) >= 1 and rows[0]["round"] == 1 for rows in crash.values())
    builds = collections.Counter(float(x) for x in crash_log.read_text().split())
    assert set(builds) == set(ref) and all(n <= 2 for n in builds.values())


@pytest.mark.slow
def test_node_loss_restarts_trials_from_checkpoints(tmp_path, ray_temp):
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator import config, run_sweep

    if ray.is_initialized():
        ray.shutdown()  # a shared local Ray from other tests: this test needs its own cluster
    log = tmp_path / "builds.log"
    cfg_path = write_config(tmp_path / "node.yaml", "node-loss", tmp_path / "runs", log, max_failures=2)
    data = yaml.safe_load(cfg_path.read_text())
    data["max_epochs"] = 30
    data["zoom"] = {"max_rounds": 1}
    cfg_path.write_text(yaml.safe_dump(data))
    temp = ray_temp  # our own: never another Ray's /tmp/ray
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": temp})
    workers = [cluster.add_node(num_cpus=1, temp_dir=temp) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    folder = tmp_path / "runs" / "node-loss"
    try:  # once both nodes' trials have saved 2 epochs (one trial per node: 1 CPU each), one node goes
        with node_lost_once_trained(cluster, workers[1], folder) as loss:
            summary = run_sweep(config.load(cfg_path), quiet=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert loss.removed, loss.gave_up or "the sweep ended before a node could be removed"
    rows = trials_by_lr(summary.folder)
    assert len(rows) == 3  # every planned trial accounted for
    for trial_rows in rows.values():
        assert trial_rows[-1]["status"] == "completed" and [r["epoch"] for r in trial_rows] == list(range(1, 31))
    retried = {lr: trial_rows for lr, trial_rows in rows.items() if trial_rows[0]["failures"] >= 1}
    assert retried, "a trial on the lost node was retried"
    for lr, trial_rows in retried.items():
        # Resumed, not restarted: the epochs it trained before the loss are kept (an epoch trained again
        # replaces its row), the ones after it ended after the loss, and the first of those follows the
        # newest checkpoint seen at the loss (or the one before, when the driver had not yet taken that).
        before = [r["epoch"] for r in trial_rows if r["ended_at"] < loss.time]
        assert before == list(range(1, len(before) + 1)), f"lr {lr}: {before}"
        saved = loss.saved[trial_rows[0]["trial_id"]]
        assert len(before) >= saved - 1 >= 1, f"lr {lr} restarted from epoch {len(before) + 1}; checkpointed {saved}"
    builds = collections.Counter(float(x) for x in log.read_text().split())
    assert sum(builds.values()) > 3  # the retried trial was built again (restored from its checkpoint)


def interrupt_in_round_0(cfg: Path, folder: Path, trials: int = 1, epochs: int = 1) -> tuple[int, str]:
    """Start ``sweep run``; once round 0 has begun and ``trials`` of its trials have saved ``epochs`` epochs
    in ``folder``, send Ctrl-C's SIGINT; returns (exit code, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(cfg.with_suffix(".stderr"), "w+") as err_file:  # a file: a full pipe would stall the driver
        proc = subprocess.Popen(
            sweep_cmd(str(cfg)),
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        try:
            for line in proc.stdout:
                if line.startswith("[sweep] round 0"):
                    break
            wait_for(
                f"{trials} trial(s) with {epochs} epoch(s) saved",
                lambda: sum(n >= epochs for n in checkpointed(folder).values()) >= trials,
                proc=proc,
            )
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
            proc.communicate(timeout=180)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err_file.seek(0)
        return proc.returncode, err_file.read()


@pytest.mark.slow
def test_resume_repairs_a_searcher_state_saved_a_step_apart_from_tunes(tmp_path):
    """A crash between Tune's two saves (its trial list, the searcher's state) leaves them a step apart;
    made here for certain by editing the saved searcher state of a stopped sweep both ways."""
    from orchestrator.searcher import TrialRecord
    from orchestrator.space import nice

    log = tmp_path / "apart.log"
    epochs = 50  # trials long enough to be stopped halfway (a Ctrl-C stops them within a few epochs)
    cfg = write_config(
        tmp_path / "apart.yaml", "apart", tmp_path / "runs", log, max_epochs=epochs, zoom={"max_rounds": 1}
    )
    folder = tmp_path / "runs" / "apart"
    code, err = interrupt_in_round_0(cfg, folder, trials=2, epochs=2)
    assert code == 130, err[-2000:]
    pkl = max(folder.glob("searcher-state-*.pkl"), key=lambda p: p.stat().st_mtime)
    state = pickle.loads(pkl.read_bytes())
    running = sorted((t for t in state.trials.values() if not t.done), key=lambda t: -len(t.curve))
    assert len(running) >= 2, [(t.trial_id, len(t.curve), t.done) for t in state.trials.values()]
    # Tune saved a trial the searcher's state does not know (with its epochs so far): must be adopted
    ahead = running[0]
    ahead_id = ahead.trial_id
    del state.trials[ahead_id]
    state.rows = [r for r in state.rows if r["trial_id"] != ahead_id]
    state.queue.append((ahead.group, ahead.x))
    # the searcher's state knows a trial with none of its epochs (saved before them): must be filled
    behind = running[1]
    behind.curve.clear()
    state.rows = [r for r in state.rows if r["trial_id"] != behind.trial_id]
    # the searcher planned a trial Tune never saved: must be planned again, not waited for forever
    state.trials["lost0000"] = TrialRecord("lost0000", 0, -1.5, 0, state.config_for(0, -1.5, 0))
    pkl.write_bytes(pickle.dumps(state))

    out = run_ok(sweep_cmd(str(cfg), "--resume"))
    assert "1 trial(s) requeued, 1 trial(s) adopted" in out.stdout
    rows = trials_by_lr(folder)
    assert nice(10**-1.5) in rows and all(r[-1]["status"] == "completed" for r in rows.values())
    for lr, trial_rows in rows.items():
        assert len({r["trial_id"] for r in trial_rows}) == 1, f"lr {lr} trained as two trials"
        assert [r["epoch"] for r in trial_rows] == list(range(1, epochs + 1)), f"lr {lr}: epochs lost"
    assert rows[ahead.config["lr"]][0]["trial_id"] == ahead_id


@pytest.mark.slow
def test_ctrl_c_saves_state_says_how_to_resume_and_a_resume_with_more_rounds_runs_them(tmp_path):
    """Ctrl-C during round 0 of a one-round sweep, then ``--resume`` with ``zoom.max_rounds: 2``: round 0
    finishes, the raised limit is applied (round 1 runs) and recorded."""
    zoom = {"max_rounds": 1, "points_per_round": 2, "decision_epoch": EPOCHS}
    log = tmp_path / "int.log"
    cfg = write_config(tmp_path / "int.yaml", "interrupted", tmp_path / "runs", log, zoom=zoom)
    folder = tmp_path / "runs" / "interrupted"
    code, err = interrupt_in_round_0(cfg, folder)
    assert code == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("sweep: error:") and f"sweep run {cfg} --resume" in last
    assert (folder / "trials.parquet").exists() and not (folder / "best.json").exists()

    more = write_config(tmp_path / "more.yaml", "interrupted", tmp_path / "runs", log, zoom={**zoom, "max_rounds": 2})
    done = run_ok(sweep_cmd(str(more), "--resume"))
    assert "[sweep] resumed with zoom.max_rounds 1 -> 2" in done.stdout
    assert "zoom.max_rounds 1 -> 2" in (folder / "resume.log").read_text()
    rounds = json.loads((folder / "rounds.json").read_text())
    assert [r["index"] for r in rounds["rounds"]] == [0, 1], rounds  # the raised limit was applied
    assert json.loads((folder / "best.json").read_text())["lr"] > 0
    rows = trials_by_lr(folder)
    assert all(r[-1]["status"] == "completed" for r in rows.values())
    assert {r[0]["round"] for r in rows.values()} == {0, 1}
