"""Shared fixtures: one real local Ray for the in-process integration tests (its own temp folder,
``address="local"``: never another Ray on the machine), and small sweep configs."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


_TEMPS: list[str] = []


@pytest.fixture
def local_ray():
    """A real local Ray shared by the tests that ask for it; started again if a test that needed its own
    cluster shut it down. Stopped at the end of the session."""
    import ray

    if not ray.is_initialized():
        temp = tempfile.mkdtemp(prefix="sweep-test-ray-", dir="/tmp")
        _TEMPS.append(temp)
        ray.init(address="local", num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    yield ray


@pytest.fixture(scope="session", autouse=True)
def _stop_local_ray():
    yield
    import sys

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
