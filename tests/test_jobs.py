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

from cluster import auth, jobinfo, jobs, package

VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"
SWEEP_BIN = VENV_BIN / "sweep"  # the installed console script (orchestrator.cli:main)
MARKER_VAR = "SWEEP_JOBS_TEST_CLUSTER"
TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")


def sweep(*argv: str) -> int:
    """``sweep ARGV`` in this process, through the real command line (``orchestrator.cli.main``)."""
    from orchestrator import cli

    return cli.main(list(argv))


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("sweep: error: ")


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
        jobs.dashboard_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://from-env:8265/")
    assert jobs.dashboard_address(None) == "http://from-env:8265"
    assert jobs.dashboard_address("head:8265") == "http://head:8265"  # the flag wins; http by default
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(jobs.AddressError, match="Ray Client"):
        jobs.dashboard_address(None)
    for bad in ("auto", "ftp://x:1"):
        with pytest.raises(jobs.AddressError):
            jobs.dashboard_address(bad)


def test_token_found_the_way_ray_finds_it(clean_env, monkeypatch, tmp_path):
    assert auth.find_token() is None
    default = clean_env / ".ray" / "auth_token"
    default.parent.mkdir()
    default.write_text("from-home\n")
    default.chmod(0o644)
    t = auth.find_token()
    assert (t.value, t.source, t.loose_permissions) == ("from-home", str(default), True)
    path = auth.write_token_file(tmp_path / "sub" / "tok", "from-path")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert (auth.find_token().value, auth.find_token().loose_permissions) == ("from-path", False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert auth.find_token().value == "from-env"
    assert "from-env" not in repr(auth.find_token())
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    with pytest.raises(jobs.AuthError, match="RAY_AUTH_TOKEN_PATH"):
        auth.find_token()


def test_package_runtime_env_and_entrypoint(tmp_path, small_config):
    cfg = small_config("pkg")
    rel = package.stage(cfg, tmp_path / "stage")
    stage = tmp_path / "stage"
    assert rel == "_submitted/pkg.yaml" and (stage / rel).read_text() == cfg.read_text()
    for pkg in ("orchestrator", "schedules", "cluster"):
        assert (stage / pkg / "__init__.py").is_file()
    for excluded in (".venv", ".git", "runs", "bench/results"):
        assert not (stage / excluded).exists(), excluded
    assert not list(stage.rglob("__pycache__"))
    env = package.runtime_env(stage, stop_wait_s=45)
    assert env["working_dir"] == str(stage)
    assert env["env_vars"]["RAY_JOB_STOP_SIGNAL"] == "SIGINT"
    assert env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "45"
    assert {".venv", "runs", ".git", "bench/results"} <= set(env["excludes"])
    assert "pip" not in env and package.runtime_env(stage, pip=["torch==2.13.0"])["pip"] == ["torch==2.13.0"]
    assert package.entrypoint(rel) == "python -m orchestrator.cli run _submitted/pkg.yaml --quiet"
    assert package.entrypoint("_submitted/a b.yaml", resume=True).endswith("'_submitted/a b.yaml' --quiet --resume")
    assert package.results_folder("/shared/runs/", "x") == ("/shared/runs/x", None)
    with pytest.raises(jobs.LocalStorageError, match="--allow-local-storage"):
        package.results_folder("runs", "x")
    folder, warning = package.results_folder("runs", "x", allow_local=True)
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


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    """The requests of Ray's job client, answered as a Ray dashboard would (see ``FakeJobsAPI``)."""

    server: FakeJobsAPI

    def _answer(self, code: int, body: dict | None = None, text: str | None = None) -> None:
        data = text.encode() if text is not None else json.dumps(body or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        api, path, auth = self.server, self.path, self.headers.get("Authorization")
        api.seen.append((self.command, path, auth))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/api/authentication_mode":
            return self._answer(200, {"authentication_mode": api.mode})
        if path == "/api/version":
            return self._answer(200, {"version": "4", "ray_version": "2.60.0", "ray_commit": "x"})
        if path.startswith("/api/packages/"):
            return self._answer(404 if self.command == "GET" else 200)
        if not path.startswith("/api/jobs/"):
            return self._answer(404)
        if api.echo_auth:  # a proxy whose error page repeats the request's headers
            return self._answer(500, text=f"upstream failed; request headers: Authorization: {auth}")
        job = path[len("/api/jobs/") :]
        if self.command == "POST" and not job:
            if api.agent_missing > 0:
                api.agent_missing -= 1
                return self._answer(500, text="No available agent to submit job, please try again later.")
            job_id = json.loads(body)["submission_id"]
            return self._answer(200, {"job_id": job_id, "submission_id": job_id})
        if self.command == "POST" and job.endswith("/stop"):
            api.status = "STOPPED"
            return self._answer(200, {"stopped": True})
        if self.command == "GET" and job.endswith("/logs"):
            return self._answer(200, {"logs": "log line\n"})
        if self.command == "GET":
            return self._answer(
                200,
                {
                    "type": "SUBMISSION",
                    "submission_id": job,
                    "status": api.status,
                    "entrypoint": "python -m orchestrator.cli run x.yaml",
                    "message": "",
                    "metadata": {"sweep_folder": "/shared/runs/x"},
                },
            )
        return self._answer(404)

    do_GET = do_PUT = do_POST = _handle

    def log_message(self, *args):
        pass


class FakeJobsAPI(http.server.ThreadingHTTPServer):
    """A Jobs API on 127.0.0.1: a real HTTP server that Ray's job client talks to as to a dashboard.

    It answers the auth-mode probe with ``mode`` and records every request as ``(method, path,
    Authorization header)`` in ``seen``. The first ``agent_missing`` job submissions get Ray's answer
    for a head node whose job agent is not up yet (HTTP 500, "No available agent ..."). With
    ``echo_auth``, every ``/api/jobs/`` request gets an HTTP 500 whose body repeats the request's
    Authorization header. ``GET /api/jobs/ID`` reports ``status``.
    """

    def __init__(self, mode: str = "disabled") -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.mode, self.seen, self.agent_missing, self.echo_auth = mode, [], 0, False
        self.status = "RUNNING"
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def posts(self) -> int:
        return sum(1 for m, p, _ in self.seen if (m, p) == ("POST", "/api/jobs/"))


@pytest.fixture
def fake_api():
    """``fake_api(mode)`` starts a FakeJobsAPI; all are shut down after the test."""
    servers = []

    def start(mode: str = "disabled") -> FakeJobsAPI:
        server = FakeJobsAPI(mode)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _sweep_process(home: Path, *argv: str, **env_vars: str) -> subprocess.CompletedProcess:
    """The installed ``sweep`` in a fresh process: HOME=home, no Ray address or token variables but
    ``env_vars`` (so Ray's client reads RAY_AUTH_MODE from them, not from this test process)."""
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARS}
    env.update(HOME=str(home), **env_vars)
    return subprocess.run([str(SWEEP_BIN), *argv], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_open_cluster_refused_unless_insecure_and_never_gets_the_token(clean_env, small_config, fake_api):
    # RAY_AUTH_MODE=token makes Ray's own client attach the token to every request; the sweep process
    # runs with it, so only sweep's guard keeps the token away from an open cluster.
    secret = "secret-token-for-another-cluster"
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secret}
    api = fake_api("disabled")
    cfg = small_config("open")
    r = _sweep_process(clean_env, "submit", str(cfg), "--address", api.url, **env)
    assert r.returncode == 2, r.stderr
    assert one_line(r.stderr) and "CVE-2023-48022" in r.stderr and "--insecure" in r.stderr
    assert [(m, p) for m, p, _ in api.seen] == [("GET", "/api/authentication_mode")]  # nothing uploaded

    r = _sweep_process(clean_env, "submit", str(cfg), "--address", api.url, "--insecure", **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("sweep-open-")
    assert all(line.startswith("sweep: ") for line in r.stderr.splitlines()), r.stderr  # no Ray log lines
    assert api.posts() == 1
    assert all(auth is None for _, _, auth in api.seen), "the token went to an open cluster"
    assert secret not in r.stdout + r.stderr

    # The same environment does make Ray's client send the token: the guard above is what kept it back.
    probe = "import sys; from ray.job_submission import JobSubmissionClient as C; C(sys.argv[1]).list_jobs()"
    subprocess.run(
        [sys.executable, "-c", probe, api.url],
        capture_output=True,
        timeout=120,
        check=False,
        env={**{k: v for k, v in os.environ.items() if k not in TOKEN_VARS}, "HOME": str(clean_env), **env},
    )
    assert ("GET", "/api/version", f"Bearer {secret}") in api.seen


def test_token_in_error_bodies_is_masked_in_every_output(clean_env, monkeypatch, capsys, small_config, fake_api):
    token = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    api = fake_api("token")
    api.echo_auth = True
    cfg = small_config("echo")
    for argv in (
        ["submit", str(cfg)],
        ["submit", str(cfg), "--follow"],
        ["status", "j1"],
        ["logs", "j1"],
        ["logs", "j1", "--follow"],
        ["stop", "j1"],
    ):
        n = len(api.seen)
        assert sweep(*argv, "--address", api.url) == 1, argv
        out = capsys.readouterr()
        assert one_line(out.err) and "status code 500" in out.err, (argv, out.err)
        # the error body held the token (the server echoed what it was sent): it is shown masked
        assert ("Bearer " + token) in [a for _, _, a in api.seen[n:]] and "Bearer ***" in out.err, argv
        assert token not in out.out + out.err, argv


@pytest.mark.parametrize("status,code", [("RUNNING", 0), ("SUCCEEDED", 0), ("FAILED", 1), ("STOPPED", 1)])
def test_status_exit_code_follows_the_job(clean_env, monkeypatch, capsys, fake_api, status, code):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok")
    api = fake_api("token")
    api.status = status
    assert sweep("status", "j1", "--address", api.url) == code
    out = capsys.readouterr()
    assert out.out.startswith(f"j1 {status}\n") and "results: /shared/runs/x" in out.out
    assert ("--resume" in out.err) == (status == "STOPPED")


def test_address_flag_wins_over_ray_address_variables(clean_env, monkeypatch, capsys, small_config, fake_api):
    # Ray's client would send every request (and the token) to RAY_API_SERVER_ADDRESS / RAY_ADDRESS.
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok")
    right, other = fake_api("token"), fake_api("token")
    monkeypatch.setenv("RAY_ADDRESS", other.url)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", other.url)
    cfg = small_config("flagwins")
    assert sweep("submit", str(cfg), "--address", right.url) == 0
    job = capsys.readouterr().out.strip()
    for argv in (["status", job], ["logs", job], ["stop", job]):
        assert sweep(*argv, "--address", right.url) == 0, (argv, capsys.readouterr().err)
    capsys.readouterr()
    assert other.seen == [], f"requests went to RAY_ADDRESS: {other.seen}"
    assert right.posts() == 1 and {a for _, p, a in right.seen if p != "/api/authentication_mode"} == {"Bearer tok"}
    assert ("POST", f"/api/jobs/{job}/stop", "Bearer tok") in right.seen


def test_submit_waits_for_the_job_agent_then_gives_up(clean_env, monkeypatch, capsys, small_config, fake_api):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok")
    api = fake_api("token")
    api.agent_missing = 3  # as right after `ray start`: the head node's job agent is not registered yet
    cfg = small_config("agent")
    assert sweep("submit", str(cfg), "--address", api.url) == 0
    out = capsys.readouterr()
    assert out.out.startswith("sweep-agent-") and api.posts() == 4
    waits = [line for line in out.err.splitlines() if "retrying" in line]
    assert len(waits) == 1 and "No available agent" in waits[0] and "120 s" in waits[0], out.err

    api.agent_missing = 10**9  # never ready: bounded
    monkeypatch.setattr(jobs, "AGENT_WAIT_S", 2.0)
    t0 = time.monotonic()
    assert sweep("submit", str(cfg), "--address", api.url) == 1
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "retrying for up to 2 s" in err[0], err
    assert err[1].startswith("sweep: error: ") and "no job agent ready after 2 s" in err[1], err
    assert 2.0 <= elapsed < 15, elapsed

    api.echo_auth = True  # any other HTTP 500 is not retried
    n = api.posts()
    assert sweep("submit", str(cfg), "--address", api.url) == 1
    assert api.posts() == n + 1 and "retrying" not in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["runs", "./runs", "~/runs", "~"])
def test_machine_local_storage_refused_unless_allowed(
    clean_env, monkeypatch, capsys, small_config, fake_api, tmp_path, storage
):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok")
    api = fake_api("token")
    cfg = small_config("local")
    cfg.write_text(cfg.read_text().replace(f"storage: {tmp_path / 'runs'}", f"storage: '{storage}'"))
    assert f"storage: '{storage}'\n" in cfg.read_text()
    assert sweep("submit", str(cfg), "--address", api.url) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "machine-local" in err and "--allow-local-storage" in err and "s3://" in err, err
    assert api.seen == []  # refused before the cluster is asked anything

    assert sweep("submit", str(cfg), "--address", api.url, "--allow-local-storage") == 0
    out = capsys.readouterr()
    assert out.out.startswith("sweep-local-") and api.posts() == 1
    assert "sweep: warning: " in out.err and "machine-local" in out.err


def test_absolute_and_uri_storage_accepted(clean_env, monkeypatch, capsys, small_config, fake_api, tmp_path):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok")
    api = fake_api("token")
    cfg = small_config("shared")  # storage: an absolute path
    assert sweep("submit", str(cfg), "--address", api.url) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and f"results: {tmp_path / 'runs' / 'shared'};" in err
    assert package.results_folder("s3://bucket/runs?region=x", "n") == ("s3://bucket/runs/n?region=x", None)
    assert package.results_folder("file:///shared/runs", "n") == ("/shared/runs/n", None)


def test_log_stream_never_shows_a_token_cut_between_chunks():
    secret = "s3cr3t-token"
    text = f"a {secret} b {secret}{secret}\nend {secret[:5]}"
    for step in range(1, len(text) + 1):
        shown, held = "", ""
        for i in range(0, len(text), step):
            part, held = jobs.scrub_stream(held + text[i : i + step], secret)
            assert secret not in part
            shown += part
        assert shown + held == text.replace(secret, "***"), (step, shown)


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


def _wait_until_jobs_run(url: str, token_path: Path, probe_id: str, timeout: float = 240) -> None:
    """Return once the cluster runs jobs: its Jobs API answers with our token, its head node's job agent
    takes a submission (Ray answers "No available agent to submit job" until the agent registers, a
    while after `ray start` returns) and that no-op job SUCCEEDED. Polls state, fails at ``timeout``."""
    deadline = time.monotonic() + timeout
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(token_path))
        while True:  # the dashboard is up and takes the token
            try:
                client = jobs.Cluster(url).client
                break
            except (jobs.JobsError, jobs.AuthError):
                assert time.monotonic() < deadline, "the Jobs API never answered"
                time.sleep(0.5)
        while True:  # the head node's job agent is registered
            try:
                client.submit_job(entrypoint="true", submission_id=probe_id)
                break
            except RuntimeError as exc:
                assert jobs.NO_AGENT in str(exc) and time.monotonic() < deadline, str(exc)
                time.sleep(0.5)
        while (status := str(client.get_job_status(probe_id))) not in jobinfo.TERMINAL:
            assert time.monotonic() < deadline, f"the probe job is still {status}"
            time.sleep(0.5)
        assert status == "SUCCEEDED", client.get_job_logs(probe_id)[-2000:]


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
    env.update(
        HOME=str(home),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        **{MARKER_VAR: marker},
    )
    env.pop("PYTHONPATH", None)
    try:
        # Ray's own way to make a token: `ray get-auth-token --generate` writes ~/.ray/auth_token.
        gen = subprocess.run(
            [str(RAY), "get-auth-token", "--generate"], env=env, capture_output=True, text=True, timeout=60
        )
        assert gen.returncode == 0, gen.stderr[-2000:]
        token_path = home / ".ray" / "auth_token"
        token = token_path.read_text().strip()
        token_path.chmod(0o600)  # Ray writes it with the umask's mode
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
        gcs, dash, client, agent1, agent2, rt1, rt2, met1, met2 = _free_ports(9)
        common = ["--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
        # A temp dir per node: nodes sharing one would share runtime_resources/, and the worker node's
        # runtime-env agent would delete the job's working_dir under the head node's feet.
        head = [
            str(RAY),
            "start",
            "--head",
            "--temp-dir",
            str(tmp / "h"),
            "--port",
            str(gcs),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dash),
            "--ray-client-server-port",
            str(client),
            "--num-cpus",
            "2",
            "--dashboard-agent-listen-port",
            str(agent1),
            "--runtime-env-agent-port",
            str(rt1),
            "--metrics-export-port",
            str(met1),
            "--include-dashboard",
            "true",
            *common,
        ]
        worker = [
            str(RAY),
            "start",
            "--address",
            f"127.0.0.1:{gcs}",
            "--temp-dir",
            str(tmp / "w"),
            "--num-cpus",
            "1",
            "--dashboard-agent-listen-port",
            str(agent2),
            "--runtime-env-agent-port",
            str(rt2),
            "--metrics-export-port",
            str(met2),
            *common,
        ]
        for cmd in (head, worker):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, start_new_session=True)
            assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
            assert token not in r.stdout + r.stderr
        url = f"http://127.0.0.1:{dash}"
        _wait_until_jobs_run(url, token_path, f"ready-{marker[:8]}")
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
workload: {workload}
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


def _sweep_yaml(
    tmp_path: Path,
    name: str,
    epochs: int = 2,
    low: str = "1e-3",
    asha: str = "true",
    every: int = 0,
    workload: str = "digits_mlp",
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        SWEEP.format(
            name=name, epochs=epochs, storage=tmp_path / "runs", low=low, asha=asha, every=every, workload=workload
        )
    )
    return path


def token_printing_workload(config: dict):
    """A plugin workload that prints the cluster's auth token, found as Ray finds it (as one that dumps
    its environment would), then fails: the job's logs and its failure message hold the token."""
    from orchestrator.workloads import WorkloadError

    token = (
        os.environ.get("RAY_AUTH_TOKEN")
        or Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").read_text().strip()
    )
    print(f"debug: auth token {token}", flush=True)
    raise WorkloadError(f"this workload refuses to train (token {token})")


@pytest.mark.slow
def test_token_printed_by_a_job_is_masked_and_a_failed_job_exits_1(with_token, capsys, tmp_path):
    cluster = with_token
    cfg = _sweep_yaml(tmp_path, "jobleak", workload="tests.test_jobs:token_printing_workload")
    assert sweep("submit", str(cfg), "--address", cluster.url, "--follow") == 1
    outputs = {"submit --follow": capsys.readouterr()}
    job_id = outputs["submit --follow"].out.splitlines()[0].strip()
    assert f"job {job_id} FAILED" in outputs["submit --follow"].err
    assert sweep("status", job_id, "--address", cluster.url) == 1
    outputs["status"] = capsys.readouterr()
    assert outputs["status"].out.startswith(f"{job_id} FAILED")
    assert sweep("logs", job_id, "--address", cluster.url) == 0
    outputs["logs"] = capsys.readouterr()
    assert sweep("logs", job_id, "--address", cluster.url, "--follow") == 1
    outputs["logs --follow"] = capsys.readouterr()

    raw = jobs.Cluster(cluster.url).client.get_job_logs(job_id)  # Ray's own client: what the job printed
    assert f"debug: auth token {cluster.token}" in raw
    for command, out in outputs.items():
        assert cluster.token not in out.out + out.err, command
        assert "debug: auth token ***" in out.out, command  # the job's line, masked
    for command in ("submit --follow", "logs --follow"):  # the final line quotes the job's message
        assert "auth token ***" in outputs[command].err.splitlines()[-1], command


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
    assert sweep("status", job_id, "--address", cluster.url) == 1  # a stopped sweep is not a finished one
    status = capsys.readouterr()
    assert status.out.startswith(f"{job_id} STOPPED") and f"sweep run {cfg} --resume" in status.err
    assert sweep("logs", job_id, "--address", cluster.url, "--follow") == 1
    assert f"job {job_id} STOPPED" in capsys.readouterr().err
    logs = jobs.logs(job_id, cluster.url)
    assert tune.Tuner.can_restore(str(folder)), logs[-3000:]  # SIGINT: Tune saved the experiment state
    assert (folder / "trials.parquet").exists(), logs[-3000:]  # and the sweep wrote what it had
    assert cluster.token not in logs + out.out + out.err
