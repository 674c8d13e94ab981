"""Where a sweep's results go: ``storage:`` is a local (or shared) folder, or a URI that pyarrow's
filesystems open (``s3://bucket/prefix``, ``gs://``, ``abfs://``, ``hdfs://``, with pyarrow's query
options such as ``?endpoint_override=127.0.0.1:9000&scheme=http``). pyarrow only (no Ray).

With a URI, Ray Tune writes its experiment (trial folders, checkpoints, its state) straight to
``URI/NAME``; this project's own files (``sweep.yaml``, ``trials.parquet``, the report, the ``_sweep``
TensorBoard run, ...) are written to a local copy, ``local_copy(URI, NAME)`` under
``~/.cache/sweep/`` (``$XDG_CACHE_HOME/sweep/``), and copied to ``URI/NAME`` by ``upload``.
``file://`` and ``local://`` URIs are plain local folders.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

# the schemes pyarrow.fs.FileSystem.from_uri opens (besides file:// and local://, read as local folders)
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
LOCAL_SCHEMES = ("file", "local")
# what `sweep report` and a resumed run need from URI/NAME: never Tune's trial folders or checkpoints
INPUTS = ("sweep.yaml", "preflight.json", "trials.parquet", "rounds.json")  # results.TRIALS, results.ROUNDS

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StorageError(ValueError):
    """The storage URI cannot be opened, read or written. The message is one line and names the URI."""


def scheme(text: str) -> str | None:
    """``'s3'`` for ``s3://bucket/x``; None for a path (``runs``, ``/shared/sweeps``, ``~/runs``)."""
    m = _SCHEME.match(text)
    return m.group(1).lower() if m else None


def is_uri(text: str | os.PathLike) -> bool:
    """True for a URI whose files live outside this machine's filesystem (not ``file://``)."""
    s = scheme(str(text))
    return s is not None and s not in LOCAL_SCHEMES


def display(uri: str) -> str:
    """The URI without credentials (``s3://KEY:SECRET@bucket`` -> ``s3://bucket``), for messages."""
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else uri


def join(uri: str, name: str) -> str:
    """``URI/name``, the query options kept at the end: ``s3://b/runs?x=1`` + ``n`` -> ``s3://b/runs/n?x=1``."""
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(path=parts.path.rstrip("/") + "/" + name).geturl()


def name_of(uri: str) -> str:
    """The last path segment of a URI (a sweep's name), without the query options."""
    return urllib.parse.urlsplit(uri).path.rstrip("/").rpartition("/")[2]


def check(text: str) -> str:
    """Validate ``storage:`` without touching the network. Raises ``ValueError`` (one line) for a URI
    whose scheme pyarrow's filesystems do not handle, or whose options pyarrow rejects."""
    s = scheme(text)
    if s is None:
        return text
    if s not in SCHEMES + LOCAL_SCHEMES:
        raise ValueError(f"{display(text)!r}: scheme {s}:// is not supported; expected a local path or a URI "
                         f"that pyarrow's filesystems open ({', '.join(x + '://' for x in SCHEMES)}, file://)")
    if s in ("hdfs", "viewfs"):
        return text  # opening one loads a JVM: left to the start of the sweep
    probe = text
    if s == "s3" and "region=" not in text and "endpoint_override=" not in text:
        # a given region spares pyarrow a network lookup of the bucket's region: options checked offline
        probe += ("&" if "?" in text else "?") + "region=us-east-1"
    try:
        import pyarrow.fs

        pyarrow.fs.FileSystem.from_uri(probe)
    except Exception as exc:  # ArrowInvalid, ArrowNotImplementedError (a pyarrow built without S3), OSError
        raise ValueError(f"{display(text)!r}: pyarrow cannot open it ({_first_line(exc)})") from None
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def local_path(text: str) -> Path:
    """A local ``storage:`` (a path, ``file://`` or ``local://``) as an absolute path."""
    if scheme(text) in LOCAL_SCHEMES:
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    return Path(text).expanduser().resolve()


def cache_dir(kind: str, uri: str) -> Path:
    """``~/.cache/sweep/KIND/<bucket>-<hash of the URI>``: one local folder per storage URI (the query
    options and credentials left out, so another endpoint or key finds the same folder)."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    key = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", host)[:40] or parts.scheme
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "sweep" / kind / f"{label}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Target:
    """Where one sweep's results go: ``folder`` is the local folder the project writes its files to (the
    sweep folder itself, or the local copy of ``URI/NAME``); ``uri`` is ``URI/NAME``, or None."""

    folder: Path
    uri: str | None = None

    @property
    def shown(self) -> str:
        return display(self.uri) if self.uri else str(self.folder)


def target(storage: str, name: str) -> Target:
    if is_uri(storage):
        return Target(folder=cache_dir("staging", storage) / name, uri=join(storage, name))
    return Target(folder=local_path(storage) / name)


# --- the filesystem ---------------------------------------------------------------------------------
def open_uri(uri: str):
    """``(filesystem, path)`` for a URI (pyarrow). Raises ``StorageError`` (one line)."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise StorageError(f"{display(uri)}: cannot open storage ({_first_line(exc)})") from None


def exists(uri: str) -> bool:
    """Whether anything (a file, a folder with files) is at ``uri``."""
    import pyarrow.fs

    fs, path = open_uri(uri)
    try:
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
    except Exception as exc:
        raise StorageError(f"{display(uri)}: cannot read storage ({_first_line(exc)})") from None


def upload(folder: Path, uri: str) -> list[str]:
    """Copy every file under the local ``folder`` (skipping ``.``-files: temporary writes) to ``uri``,
    replacing files of the same names there and nothing else. Returns the relative paths copied."""
    import pyarrow.fs

    fs, root = open_uri(uri)
    done, made = [], set()
    try:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(f for f in filenames if not f.startswith(".")):
                rel = Path(dirpath, name).relative_to(folder).as_posix()
                parent = f"{root}/{rel}".rpartition("/")[0]
                if parent not in made:
                    fs.create_dir(parent, recursive=True)
                    made.add(parent)
                # use_threads=False: pyarrow's threaded upload to S3 is unsafe (apache/arrow#32372)
                pyarrow.fs.copy_files(str(Path(dirpath, name)), f"{root}/{rel}", destination_filesystem=fs,
                                      use_threads=False)
                done.append(rel)
    except Exception as exc:
        raise StorageError(f"{display(uri)}: upload failed ({_first_line(exc)}); the results are in "
                           f"{folder}") from None
    return done


def download(uri: str, folder: Path, names: tuple[str, ...] = INPUTS) -> list[str]:
    """Copy the files ``names`` at ``uri`` into the local ``folder``; a name absent at ``uri`` is removed
    from ``folder`` (a stale copy never mixes in). Returns the names copied."""
    import pyarrow.fs

    fs, root = open_uri(uri)
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    try:
        for name in names:
            if fs.get_file_info(f"{root}/{name}").type == pyarrow.fs.FileType.NotFound:
                (folder / name).unlink(missing_ok=True)
                continue
            pyarrow.fs.copy_files(f"{root}/{name}", str(folder / name), source_filesystem=fs)
            done.append(name)
    except Exception as exc:
        raise StorageError(f"{display(uri)}: download failed ({_first_line(exc)})") from None
    return done


def fetch(uri: str, out: str | Path | None = None) -> Path:
    """Download a stored sweep's result files (not its checkpoints) from ``uri`` (``URI/NAME``) into
    ``out/NAME`` (default: ``~/.cache/sweep/reports/<bucket>-<hash>/NAME``); returns that folder.
    Raises ``ResultsError`` (one line) when ``uri`` holds no sweep results."""
    from orchestrator.results import TRIALS, ResultsError

    name = name_of(uri)
    if not name or not exists(uri):
        raise ResultsError(f"{display(uri)}: no such sweep folder (expected STORAGE/NAME, e.g. s3://bucket/runs/digits-lr)")
    folder = (Path(out).expanduser().resolve() if out else cache_dir("reports", uri)) / name
    got = download(uri, folder)
    if TRIALS not in got:
        raise ResultsError(f"{display(join(uri, TRIALS))}: no results yet (expected a folder written by 'sweep run')")
    return folder
