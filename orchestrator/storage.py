"""Where a sweep's results go: ``storage:`` is a local (or shared) folder, or a URI that pyarrow's
filesystems open (``s3://bucket/prefix``, ``gs://``, ``abfs://``, ``hdfs://``, with pyarrow's query
options such as ``?endpoint_override=127.0.0.1:9000&scheme=http``). pyarrow only (no Ray).

With a URI, Ray Tune writes its experiment (trial folders, checkpoints, its state) straight to
``URI/NAME``; this project's own files (``sweep.yaml``, ``trials.parquet``, the report, the ``_sweep``
TensorBoard run, ...) are written to a local copy, ``local_copy(URI, NAME)`` under
``~/.cache/sweep/`` (``$XDG_CACHE_HOME/sweep/``), and copied to ``URI/NAME`` by ``upload``.
``file://`` and ``local://`` URIs are plain local folders.

Credentials in a URI (``s3://KEY:SECRET@bucket``, ``abfs://container:PASSWORD@account...``, query options
such as ``client_secret=``, ``access_token=``, ``sig=``) never leave the process that was given them in
text: ``display`` masks them for messages, ``scrub`` takes them out of any text (the stored ``sweep.yaml``,
error messages), and ``for_tune`` gives Ray Tune a path without them plus a filesystem whose pickle (in
Tune's ``tuner.pkl``, experiment state, checkpoints) names only the masked URI; the processes of the sweep
look the credentials up in this process or in the Ray cluster's in-memory key-value store (GCS), never in
a file (``orchestrator.credfs``). pyarrow only (no Ray).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import StorageError  # also re-exported; one home: errors.py

# the schemes pyarrow.fs.FileSystem.from_uri opens (besides file:// and local://, read as local folders)
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
LOCAL_SCHEMES = ("file", "local")
# what `sweep report` and a resumed run need from URI/NAME: never Tune's trial folders or checkpoints
INPUTS = ("sweep.yaml", "preflight.json", "trials.parquet", "rounds.json", "warm_start.json")  # TRIALS, ROUNDS

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme(text: str) -> str | None:
    """``'s3'`` for ``s3://bucket/x``; None for a path (``runs``, ``/shared/sweeps``, ``~/runs``)."""
    m = _SCHEME.match(text)
    return m.group(1).lower() if m else None


def is_uri(text: str | os.PathLike) -> bool:
    """True for a URI whose files live outside this machine's filesystem (not ``file://``)."""
    s = scheme(str(text))
    return s is not None and s not in LOCAL_SCHEMES


# A query option whose name holds one of these words carries a credential: pyarrow's access_token (gs),
# client_secret (abfs), and the spellings of other stores and signed URLs (access_key, secret_key,
# session_token, sig, signature, sas_token, account_key, password, ...). Masking a harmless option too is
# cheap; printing a secret is not.
_SECRET_WORDS = ("secret", "token", "password", "passwd", "pwd", "sig", "credential", "key", "sas", "auth")
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:" + "|".join(_SECRET_WORDS) + r")[A-Za-z0-9_.-]*"
MASK = "***"
# the user part of abfs://USER[:PASSWORD]@host names the container or the account: kept, the password masked
_USER_IS_PUBLIC = ("abfs", "abfss")


def _is_secret_option(name: str) -> bool:
    return re.fullmatch(_SECRET_NAME, urllib.parse.unquote_plus(name), flags=re.IGNORECASE) is not None


def split(uri: str) -> tuple[str, tuple[str, ...]]:
    """``(public URI, secrets)``: the URI with its credentials masked (``s3://KEY:SECRET@b/x?a=1`` ->
    ``s3://b/x?a=1``; ``gs://b/x?access_token=T`` -> ``gs://b/x?access_token=***``; ``abfs://c:PW@acct/x``
    -> ``abfs://c:***@acct/x``) and each secret value as written and percent-decoded, longest first. A path
    (no scheme) is its own public form."""
    if scheme(uri) is None:
        return uri, ()
    parts = urllib.parse.urlsplit(uri)
    found: list[str] = []
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if parts.scheme.lower() in _USER_IS_PUBLIC:
            netloc = f"{user}:{MASK}@{host}" if colon else netloc
            found.append(password)
        else:
            netloc = host
            found += [user, password]
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        key, eq, value = piece.partition("=")
        if eq and value and _is_secret_option(key):
            found.append(value)
            piece = f"{key}={MASK}"
        pieces.append(piece)
    public = parts._replace(netloc=netloc, query="&".join(pieces)).geturl()
    values = {v for raw in found for v in (raw, urllib.parse.unquote(raw), urllib.parse.unquote_plus(raw))}
    return public, tuple(sorted((v for v in values if v and v != MASK), key=lambda v: (-len(v), v)))


def display(uri: str) -> str:
    """The URI with its credentials masked (see ``split``), for messages and stored files."""
    return split(uri)[0]


def scrub(text: str, uri: str) -> str:
    """``text`` with every credential of ``uri`` replaced by ``***`` (values of 3 characters or more: a
    shorter one would mangle the text, and is masked where the URI itself is shown)."""
    for value in split(uri)[1]:
        if len(value) >= 3:
            text = text.replace(value, MASK)
    return text


_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#'\"]+@")
_OPTION = re.compile(r"(?<![A-Za-z0-9_.-])(" + _SECRET_NAME + r")=([^&\s'\",;)]+)", flags=re.IGNORECASE)


def redact(text: str) -> str:
    """Any text (a job's metadata, an error another library wrote) with what looks like a URI credential
    masked: ``scheme://USERINFO@`` -> ``scheme://***@``, ``NAME=VALUE`` for a secret-looking NAME ->
    ``NAME=***``. For text whose URI is not known; ``scrub`` is exact when it is."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _OPTION.sub(lambda m: f"{m.group(1)}={MASK}", text)


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
        raise ValueError(
            f"{display(text)!r}: scheme {s}:// is not supported; expected a local path or a URI "
            f"that pyarrow's filesystems open ({', '.join(x + '://' for x in SCHEMES)}, file://)"
        )
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
        raise ValueError(f"{display(text)!r}: pyarrow cannot open it ({_first_line(exc, text)})") from None
    return text


def _first_line(exc: BaseException, uri: str = "") -> str:
    """The first line of an error from another library, without any credential (of ``uri``, or lookalikes)."""
    text = str(exc).strip()
    return redact(scrub(text.splitlines()[0], uri)) if text else type(exc).__name__


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
        raise StorageError(f"{display(uri)}: cannot open storage ({_first_line(exc, uri)})") from None


def exists(uri: str) -> bool:
    """Whether anything (a file, a folder with files) is at ``uri``."""
    import pyarrow.fs

    fs, path = open_uri(uri)
    try:
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
    except Exception as exc:
        raise StorageError(f"{display(uri)}: cannot read storage ({_first_line(exc, uri)})") from None


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
                pyarrow.fs.copy_files(
                    str(Path(dirpath, name)), f"{root}/{rel}", destination_filesystem=fs, use_threads=False
                )
                done.append(rel)
    except Exception as exc:
        raise StorageError(
            f"{display(uri)}: upload failed ({_first_line(exc, uri)}); the results are in {folder}"
        ) from None
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
        raise StorageError(f"{display(uri)}: download failed ({_first_line(exc, uri)})") from None
    return done


# written into every folder `fetch` creates: the public URI it is a copy of
DOWNLOADED = ".sweep-report-of"


def fetch(uri: str, out: str | Path | None = None) -> Path:
    """Download a stored sweep's result files (not its checkpoints) from ``uri`` (``URI/NAME``) into
    ``out/NAME`` (default: ``~/.cache/sweep/reports/<bucket>-<hash>/NAME``); returns that folder.
    Raises ``ResultsError`` (one line) when ``uri`` holds no sweep results, or when ``out/NAME`` exists
    and is not an earlier download of the same URI (see ``claim_download``)."""
    from orchestrator.results import TRIALS, ResultsError

    name = name_of(uri)
    if not name or not exists(uri):
        raise ResultsError(
            f"{display(uri)}: no such sweep folder (expected STORAGE/NAME, e.g. s3://bucket/runs/digits-lr)"
        )
    folder = (Path(out).expanduser().resolve() if out else cache_dir("reports", uri)) / name
    claim_download(folder, uri)
    got = download(uri, folder)
    if TRIALS not in got:
        raise ResultsError(f"{display(join(uri, TRIALS))}: no results yet (expected a folder written by 'sweep run')")
    return folder


def claim_download(folder: Path, uri: str) -> None:
    """Make ``folder`` the download copy of ``uri``: created (with a ``DOWNLOADED`` note naming the public
    URI) if absent or empty, reused if that note names the same URI, else refused with ``ResultsError``.
    A download replaces and deletes result files, so it never goes into a folder it did not create (a
    local sweep of the same name lost its sweep.yaml and preflight.json that way); refusing, rather than
    picking another folder, keeps the report where the user asked for it."""
    from orchestrator.results import ResultsError

    note, shown = folder / DOWNLOADED, display(uri)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ResultsError(f"{folder}: exists and is not a folder; nothing was downloaded (choose another --out)")
    if folder.is_dir() and any(folder.iterdir()):
        try:
            was = note.read_text().strip()
        except (OSError, UnicodeDecodeError):
            was = None
        if was != shown:
            raise ResultsError(
                f"{folder}: already exists and is not a copy of {shown} made by 'sweep report'; "
                f"nothing was written to it (choose another --out)"
            )
    folder.mkdir(parents=True, exist_ok=True)
    note.write_text(shown + "\n")
