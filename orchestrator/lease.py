"""One driver per sweep: a lease file in the sweep folder names the driver (host, pid, heartbeat).

A driver takes the lease before it trains and renews its heartbeat from a thread every
``HEARTBEAT_S`` seconds while it runs; it gives the lease back when it ends, however it ends (a
SIGKILL leaves it behind: that is what staleness is for). Another driver of the same sweep is refused
(``LeaseHeldError``, one line) while the lease is live. A lease is stale, and is taken over with a
one-line message, when its driver's process is gone (same host: the pid is dead or now belongs to a
process started later) or its heartbeat is older than ``stale_after`` seconds (any host).

Where: ``FOLDER/.driver-lease.json`` for a local sweep folder (every read-decide-write of it, taking,
renewing and giving back, happens under an exclusive ``flock`` of ``FOLDER/.driver-lease.lock``, which
the kernel releases when its holder dies: two drivers taking over the same stale lease at once cannot
both win); ``URI/.driver-lease.json`` for a sweep stored at a URI (object
stores have no create-if-absent: the lease is written, then read back, so two drivers starting within
the same second are not told apart). The ``.`` name keeps it out of uploads and reports.

Pure: no Ray, no torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.errors import LeaseHeldError  # also re-exported; one home: errors.py

LEASE_FILE = ".driver-lease.json"
LOCK_FILE = ".driver-lease.lock"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0  # six missed heartbeats


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    started: float | None  # the process's start time (Linux: from /proc), to tell a reused pid
    heartbeat: float  # seconds since the epoch
    token: str  # this holder, to tell its own lease from a successor's

    def describe(self, now: float) -> str:
        return f"pid {self.pid} on {self.host}, heartbeat {max(0.0, now - self.heartbeat):.0f} s ago"


def _start_time(pid: int) -> float | None:
    """When ``pid`` started (clock ticks since boot, Linux), or None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def mine(now: float | None = None) -> Lease:
    """A lease for this process."""
    pid = os.getpid()
    return Lease(
        host=socket.gethostname(),
        pid=pid,
        started=_start_time(pid),
        heartbeat=time.time() if now is None else now,
        token=uuid.uuid4().hex,
    )


def stale_reason(lease: Lease, now: float, stale_after: float = STALE_AFTER_S, host: str | None = None) -> str | None:
    """Why ``lease`` is stale (its driver is gone), or None while it is live."""
    host = socket.gethostname() if host is None else host
    if lease.host == host:
        if not _alive(lease.pid):
            return f"its driver (pid {lease.pid} on {lease.host}) is gone"
        started = _start_time(lease.pid)
        if lease.started is not None and started is not None and started != lease.started:
            return f"its driver (pid {lease.pid} on {lease.host}) is gone (the pid now belongs to another process)"
    age = now - lease.heartbeat
    if age > stale_after:
        return f"its driver's heartbeat ({lease.describe(now)}) is older than {stale_after:g} s"
    return None


def parse(data: bytes, where: str) -> Lease | None:
    """A lease from the file's bytes; None for a file that is not a lease (empty, half written)."""
    try:
        d = json.loads(data)
        return Lease(
            host=str(d["host"]),
            pid=int(d["pid"]),
            started=None if d.get("started") is None else float(d["started"]),
            heartbeat=float(d["heartbeat"]),
            token=str(d["token"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def dump(lease: Lease) -> bytes:
    return json.dumps(asdict(lease), sort_keys=True).encode()


# --- where the lease lives ----------------------------------------------------------------------------


class LocalStore:
    """The lease file in a local folder; ``locked()`` serialises every read-decide-write of it."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LEASE_FILE
        self.lock_path = Path(folder) / LOCK_FILE
        self.shown = str(folder)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder's lock file (a ``flock`` on a file description of our own,
        so threads of one process exclude each other too; released by the kernel if the holder dies)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the description drops the lock

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        """Replace the file whole (written aside, then renamed: nobody ever reads it half-written)."""
        tmp = self.path.with_name(f"{LEASE_FILE}.new-{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class UriStore:
    """The lease file at a URI (any pyarrow filesystem): best effort, no create-if-absent."""

    def __init__(self, uri: str) -> None:
        from orchestrator import storage

        self.fs, root = storage.open_uri(uri)
        self.path = f"{root.rstrip('/')}/{LEASE_FILE}"
        self.shown = storage.display(uri)

    def read(self) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def locked(self):
        return nullcontext()  # object stores have no lock: best effort (see the module's docstring)

    def write(self, data: bytes) -> None:
        self.fs.create_dir(self.path.rpartition("/")[0], recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def remove(self) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass


def store_for(folder: Path, uri: str | None):
    return UriStore(uri) if uri else LocalStore(folder)


# --- taking, checking, renewing, giving back ----------------------------------------------------------


def _held_message(shown: str, lease: Lease, now: float, stale_after: float) -> str:
    return (
        f"{shown}: another driver is running this sweep ({lease.describe(now)}); wait for it to end or "
        f"stop it (a driver that died is taken over once its process is gone or its heartbeat is older "
        f"than {stale_after:g} s)"
    )


def check(store, stale_after: float = STALE_AFTER_S, now: float | None = None) -> None:
    """Raise ``LeaseHeldError`` if a live lease is there (read only: nothing is taken)."""
    now = time.time() if now is None else now
    data = store.read()
    lease = parse(data, store.shown) if data else None
    if lease is not None and stale_reason(lease, now, stale_after) is None:
        raise LeaseHeldError(_held_message(store.shown, lease, now, stale_after))


def acquire(
    store, stale_after: float = STALE_AFTER_S, now: float | None = None, me: Lease | None = None
) -> tuple[Lease, str | None]:
    """Take the lease: return it and, when a stale one was taken over, a one-line message saying whose.
    Raises ``LeaseHeldError`` while another driver's lease is live."""
    me = me or mine(now)
    with store.locked():
        data = store.read()
        message = None
        if data is not None:
            t = time.time() if now is None else now
            lease = parse(data, store.shown)
            reason = "its lease file is unreadable" if lease is None else stale_reason(lease, t, stale_after)
            if reason is None and lease is not None:
                raise LeaseHeldError(_held_message(store.shown, lease, t, stale_after))
            message = f"{store.shown}: took over the sweep: {reason}"
        store.write(dump(me))
        if store.read() != dump(me):  # an object store: another driver wrote at the same moment
            raise LeaseHeldError(f"{store.shown}: another driver took this sweep's lease at the same moment; try again")
    return me, message


def renew(store, lease: Lease, now: float | None = None) -> Lease | None:
    """Write a fresh heartbeat; None (nothing written) if the lease is no longer ours."""
    with store.locked():
        current = store.read()
        held = parse(current, store.shown) if current else None
        if held is None or held.token != lease.token:
            return None
        fresh = Lease(lease.host, lease.pid, lease.started, time.time() if now is None else now, lease.token)
        store.write(dump(fresh))
    return fresh


def release(store, lease: Lease) -> None:
    """Give the lease back if it is still ours."""
    with store.locked():
        current = store.read()
        held = parse(current, store.shown) if current else None
        if held is not None and held.token == lease.token:
            store.remove()


@contextmanager
def held(
    store, stale_after: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S, quiet: bool = False
) -> Iterator[Lease]:
    """Hold the lease while the block runs: taken at entry (``LeaseHeldError`` if live elsewhere), its
    heartbeat renewed from a daemon thread, given back at exit. If another driver takes it over meanwhile
    (this one stalled past ``stale_after``), one line says so and the heartbeat stops."""
    if not (0 < heartbeat_s < stale_after):
        raise ValueError(f"heartbeat_s={heartbeat_s!r}: expected 0 < heartbeat_s < stale_after={stale_after!r}")
    lease, message = acquire(store, stale_after)
    if message and not quiet:
        print(f"[sweep] {message}", file=sys.stderr, flush=True)
    stop = threading.Event()

    def beat() -> None:
        current = lease
        while not stop.wait(heartbeat_s):
            try:
                renewed = renew(store, current)
            except Exception as exc:  # a storage hiccup: try again at the next beat
                print(
                    f"[sweep] lease heartbeat failed ({exc.__class__.__name__}); retrying", file=sys.stderr, flush=True
                )
                continue
            if renewed is None:
                print(
                    f"[sweep] {store.shown}: another driver took over this sweep's lease; this driver's "
                    f"results may be overwritten",
                    file=sys.stderr,
                    flush=True,
                )
                return
            current = renewed

    thread = threading.Thread(target=beat, name="sweep-lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(timeout=heartbeat_s + 5)
        try:
            release(store, lease)
        except Exception as exc:  # a lease left behind goes stale; never mask the run's own error
            print(
                f"[sweep] {store.shown}: could not give the driver lease back ({exc.__class__.__name__}); "
                f"the next driver takes it over once it is stale",
                file=sys.stderr,
                flush=True,
            )
