"""``cluster.connect``: where ``sweep run`` finds Ray, and what it refuses.

* the address: ``--address`` wins over ``RAY_ADDRESS``; the Jobs API's ``http(s)://`` is refused.
* the embedded Ray listens on loopback only: every listening socket of every process the session
  started, as the kernel reports them (psutil), is on 127.0.0.1 / ::1.
* an existing cluster, started here with ``ray start --head`` (a temp dir and HOME of its own, on
  127.0.0.1, free ports; torn down by killing exactly the processes that carry this module's marker,
  never ``ray stop``): with token auth on, the sweep runs with the token (one warning line: it travels
  unencrypted), without a token or with a wrong one it is refused in one line (exit 2); with
  ``RAY_AUTH_MODE=disabled`` it is refused unless ``--insecure``; a closed port fails within
  ``--connect-timeout`` (exit 1).

The test clusters bind 127.0.0.1 only. Ray replaces a loopback node address with the machine's routable
one unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: the clusters and the drivers run with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from cluster import connect

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"
MARKER_VAR = "SWEEP_CONNECT_TEST_CLUSTER"
AUTH_VARS = (
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_AUTH_MODE",
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "RAY_USE_TLS",
)
LOOPBACK_IPS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


# --- the address ------------------------------------------------------------------------------------


def test_flag_wins_over_ray_address(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "from-env:6379")
    assert connect.resolve_address("from-flag:6379") == "from-flag:6379"
    assert connect.resolve_address(None) == "from-env:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert connect.resolve_address(None) is None  # embedded


@pytest.mark.parametrize("url", ["http://head:8265", "https://head:8265"])
def test_jobs_api_address_is_refused_naming_where_it_came_from(monkeypatch, url):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(connect.AddressError, match=f"--address={url}: .*sweep submit"):
        connect.resolve_address(url)
    monkeypatch.setenv("RAY_ADDRESS", url)
    with pytest.raises(connect.AddressError, match=f"RAY_ADDRESS={url}: "):
        connect.resolve_address(None)


def test_ray_client_address_is_refused_pointing_at_submit(monkeypatch):
    """Ray Client would run Tune on the cluster, where this driver cannot read its searcher back."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(connect.AddressError, match=r"--address=ray://head:10001: Ray Client .*HEAD:6379.*sweep submit"):
        connect.resolve_address("ray://head:10001")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(connect.AddressError, match="RAY_ADDRESS=ray://head:10001: "):
        connect.resolve_address(None)


@pytest.mark.parametrize("address", ["head", ":6379", "head:port"])
def test_malformed_cluster_address_is_refused_in_one_line(address):
    with pytest.raises(connect.AddressError, match="expected HEAD:6379"):
        connect.cluster_auth_mode(address, timeout=1)


# --- the embedded Ray ---------------------------------------------------------------------------------

LISTENERS = """
import json, socket, ray, psutil
from cluster.connect import ray_session
with ray_session(None, num_cpus=1):
    ray.get(ray.remote(lambda: 1).remote())  # a worker process too
    me = psutil.Process()
    found = []
    for p in [me, *me.children(recursive=True)]:
        try:
            conns, name = p.net_connections(kind="inet"), p.name()
        except psutil.NoSuchProcess:
            continue
        found += [[p.pid, name, c.laddr.ip, c.laddr.port] for c in conns  # TCP listening, or any UDP
                  if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM]
print("LISTENERS " + json.dumps(found))
"""


def test_embedded_ray_listens_on_loopback_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-c", LISTENERS], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(r.stdout.split("LISTENERS ", 1)[1])
    names = {name for _, name, _, _ in found}
    # the session's servers were all seen: GCS, raylet (node and object manager), agents, a worker
    assert {"gcs_server", "raylet"} <= names and len(found) >= 8, found
    wide = [f for f in found if f[2] not in LOOPBACK_IPS]
    assert not wide, f"listening beyond loopback (pid, process, ip, port): {wide}"


# --- a real cluster -----------------------------------------------------------------------------------


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


def _kill_marked(marker: str) -> list[int]:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in _marked_pids(marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _marked_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
    return _marked_pids(marker)


class Head:
    def __init__(self, gcs: str, client: str, token: str | None, tmp: Path):
        self.gcs, self.client, self.token, self.tmp = gcs, client, token, tmp


def _start_head(mode: str):
    tmp = Path(tempfile.mkdtemp(prefix="sc", dir="/tmp"))  # short: Ray's socket paths live under it
    marker = uuid.uuid4().hex
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env.update(
        HOME=str(home),
        RAY_AUTH_MODE=mode,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        **{MARKER_VAR: marker},
    )
    env.pop("PYTHONPATH", None)
    token = None
    if mode == "token":
        token = uuid.uuid4().hex + uuid.uuid4().hex
        path = home / "token"
        path.write_text(token)
        path.chmod(0o600)
        env["RAY_AUTH_TOKEN_PATH"] = str(path)
    gcs, client, agent, agent_grpc, runtime_env, metrics = _free_ports(6)
    cmd = [
        str(RAY),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(gcs),
        "--ray-client-server-port",
        str(client),
        "--include-dashboard",
        "false",
        "--num-cpus",
        "2",
        "--dashboard-agent-listen-port",
        str(agent),
        "--dashboard-agent-grpc-port",
        str(agent_grpc),
        "--runtime-env-agent-port",
        str(runtime_env),
        "--metrics-export-port",
        str(metrics),
        "--temp-dir",
        str(tmp / "r"),
        "--disable-usage-stats",
    ]
    try:
        r = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=180, start_new_session=True, check=False
        )
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        head = Head(f"127.0.0.1:{gcs}", f"ray://127.0.0.1:{client}", token, tmp)
        # ready when the GCS answers (asked the way sweep run asks)
        deadline = time.monotonic() + 60
        while True:
            try:
                assert connect.cluster_auth_mode(head.gcs, timeout=5) == mode
                break
            except connect.ClusterUnreachableError:
                assert time.monotonic() < deadline, "the test cluster's GCS never answered"
        yield head
    finally:
        left = _kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"processes of the test cluster survived teardown: {left}"


@pytest.fixture(scope="module")
def token_head():
    yield from _start_head("token")


@pytest.fixture(scope="module")
def open_head():
    yield from _start_head("disabled")


def _driver_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    home = tmp_path / "driver-home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **extra)
    return env


def _run(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sweep: error:")]


def test_token_cluster_runs_the_sweep_with_the_token_and_warns_it_is_unencrypted(token_head, small_config, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(token_head.token)
    token_file.chmod(0o600)
    cfg = small_config("on-token-cluster")
    r = _run(
        [str(cfg), "--address", token_head.gcs, "--no-check"],
        _driver_env(tmp_path, RAY_AUTH_TOKEN_PATH=str(token_file)),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    warnings = [line for line in r.stderr.splitlines() if line.startswith("sweep: warning:")]
    assert len(warnings) == 1 and "unencrypted" in warnings[0] and token_head.gcs in warnings[0], r.stderr
    assert token_head.token not in r.stdout + r.stderr
    assert (tmp_path / "runs" / "on-token-cluster" / "best.json").exists()


def test_token_cluster_without_a_token_or_with_a_wrong_one_is_refused_in_one_line(token_head, small_config, tmp_path):
    cfg = small_config("no-token")
    r = _run([str(cfg), "--address", token_head.gcs, "--no-check"], _driver_env(tmp_path), timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert _errors(r.stderr) == [r.stderr.strip()] and "requires a Ray auth token" in r.stderr, r.stderr
    r = _run(
        [str(cfg), "--address", token_head.gcs, "--no-check"],
        _driver_env(tmp_path, RAY_AUTH_TOKEN="not-the-token"),
        timeout=120,
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert _errors(r.stderr) == [r.stderr.strip()] and "rejected the Ray auth token from RAY_AUTH_TOKEN" in r.stderr
    assert "not-the-token" not in r.stderr
    assert not (tmp_path / "runs" / "no-token").exists()


def test_open_cluster_is_refused_unless_insecure(open_head, small_config, tmp_path):
    cfg = small_config("on-open-cluster")
    env = _driver_env(tmp_path, RAY_AUTH_TOKEN="secret-token-for-another-cluster")
    r = _run([str(cfg), "--address", open_head.gcs, "--no-check"], env, timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert _errors(r.stderr) == [r.stderr.strip()], r.stderr
    assert "CVE-2023-48022" in r.stderr and "--insecure" in r.stderr and open_head.gcs in r.stderr
    assert not (tmp_path / "runs" / "on-open-cluster").exists()  # nothing was started

    r = _run([str(cfg), "--address", open_head.gcs, "--no-check", "--insecure"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "warning" not in r.stderr and "secret-token" not in r.stdout + r.stderr
    assert (tmp_path / "runs" / "on-open-cluster" / "best.json").exists()


def test_unreachable_address_fails_within_the_connect_timeout(small_config, tmp_path):
    with socket.socket() as held:  # bound, never listening: a closed port nobody else can take meanwhile
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        cfg = small_config("unreachable")
        start = time.monotonic()
        r = _run(
            [str(cfg), "--address", address, "--no-check", "--connect-timeout", "4"], _driver_env(tmp_path), timeout=60
        )
        took = time.monotonic() - start
    assert r.returncode == 1, r.stderr[-3000:]
    assert _errors(r.stderr) == [r.stderr.strip()], r.stderr
    assert f"cannot reach the Ray cluster at {address} within 4 s" in r.stderr
    assert 4 <= took < 4 + 30, took  # waited the bound (a cluster still starting gets it), not more


def test_connect_timeout_default_and_bad_values():
    import inspect

    assert connect.DEFAULT_CONNECT_TIMEOUT_S == 30.0
    assert inspect.signature(connect.ray_session).parameters["connect_timeout"].default == 30.0
    from orchestrator import cli

    args = cli.build_parser().parse_args(["run", "x.yaml"])
    assert args.connect_timeout == 30.0 and args.insecure is False
    assert cli.main(["run", "x.yaml", "--connect-timeout", "0"]) == 2
