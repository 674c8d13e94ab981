"""A pyarrow filesystem for a storage URI that carries credentials, whose pickle carries none.

Ray Tune pickles its filesystem into ``tuner.pkl``, its experiment state and every checkpoint it hands
around, and pyarrow's filesystems pickle their keys (``S3FileSystem`` pickles ``secret_key``). So Tune is
given ``for_tune(uri)``: a path without credentials and a ``PyFileSystem`` over ``Credentialed``, whose
pickle is the masked URI only. The full URI is kept in this process and, when Ray runs, in the cluster's
in-memory key-value store (GCS), where the sweep's workers look it up on first use. A process that can
find it in neither (a pickle read after the cluster is gone) gets a one-line ``StorageError``.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.parse

import pyarrow.fs

from orchestrator import atomicfs, storage

_KNOWN: dict[str, str] = {}  # the masked filesystem part of a URI -> the full URI (this process)
_NAMESPACE = "sweep_storage"


def _key(uri: str) -> str:
    """The masked URI without its path: one key per bucket, endpoint and credentials (masked)."""
    parts = urllib.parse.urlsplit(storage.display(uri))
    return parts._replace(path="", fragment="").geturl()


def _kv_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).hexdigest().encode()


def _ray_kv():
    ray = sys.modules.get("ray")  # used only where Ray already runs: never started from here
    if ray is None or not ray.is_initialized():
        return None
    from ray.experimental import internal_kv

    return internal_kv if internal_kv._internal_kv_initialized() else None


def remember(uri: str) -> str:
    """Keep the credentials of ``uri`` where this sweep's processes find them; returns its key."""
    key = _key(uri)
    base = urllib.parse.urlsplit(uri)._replace(path="", fragment="").geturl()
    _KNOWN[key] = base
    kv = _ray_kv()
    if kv is not None:
        kv._internal_kv_put(_kv_key(key), base.encode(), overwrite=True, namespace=_NAMESPACE)
    return key


def forget(uri: str) -> None:
    """Drop the credentials of ``uri`` from the cluster's key-value store (this process keeps them)."""
    kv = _ray_kv()
    if kv is not None:
        kv._internal_kv_del(_kv_key(_key(uri)), namespace=_NAMESPACE)


def _lookup(key: str) -> str:
    if key not in _KNOWN:
        kv = _ray_kv()
        value = kv._internal_kv_get(_kv_key(key), namespace=_NAMESPACE) if kv is not None else None
        if value is None:
            raise storage.StorageError(
                f"{key}: the credentials of this storage URI are not known in this process (they are kept in "
                f"memory only, by the sweep's driver and its Ray cluster); run or resume the sweep with them"
            )
        _KNOWN[key] = value.decode()
    return _KNOWN[key]


class Credentialed(atomicfs.Forwarding):
    """Forwards every call to the filesystem of the full URI, opened on first use. Pickles as its key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._fs: pyarrow.fs.FileSystem | None = None

    def __reduce__(self):
        return (Credentialed, (self.key,))

    @property
    def fs(self) -> pyarrow.fs.FileSystem:
        if self._fs is None:
            self._fs = storage.open_uri(_lookup(self.key))[0]
        return self._fs

    def __eq__(self, other) -> bool:
        return isinstance(other, Credentialed) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def get_type_name(self) -> str:
        return "sweep+" + urllib.parse.urlsplit(self.key).scheme


def for_tune(uri: str) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """``(storage_path, storage_filesystem)`` to give Ray Tune (``RunConfig``, ``Tuner.restore``,
    ``Tuner.can_restore``) for ``uri``: ``(uri, None)`` when it has no credentials, else the path inside
    the bucket and a filesystem that pickles without them (see the module docstring)."""
    if not storage.split(uri)[1]:
        return uri, None
    key = remember(uri)
    return storage.open_uri(uri)[1], pyarrow.fs.PyFileSystem(Credentialed(key))
