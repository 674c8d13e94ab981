"""Shared set-up: a test session of its own, one real local Ray for the in-process integration tests (its
own temp folder, ``address="local"``: never another Ray on the machine), and small sweep configs.

A session of its own: ``HOME`` and the XDG and matplotlib folders point into a fresh folder under the temp
dir (removed at the end), so nothing a test, Ray (``~/.ray/auth_token``) or matplotlib writes lands in the
user's home; after each test the environment is put back as the session began it, so a variable a test
(or the code under test: ``RAY_AUTH_MODE=token``, ``RAY_AIR_NEW_OUTPUT=0``) sets never reaches a later
test or its subprocesses; at the end the user's environment is restored. The repository root is on
``sys.path`` and ``PYTHONPATH`` whatever the working folder, so this process, its subprocesses and Ray's
workers (which get the driver's working folder, not its ``sys.path``) all import the ``tests.*`` workloads.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_REAL_ENV: dict[str, str] = {}
_SESSION_ENV: dict[str, str] = {}
_SESSION_DIRS: list[str] = []


def pytest_configure(config):
    """Before collection (test modules import matplotlib and Ray): the session's own home and paths."""
    if _SESSION_DIRS:  # configured once per process
        return
    _REAL_ENV.update(os.environ)
    home = Path(tempfile.mkdtemp(prefix="sweep-test-home-"))
    _SESSION_DIRS.append(str(home))
    os.environ.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    _SESSION_ENV.update(os.environ)


def pytest_unconfigure(config):
    if not _SESSION_DIRS:
        return
    _restore(_REAL_ENV)
    for folder in _SESSION_DIRS:
        shutil.rmtree(folder, ignore_errors=True)
    _SESSION_DIRS.clear()


@pytest.fixture(autouse=True)
def _session_environment():
    """Whatever a test (or the code it runs) sets in the environment is undone after it: the next test
    starts with the session's environment. (A module-scoped fixture must not change the environment.)"""
    yield
    _restore(_SESSION_ENV, keep=("PYTEST_CURRENT_TEST",))


def _restore(env: dict[str, str], keep: tuple[str, ...] = ()) -> None:
    for key in [k for k in os.environ if k not in env and k not in keep]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@pytest.fixture
def ray_temp(monkeypatch):
    """Stops the shared local Ray if it runs. A short, empty folder of this test's own for a
    ``ray.cluster_utils.Cluster`` (Ray's socket paths live under it); ``RAY_TMPDIR`` points at it for the
    test, so the ``ray/ray_current_cluster`` file Cluster writes into Ray's default temp dir lands here too,
    never in ``/tmp/ray``. Removed after."""
    import ray

    if ray.is_initialized():  # the shared local Ray of other tests: this test starts a cluster of its own
        ray.shutdown()
    _refresh_ray_auth()
    temp = tempfile.mkdtemp(prefix="rt")
    os.mkdir(os.path.join(temp, "ray"))
    monkeypatch.setenv("RAY_TMPDIR", temp)
    yield temp
    if not os.environ.get("KEEPRT"):
        shutil.rmtree(temp, ignore_errors=True)


def _refresh_ray_auth() -> None:
    """Ray caches its auth mode in-process from ``RAY_AUTH_MODE``, which an earlier ``ray.init`` set and the
    per-test environment restore removed: refreshed before a new Ray starts, driver and nodes agree on it."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


_TEMPS: list[str] = []


@pytest.fixture
def local_ray():
    """A real local Ray shared by the tests that ask for it; started again if a test that needed its own
    cluster shut it down. Stopped at the end of the session."""
    import ray

    if not ray.is_initialized():
        temp = tempfile.mkdtemp(prefix="sr")  # under TMPDIR, short: Ray's socket paths live under it
        _TEMPS.append(temp)
        _refresh_ray_auth()
        ray.init(address="local", num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    yield ray


@pytest.fixture(scope="session", autouse=True)
def _stop_local_ray():
    yield
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
    for temp in _TEMPS:
        shutil.rmtree(temp, ignore_errors=True)


SMALL = """\
name: {name}
workload: digits_mlp
max_epochs: 4
storage: {storage}
space:
  lr: {{log: [1e-4, 1e-0], per_decade: 1}}
  optimizer: sgd
  momentum: 0.9
  width: 32
asha: {{grace_period: 2}}
zoom: {{max_rounds: 2, points_per_round: 2}}
"""


@pytest.fixture
def small_config(tmp_path):
    def make(name: str = "small", extra: str = "") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(SMALL.format(name=name, storage=tmp_path / "runs") + extra)
        return path

    return make


def checkpointed(folder: Path) -> dict[str, int]:
    """Trial id -> epochs in its newest checkpoint saved in the sweep folder (``checkpoint_every: 1``: Tune's
    ``checkpoint_00000K`` holds epoch K + 1). The worker writes it there as the trial reports the epoch."""
    out: dict[str, int] = {}
    for state in folder.glob("*/checkpoint_*/state.pt"):
        trial_id, epochs = state.parent.parent.name, int(state.parent.name.rsplit("_", 1)[1]) + 1
        out[trial_id] = max(out.get(trial_id, 0), epochs)
    return out


@dataclass
class NodeLoss:
    """What :func:`node_lost_once_trained` saw: ``saved`` (trial id -> epochs checkpointed) and ``time``
    (``time.time()``) when it removed the node; ``gave_up`` says why it never did (empty while it may)."""

    saved: dict[str, int] = field(default_factory=dict)
    time: float = 0.0
    gave_up: str = ""

    @property
    def removed(self) -> bool:
        return bool(self.saved)


@contextmanager
def node_lost_once_trained(
    cluster, node, folder: Path, trials: int = 2, epochs: int = 2, timeout: float = 300.0
) -> Iterator[NodeLoss]:
    """A thread that, once ``trials`` trials have checkpointed ``epochs`` epochs in the sweep ``folder``,
    removes ``node`` from the ``ray.cluster_utils.Cluster`` at once (not gracefully: a lost machine). Run the
    sweep inside the block; the :class:`NodeLoss` it yields says when the node went, or why it never did
    (``timeout`` seconds passed first, or the removal failed). The thread is joined (5 s at most) when the
    block ends."""
    loss = NodeLoss()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            saved = checkpointed(folder)
            if sum(n >= epochs for n in saved.values()) >= trials:
                loss.time = time.time()
                try:
                    cluster.remove_node(node, allow_graceful=False)
                except Exception as exc:  # said by the test's assertion, not lost in the thread
                    loss.gave_up = f"removing the node failed: {exc!r}"
                    return
                loss.saved = saved
                return
            time.sleep(0.05)
        loss.gave_up = (
            f"no {trials} trials had checkpointed {epochs} epochs within {timeout:.0f} s: {checkpointed(folder)}"
        )

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield loss
    finally:
        thread.join(timeout=5)
