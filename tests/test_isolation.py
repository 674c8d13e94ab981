"""The test session's own world (tests/conftest.py): a HOME, caches and an environment of its own, restored
after; the repository importable whatever the working folder, by this process and by Ray's workers."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import ROOT

INNER = """
import importlib
import os
import subprocess
import sys
from pathlib import Path


def test_ray_and_matplotlib_write_their_files(local_ray):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    fig.savefig(Path(os.environ["OUT"]) / "plot.png")  # matplotlib's font cache is built here
    assert os.environ.get("RAY_AUTH_MODE") == "token"  # what ray.init sets for this process
    assert (Path.home() / ".ray" / "auth_token").is_file()
    os.environ["SWEEP_TEST_LEAK"] = "1"
    # Ray's workers import the tests' plugin workloads although this session runs from another folder
    where = local_ray.get(local_ray.remote(lambda: importlib.import_module("tests.faulty_workloads").__file__).remote())
    assert where == os.path.join(os.environ["REPO"], "tests", "faulty_workloads.py")


def test_the_next_test_and_its_subprocesses_see_none_of_it():
    assert "SWEEP_TEST_LEAK" not in os.environ and "RAY_AUTH_MODE" not in os.environ
    child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.environ))"], capture_output=True,
                           text=True, check=True)
    assert "SWEEP_TEST_LEAK" not in child.stdout and "RAY_AUTH_MODE" not in child.stdout
"""


def test_the_session_has_a_home_and_caches_of_its_own():
    home = Path(os.environ["HOME"])
    assert Path.home() == home and home != Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert home.parent == Path(tempfile.gettempdir()) and home.name.startswith("sweep-test-home-")
    for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "MPLCONFIGDIR"):
        assert Path(os.environ[key]).is_relative_to(home), key
    assert str(ROOT) in os.environ["PYTHONPATH"].split(os.pathsep) and str(ROOT) in sys.path


@pytest.mark.slow
def test_a_session_from_another_folder_leaves_nothing_in_home_or_the_environment(tmp_path):
    """An inner pytest session with the suite's conftest, run from a folder outside the repository with a
    fresh HOME, and no XDG or matplotlib variables: Ray and matplotlib write their files in it, a variable
    one test sets is gone in the next; after it, the fresh HOME is still empty."""
    home, work, out = tmp_path / "home", tmp_path / "elsewhere", tmp_path / "out"
    for folder in (home, work, out):
        folder.mkdir()
    (work / "test_inner.py").write_text(INNER)
    drop = {
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "MPLCONFIGDIR",
        "PYTHONPATH",
        "RAY_ADDRESS",
        "RAY_AUTH_MODE",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(home), OUT=str(out), REPO=str(ROOT))
    # the suite's conftest as a plugin; the repository on this process's sys.path only (not in PYTHONPATH:
    # that Ray's workers find it is the conftest's doing)
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import pytest; sys.exit(pytest.main("
        f"['-q', '-p', 'no:cacheprovider', '-p', 'tests.conftest', '--rootdir', {str(work)!r}, 'test_inner.py']))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "2 passed" in done.stdout
    assert (out / "plot.png").stat().st_size > 0
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
