"""One driver per sweep (``orchestrator.lease``): the lease logic on a real folder with real processes,
and at a URI. End to end (a sweep driven by one ``sweep run`` refuses a second ``--resume``; after the first
driver is SIGKILLed, ``--resume`` takes the sweep over and finishes it): test_resilience's SIGKILL test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator import lease

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write(store: lease.LocalStore, **fields) -> lease.Lease:
    held = lease.Lease(**{**lease.mine().__dict__, **fields})
    store.path.write_bytes(lease.dump(held))
    return held


def test_first_driver_takes_the_lease_and_gives_it_back(tmp_path):
    store = lease.LocalStore(tmp_path)
    with lease.held(store, heartbeat_s=0.05, stale_after=1.0) as mine:
        on_disk = lease.parse(store.path.read_bytes(), "")
        assert (on_disk.host, on_disk.pid, on_disk.token) == (socket.gethostname(), os.getpid(), mine.token)
        first = on_disk.heartbeat
        deadline = time.monotonic() + 10
        while lease.parse(store.path.read_bytes(), "").heartbeat == first:  # the thread renews it
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.02)
    assert not store.path.exists()


def test_live_lease_of_a_running_process_is_refused_in_one_line(tmp_path):
    store = lease.LocalStore(tmp_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            _write(store, pid=other.pid, started=lease._start_time(other.pid), token="other")
            with pytest.raises(lease.LeaseHeldError) as err:
                lease.acquire(store)
            assert f"pid {other.pid} on {socket.gethostname()}" in str(err.value)
            assert "\n" not in str(err.value)
            with pytest.raises(lease.LeaseHeldError):
                lease.check(store)
            assert json.loads(store.path.read_bytes())["token"] == "other"  # untouched
        finally:
            other.kill()


def test_lease_of_a_dead_pid_on_this_host_is_taken_over_at_once(tmp_path):
    store = lease.LocalStore(tmp_path)
    dead = _dead_pid()
    _write(store, pid=dead, token="dead")  # heartbeat: now
    lease.check(store)  # not live: no error
    mine, message = lease.acquire(store)
    assert message and f"pid {dead}" in message and "gone" in message
    assert lease.parse(store.path.read_bytes(), "").token == mine.token


def test_a_reused_pid_is_not_mistaken_for_the_driver(tmp_path):
    store = lease.LocalStore(tmp_path)
    me = lease.mine()
    _write(store, pid=os.getpid(), started=(me.started or 0) - 1, token="older process with my pid")
    _, message = lease.acquire(store)
    assert message and "another process" in message


def test_lease_with_an_old_heartbeat_is_taken_over_even_from_another_host(tmp_path):
    store = lease.LocalStore(tmp_path)
    now = time.time()
    _write(store, host="elsewhere", pid=1, heartbeat=now - 30, token="far")
    with pytest.raises(lease.LeaseHeldError):  # another host: only the heartbeat tells, and it is fresh
        lease.acquire(store, stale_after=60, now=now)
    mine, message = lease.acquire(store, stale_after=20, now=now)
    assert message and "older than 20 s" in message and "elsewhere" in message
    assert lease.parse(store.path.read_bytes(), "").token == mine.token


def test_two_drivers_taking_over_one_stale_lease_at_once_one_wins(tmp_path):
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the takeover's steps interleave
    try:
        for attempt in range(30):  # a lost race shows in a few of these at most: try it many times
            folder = tmp_path / str(attempt)
            folder.mkdir()
            _write(lease.LocalStore(folder), pid=_dead_pid(), token="dead")
            outcomes: list[str] = []
            barrier = threading.Barrier(8)

            def take(folder=folder, outcomes=outcomes, barrier=barrier) -> None:
                barrier.wait()
                try:
                    lease.acquire(lease.LocalStore(folder))
                    outcomes.append("won")
                except lease.LeaseHeldError:
                    outcomes.append("refused")

            threads = [threading.Thread(target=take) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # threads share this pid: each later one sees a live lease (this process) and is refused
            assert sorted(outcomes) == ["refused"] * 7 + ["won"], f"attempt {attempt}: {outcomes}"
    finally:
        sys.setswitchinterval(old_interval)


def test_a_driver_whose_lease_was_taken_over_stops_renewing_it(tmp_path, capsys):
    store = lease.LocalStore(tmp_path)
    with lease.held(store, heartbeat_s=0.05, stale_after=1.0):
        successor = _write(store, host="elsewhere", token="successor")
        time.sleep(0.3)  # several heartbeats: none may overwrite the successor's lease
        assert lease.parse(store.path.read_bytes(), "").token == successor.token
    assert lease.parse(store.path.read_bytes(), "").token == successor.token  # not released: not ours
    assert "another driver took over" in capsys.readouterr().err


def test_bad_heartbeat_is_a_value_error(tmp_path):
    with (
        pytest.raises(ValueError, match="heartbeat_s"),
        lease.held(lease.LocalStore(tmp_path), heartbeat_s=5, stale_after=1),
    ):
        pass


# --- end to end: a second `sweep run` refused while the first runs, then the first SIGKILLed and its sweep
# taken over by --resume: test_resilience's driver SIGKILL test (one sweep for both)


# --- a sweep stored at a URI: the lease lives there (a real S3: moto's server) ------------------------


@pytest.fixture
def s3_sweep_uri(monkeypatch):
    import logging
    import uuid

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        bucket = f"sweeps-{uuid.uuid4().hex[:8]}"
        pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir(
            bucket
        )
        yield f"s3://{bucket}/runs/name?endpoint_override={host}:{port}&scheme=http"
    finally:
        server.stop()


def test_lease_at_a_uri_refuses_a_live_driver_and_is_taken_over_from_a_dead_one(s3_sweep_uri, tmp_path):
    store = lease.store_for(tmp_path / "local-copy", s3_sweep_uri)
    assert isinstance(store, lease.UriStore) and "endpoint_override" in store.shown
    with lease.held(store, heartbeat_s=0.05, stale_after=1.0) as mine:
        assert lease.parse(store.read(), "").token == mine.token
        with pytest.raises(lease.LeaseHeldError, match=f"pid {os.getpid()}"):
            lease.acquire(lease.store_for(tmp_path / "other-copy", s3_sweep_uri))
    assert store.read() is None  # given back
    dead = _dead_pid()
    store.write(lease.dump(lease.Lease(socket.gethostname(), dead, None, time.time(), "dead")))
    taken, message = lease.acquire(store)
    assert message and f"pid {dead}" in message and lease.parse(store.read(), "").token == taken.token
    assert not (tmp_path / "local-copy").exists()  # nothing written to the local copy
