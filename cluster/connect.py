"""Connect to Ray: an existing cluster when an address is given, else an embedded local Ray of our own.

The embedded Ray uses ``address="local"`` and a temporary folder of its own, so it never attaches to
another Ray already running on the machine; token authentication stays as Ray sets it (on).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator


class AddressError(ValueError):
    """An address that ``sweep run`` cannot drive a sweep through."""


def resolve_address(address: str | None) -> str | None:
    """The flag, else ``RAY_ADDRESS`` (read now, at call time), else None (embedded).

    ``http(s)://HEAD:8265`` is the Jobs API (for ``sweep submit``), not a cluster to run a driver on."""
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address.startswith(("http://", "https://")):
        raise AddressError(
            f"{source}={address}: 'sweep run' needs a Ray cluster address (ray://HEAD:10001 or HEAD:6379); "
            f"http(s):// is the Jobs API: use 'sweep submit CONFIG --address {address}'"
        )
    return address


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[str]:
    """Yield a description of where Ray runs; shut down only what this call started."""
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) already connected: use it, leave it up
        yield "existing ray session"
        return
    address = resolve_address(address)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            yield address
        finally:
            ray.shutdown()
        return
    temp = tempfile.mkdtemp(prefix="sweep-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        ray.init(address="local", _temp_dir=temp, num_cpus=num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
        try:
            yield "embedded local ray"
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
