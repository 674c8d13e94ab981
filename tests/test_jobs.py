"""``sweep submit | status | logs | stop`` against a real two-node Ray cluster with token auth on.

The cluster is started with ``ray start`` (a head and a worker node, both on 127.0.0.1, free ports, a
temp dir and a HOME of their own, ``RAY_AUTH_MODE=token``) and torn down by killing exactly the
processes that carry this module's marker in their environment: never ``ray stop``, which would stop
every Ray on the machine. Fast tests of the pure parts (address, token, package) need no cluster.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from cluster import commands, jobs


VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"
MARKER_VAR = "SWEEP_JOBS_TEST_CLUSTER"
TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")


def sweep(*argv: str) -> int:
    """The job subcommands as ``sweep`` runs them: through ``orchestrator.cli.main`` once it registers
    them (``commands.register``), else through ``cluster.commands.main`` (the same parsers)."""
    from orchestrator import cli

    try:
        registered = "submit" in cli.build_parser()._subparsers._group_actions[0].choices
    except (AttributeError, IndexError):
        registered = False
    return (cli.main if registered else commands.main)(list(argv))


# --- fast tests: no cluster -------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No address and no token anywhere (HOME is an empty folder)."""
    for var in TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_address_flag_then_env_read_at_call_time(clean_env, monkeypatch):
    with pytest.raises(jobs.AddressError, match="--address"):
        jobs.resolve_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://from-env:8265/")
    assert jobs.resolve_address(None) == "http://from-env:8265"
    assert jobs.resolve_address("head:8265") == "http://head:8265"  # the flag wins; http by default
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(jobs.AddressError, match="Ray Client"):
        jobs.resolve_address(None)
    for bad in ("auto", "ftp://x:1"):
        with pytest.raises(jobs.AddressError):
            jobs.resolve_address(bad)


def test_token_found_the_way_ray_finds_it(clean_env, monkeypatch, tmp_path):
    assert jobs.find_token() is None
    default = clean_env / ".ray" / "auth_token"
    default.parent.mkdir()
    default.write_text("from-home\n")
    default.chmod(0o644)
    t = jobs.find_token()
    assert (t.value, t.source, t.loose_permissions) == ("from-home", str(default), True)
    path = jobs.write_token_file(tmp_path / "sub" / "tok", "from-path")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert (jobs.find_token().value, jobs.find_token().loose_permissions) == ("from-path", False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert jobs.find_token().value == "from-env"
    assert "from-env" not in repr(jobs.find_token())
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    with pytest.raises(jobs.AuthError, match="RAY_AUTH_TOKEN_PATH"):
        jobs.find_token()


def test_package_runtime_env_and_entrypoint(tmp_path, small_config):
    cfg = small_config("pkg")
    rel = jobs.stage(cfg, tmp_path / "stage")
    stage = tmp_path / "stage"
    assert rel == "_submitted/pkg.yaml" and (stage / rel).read_text() == cfg.read_text()
    for pkg in ("orchestrator", "schedules", "cluster"):
        assert (stage / pkg / "__init__.py").is_file()
    for excluded in (".venv", ".git", "runs", "bench/results"):
        assert not (stage / excluded).exists(), excluded
    assert not list(stage.rglob("__pycache__"))
    env = jobs.runtime_env(stage, stop_wait_s=45)
    assert env["working_dir"] == str(stage)
    assert env["env_vars"]["RAY_JOB_STOP_SIGNAL"] == "SIGINT"
    assert env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "45"
    assert {".venv", "runs", ".git", "bench/results"} <= set(env["excludes"])
    assert "pip" not in env and jobs.runtime_env(stage, pip=["torch==2.13.0"])["pip"] == ["torch==2.13.0"]
    assert jobs.entrypoint(rel) == "python -m orchestrator.cli run _submitted/pkg.yaml --quiet"
    assert jobs.entrypoint("_submitted/a b.yaml", resume=True).endswith("'_submitted/a b.yaml' --quiet --resume")
    assert jobs.results_folder("/shared/runs/", "x") == ("/shared/runs/x", None)
    folder, warning = jobs.results_folder("runs", "x")
    assert "working_dir" in folder and "share" in warning


@pytest.mark.parametrize("argv", [["submit", "CONFIG"], ["status", "j1"], ["logs", "j1"], ["stop", "j1"]])
def test_no_address_is_one_line_exit_2(clean_env, capsys, small_config, argv):
    argv = [str(small_config("noaddr")) if a == "CONFIG" else a for a in argv]
    assert sweep(*argv) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("sweep: error: no cluster address")


def test_bad_config_is_refused_before_the_cluster(clean_env, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworkload: digits_mlp\nmax_epochs: 0\nspace: {lr: {log: [1e-3, 1e-1]}}\n")
    assert sweep("submit", str(bad), "--address", "http://127.0.0.1:9") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_epochs" in err


class FakeJobsAPI(http.server.BaseHTTPRequestHandler):
    """A dashboard that answers the auth-mode probe with ``mode`` and records every request."""

    mode = "disabled"
    seen: list[tuple[str, str, str | None]] = []

    def _answer(self, code: int, body: dict | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        FakeJobsAPI.seen.append((self.command, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self):  # noqa: N802
        self._record()
        if self.path == "/api/authentication_mode":
            self._answer(200, {"authentication_mode": self.mode})
        elif self.path == "/api/version":
            self._answer(200, {"version": "4", "ray_version": "2.60.0", "ray_commit": "x"})
        else:
            self._answer(404)

    def do_PUT(self):  # noqa: N802
        self._record()
        self._answer(200)

    def do_POST(self):  # noqa: N802
        self._record()
        self._answer(200, {"job_id": "fake", "submission_id": "fake"})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_open_cluster():
    FakeJobsAPI.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeJobsAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_open_cluster_refused_unless_insecure_and_never_gets_the_token(
        clean_env, monkeypatch, capsys, small_config, fake_open_cluster):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret-token-for-another-cluster")
    cfg = small_config("open")
    assert sweep("submit", str(cfg), "--address", fake_open_cluster) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CVE-2023-48022" in err and "--insecure" in err
    assert [(m, p) for m, p, _ in FakeJobsAPI.seen] == [("GET", "/api/authentication_mode")]  # nothing uploaded

    assert sweep("submit", str(cfg), "--address", fake_open_cluster, "--insecure") == 0
    out = capsys.readouterr()
    assert out.out.strip() == "fake"
    assert ("POST", "/api/jobs/", None) in FakeJobsAPI.seen
    assert all(auth is None for _, _, auth in FakeJobsAPI.seen), "the token went to an open cluster"
    assert "secret-token" not in out.out + out.err


# --- a real cluster ---------------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _marked_pids(marker: str) -> list[int]:
    """Our cluster's processes: those whose environment carries this module's marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _kill_marked(marker: str, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process of ours; return those still there afterwards."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in _marked_pids(marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _marked_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
    return _marked_pids(marker)


class RayCluster:
    def __init__(self, url: str, token_path: Path, token: str, tmp: Path):
        self.url, self.token_path, self.token, self.tmp = url, token_path, token, tmp


@pytest.fixture(scope="module")
def ray_cluster():
    tmp = Path(tempfile.mkdtemp(prefix="sj", dir="/tmp"))  # short: Ray's socket paths live under it
    marker = uuid.uuid4().hex
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARS}
    env.update(HOME=str(home), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="token",
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", **{MARKER_VAR: marker})
    env.pop("PYTHONPATH", None)
    try:
        # Ray's own way to make a token: `ray get-auth-token --generate` writes ~/.ray/auth_token.
        gen = subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert gen.returncode == 0, gen.stderr[-2000:]
        token_path = home / ".ray" / "auth_token"
        token = token_path.read_text().strip()
        token_path.chmod(0o600)  # Ray writes it with the umask's mode
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
        gcs, dash, client, agent1, agent2, rt1, rt2, met1, met2 = _free_ports(9)
        common = ["--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
        # A temp dir per node: nodes sharing one would share runtime_resources/, and the worker node's
        # runtime-env agent would delete the job's working_dir under the head node's feet.
        head = [str(RAY), "start", "--head", "--temp-dir", str(tmp / "h"), "--port", str(gcs),
                "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(dash), "--ray-client-server-port", str(client), "--num-cpus", "2",
                "--dashboard-agent-listen-port", str(agent1), "--runtime-env-agent-port", str(rt1),
                "--metrics-export-port", str(met1), "--include-dashboard", "true", *common]
        worker = [str(RAY), "start", "--address", f"127.0.0.1:{gcs}", "--temp-dir", str(tmp / "w"), "--num-cpus", "1",
                  "--dashboard-agent-listen-port", str(agent2), "--runtime-env-agent-port", str(rt2),
                  "--metrics-export-port", str(met2), *common]
        for cmd in (head, worker):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, start_new_session=True)
            assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
            assert token not in r.stdout + r.stderr
        url = f"http://127.0.0.1:{dash}"
        # The Jobs API answers a little after `ray start` returns; wait until it takes our token.
        deadline = time.monotonic() + 90
        while True:
            try:
                with pytest.MonkeyPatch.context() as mp:
                    mp.setenv("RAY_AUTH_TOKEN_PATH", str(token_path))
                    jobs.Cluster(url).client.list_jobs()
                break
            except (jobs.JobsError, jobs.AuthError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield RayCluster(url, token_path, token, tmp)
    finally:
        left = _kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"processes of the test cluster survived teardown: {left}"


@pytest.fixture
def with_token(ray_cluster, monkeypatch, tmp_path):
    for var in TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "client-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(ray_cluster.token_path))
    return ray_cluster


SWEEP = """\
name: {name}
workload: digits_mlp
max_epochs: {epochs}
storage: {storage}
checkpoint_every: {every}
space:
  lr: {{log: [{low}, 1e-1], per_decade: 1}}
  optimizer: sgd
  momentum: 0.9
  width: 16
asha: {{enabled: {asha}}}
zoom: {{max_rounds: 1}}
"""


def _sweep_yaml(tmp_path: Path, name: str, epochs: int = 2, low: str = "1e-3", asha: str = "true",
                every: int = 0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SWEEP.format(name=name, epochs=epochs, storage=tmp_path / "runs", low=low, asha=asha,
                                 every=every))
    return path


@pytest.mark.slow
def test_submit_follow_succeeds_and_results_reach_the_user(with_token, capsys, tmp_path):
    from orchestrator import cli

    cluster = with_token
    cfg = _sweep_yaml(tmp_path, "jobdigits")
    assert sweep("submit", str(cfg), "--address", cluster.url, "--follow") == 0
    out = capsys.readouterr()
    job_id = out.out.splitlines()[0].strip()
    assert job_id.startswith("sweep-jobdigits-")
    assert "chosen lr=" in out.out  # the sweep's own last line, streamed from the cluster
    assert f"job {job_id} SUCCEEDED" in out.err

    assert sweep("status", job_id, "--address", cluster.url) == 0
    status = capsys.readouterr().out
    assert status.startswith(f"{job_id} SUCCEEDED") and str(tmp_path / "runs" / "jobdigits") in status
    assert sweep("logs", job_id, "--address", cluster.url) == 0
    logs = capsys.readouterr().out
    assert "chosen lr=" in logs

    folder = tmp_path / "runs" / "jobdigits"
    assert cli.main(["report", str(folder)]) == 0
    report = capsys.readouterr().out
    assert any(line.startswith("chosen lr=") and "3 trials" in line for line in report.splitlines())
    assert (folder / "sweep.yaml").read_text() == cfg.read_text()
    for text in (out.out, out.err, status, logs, report):
        assert cluster.token not in text


@pytest.mark.slow
def test_without_token_or_with_a_wrong_one_one_line_exit_2(ray_cluster, clean_env, monkeypatch, capsys, tmp_path):
    cfg = _sweep_yaml(tmp_path, "notoken")
    assert sweep("submit", str(cfg), "--address", ray_cluster.url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweep: error: ")
    assert "ray get-auth-token" in err and "RAY_AUTH_TOKEN_PATH" in err

    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    for argv in (["submit", str(cfg)], ["status", "some-job"]):
        assert sweep(*argv, "--address", ray_cluster.url) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1
        assert "rejected the Ray auth token from RAY_AUTH_TOKEN (HTTP 403)" in out.err
        assert "ray get-auth-token" in out.err and "not-the-token" not in out.err
    assert not (tmp_path / "runs").exists()
    assert ray_cluster.token not in err


@pytest.mark.slow
def test_unknown_job_is_exit_2(with_token, capsys):
    assert sweep("status", "no-such-job", "--address", with_token.url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no job 'no-such-job'" in err


@pytest.mark.slow
def test_stop_lets_tune_save_its_state(with_token, capsys, tmp_path):
    from ray import tune

    cluster = with_token
    cfg = _sweep_yaml(tmp_path, "jobstop", epochs=300, low="1e-4", asha="false", every=5)
    assert sweep("submit", str(cfg), "--address", cluster.url, "--stop-wait", "60") == 0
    job_id = capsys.readouterr().out.strip()
    folder = tmp_path / "runs" / "jobstop"
    deadline = time.monotonic() + 120  # until Tune starts trials (its SIGINT handler is then in place)
    while not (folder.is_dir() and any(p.is_dir() for p in folder.iterdir())):
        assert time.monotonic() < deadline, jobs.logs(job_id, cluster.url)[-3000:]
        assert not jobs.status(job_id, cluster.url).terminal, jobs.logs(job_id, cluster.url)[-3000:]
        time.sleep(1)

    assert sweep("stop", job_id, "--address", cluster.url) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"{job_id} STOPPED"
    assert f"sweep run {cfg} --resume" in out.err
    assert jobs.status(job_id, cluster.url).status == "STOPPED"
    logs = jobs.logs(job_id, cluster.url)
    assert tune.Tuner.can_restore(str(folder)), logs[-3000:]  # SIGINT: Tune saved the experiment state
    assert (folder / "trials.parquet").exists(), logs[-3000:]  # and the sweep wrote what it had
    assert cluster.token not in logs + out.out + out.err
