"""A local pyarrow filesystem whose files appear whole: each write goes to a hidden temporary sibling and
is renamed into place when the stream closes (``os.replace``, atomic on POSIX).

Ray Tune copies its driver state (``experiment_state-*.json``, the searcher's pickle, callback states) and
every trial checkpoint into the sweep folder with ``pyarrow.fs.copy_files``, which truncates the target and
then writes it. A driver killed inside such a copy leaves an empty or half-written file, and ``Tuner.restore``
then starts the sweep over. Given this filesystem (``local()``), a kill leaves the previous whole file and,
at worst, a hidden ``.NAME.tmp-*`` beside it (never uploaded: the sweep skips dot files).

No Ray, no torch.
"""

from __future__ import annotations

import io
import os
import uuid

import pyarrow
import pyarrow.fs


class _Replacing(io.FileIO):
    """A file written under a temporary name and renamed to ``final`` on close."""

    def __init__(self, final: str) -> None:
        head, name = os.path.split(final)
        self.final = final
        self.temporary = os.path.join(head, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        super().__init__(self.temporary, "wb")

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        os.replace(self.temporary, self.final)


class Forwarding(pyarrow.fs.FileSystemHandler):
    """A filesystem handler that forwards every call to ``self.fs``; subclasses say what ``fs`` is and
    override the calls they change."""

    fs: pyarrow.fs.FileSystem

    def normalize_path(self, path):
        return self.fs.normalize_path(path)

    def get_file_info(self, paths):
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        self.fs.delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path):
        self.fs.delete_file(path)

    def move(self, src, dest):
        self.fs.move(src, dest)

    def copy_file(self, src, dest):
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.fs.open_append_stream(path, metadata=metadata)


class AtomicLocal(Forwarding):
    """The local filesystem, except that output streams replace their file whole on close. Stateless:
    pickles as the class alone, so Tune can ship it to workers."""

    def __init__(self) -> None:
        self.fs = pyarrow.fs.LocalFileSystem()

    def __reduce__(self):
        return (AtomicLocal, ())

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocal)

    def __hash__(self) -> int:
        return hash(AtomicLocal)

    def get_type_name(self) -> str:
        return "sweep+atomic-local"

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the contents of / through the sweep's filesystem")

    def open_output_stream(self, path, metadata):
        return pyarrow.PythonFile(_Replacing(path), mode="w")


def local() -> pyarrow.fs.FileSystem:
    """The filesystem to give Ray Tune for a sweep folder on a local disk."""
    return pyarrow.fs.PyFileSystem(AtomicLocal())


def is_local(fs) -> bool:
    """True for a filesystem whose paths are paths on this machine's disk (plain or ``local()``)."""
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        return True
    return isinstance(fs, pyarrow.fs.PyFileSystem) and isinstance(fs.handler, AtomicLocal)
