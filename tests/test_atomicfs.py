"""The sweep folder's filesystem for Ray Tune: a driver killed while Tune copies a file into the folder
leaves the previous file whole (Tune's own copy truncates first: a kill there left an empty experiment
state, and the resume started the sweep over)."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys

import pyarrow.fs
import pytest

from orchestrator import atomicfs

KILLED_MID_WRITE = """
import os, signal, sys, pyarrow.fs
from orchestrator import atomicfs
fs = atomicfs.local() if sys.argv[2] == "atomic" else pyarrow.fs.LocalFileSystem()
stream = fs.open_output_stream(sys.argv[1])
stream.write(b'{"half": ')
stream.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kind, left", [("atomic", b'{"whole": 1}'), ("plain", b'{"half": ')])
def test_a_writer_killed_mid_file_leaves_the_old_file_whole(tmp_path, kind, left):
    target = tmp_path / "experiment_state.json"
    target.write_bytes(b'{"whole": 1}')
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target), kind], cwd=str(pytest_root()))
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == left  # "plain": what pyarrow's own local filesystem leaves (the failure)


def test_a_closed_stream_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    fs = atomicfs.local()
    target = tmp_path / "sub" / "state.pt"
    fs.create_dir(str(target.parent), recursive=True)
    with fs.open_output_stream(str(target)) as out:
        out.write(b"new")
        assert not target.exists()  # nobody sees it before it is whole
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["state.pt"]
    pyarrow.fs.copy_files(str(target), str(tmp_path / "copy.pt"), destination_filesystem=fs)  # Tune's call
    assert (tmp_path / "copy.pt").read_bytes() == b"new"


def test_it_pickles_without_state_and_counts_as_local():
    fs = pickle.loads(pickle.dumps(atomicfs.local()))
    assert atomicfs.is_local(fs) and atomicfs.is_local(pyarrow.fs.LocalFileSystem())
    assert not atomicfs.is_local(pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(_Memory())))


def pytest_root():
    from .conftest import ROOT

    return ROOT


def _Memory():
    import fsspec

    return fsspec.filesystem("memory")
