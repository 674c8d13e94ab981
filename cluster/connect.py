"""Connect to Ray: an existing cluster when an address is given, else an embedded local Ray of our own.

The embedded Ray uses ``address="local"``, a temporary folder of its own and the loopback address: it
never attaches to another Ray already running on the machine, and every socket it opens listens on
127.0.0.1 only; token authentication stays as Ray sets it (on).

An existing cluster (``--address``, else ``RAY_ADDRESS``) is first asked, with one unauthenticated gRPC
call bounded by ``connect_timeout`` seconds, whether it requires a token. The rules are ``sweep submit``'s
(``cluster.auth.require_auth``): an open cluster is refused unless ``insecure``; a token cluster gets the
token Ray's loader finds (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``), checked before Ray
connects, with a warning when it travels unencrypted (no ``RAY_USE_TLS``); an open cluster never gets it.
A ``sweep run`` started by ``sweep submit`` (a Ray Job's driver, on the cluster it was submitted to
after that check) connects through ``RAY_ADDRESS`` without asking again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from cluster.auth import Token, require_auth
from orchestrator.errors import AddressError, AuthError, ClusterUnreachableError, RunAddressError  # one home: errors.py

LOOPBACK = "127.0.0.1"
DEFAULT_CONNECT_TIMEOUT_S = 30.0
AUTH_MODE_ENV = "RAY_AUTH_MODE"
JOB_DRIVER_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor in a Ray Job's driver


def resolve_address(address: str | None) -> str | None:
    """The flag, else ``RAY_ADDRESS`` (read now, at call time), else None (embedded).

    ``sweep run`` drives Ray Tune from this process, so it joins the cluster at its GCS (``HEAD:6379``).
    ``http(s)://HEAD:8265`` is the Jobs API and ``ray://HEAD:10001`` is Ray Client, which would run Tune
    on the cluster instead: both are refused, pointing at ``sweep submit``."""
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address.startswith(("http://", "https://")):
        raise RunAddressError(
            f"{source}={address}: 'sweep run' needs a Ray cluster's GCS address (HEAD:6379); "
            f"http(s):// is the Jobs API: use 'sweep submit CONFIG --address {address}'"
        )
    if address and address.startswith("ray://"):
        raise RunAddressError(
            f"{source}={address}: Ray Client (ray://) would run Ray Tune on the cluster, not in this driver; "
            f"give the GCS address (HEAD:6379) from a machine on the cluster's network, or hand the sweep "
            f"to the cluster with 'sweep submit CONFIG --address http://HEAD:8265'"
        )
    return address


def _grpc_target(address: str) -> str:
    """``HOST:PORT`` of the cluster's GCS to dial."""
    if address == "auto":  # a cluster started on this machine with `ray start`: Ray knows where its GCS is
        from ray._private.services import canonicalize_bootstrap_address_or_die

        return canonicalize_bootstrap_address_or_die("auto")
    host, sep, port = address.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RunAddressError(f"address={address!r}: expected HEAD:6379 (the cluster's GCS)")
    return f"{host}:{port}"


def _ping(target: str, timeout: float, metadata: tuple = ()) -> None:
    """One cheap call that needs no session: the GCS's GetClusterId."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(),  # type: ignore[attr-defined]  # protobuf-generated, no stub
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=True,
        )


def cluster_auth_mode(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> str:
    """``"token"`` or ``"disabled"``: the cluster's answer to one call without a token. Raises
    ``ClusterUnreachableError`` when nothing answers within ``timeout`` seconds."""
    import grpc

    target = _grpc_target(address)
    try:
        _ping(target, timeout)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return "token"
        raise ClusterUnreachableError(
            f"cannot reach the Ray cluster at {address} within {timeout:g} s ({exc.code().name}): check the "
            f"address (HEAD:6379) and that the port is open; --connect-timeout sets the wait"
        ) from None
    return "disabled"


def _tls_on() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true", "yes")


def check_cluster(
    address: str, insecure: bool = False, timeout: float = DEFAULT_CONNECT_TIMEOUT_S
) -> tuple[str, Token | None, list[str]]:
    """Ask the cluster at ``address`` how it authenticates and apply ``sweep submit``'s rules; return the
    mode, the token to send (None: send none) and one-line warnings. The token is tried once before Ray
    connects: a rejected one is an ``AuthError`` naming where it came from, never its value."""
    import grpc

    if not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
        raise AddressError(f"connect_timeout={timeout!r}: expected seconds in (0, 3600]")
    mode = cluster_auth_mode(address, timeout)
    token = require_auth(address, mode, insecure)
    warnings = []
    if token is not None:
        target = _grpc_target(address)
        try:
            _ping(target, timeout, metadata=(("authorization", f"Bearer {token.value}"),))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthError(
                    f"{address} rejected the Ray auth token from {token.source}: get the cluster's "
                    f"token with `ray get-auth-token` on the head node and set RAY_AUTH_TOKEN_PATH "
                    f"to a file (mode 600) holding it"
                ) from None
            raise ClusterUnreachableError(
                f"cannot reach the Ray cluster at {address} within {timeout:g} s ({exc.code().name})"
            ) from None
        if not _tls_on():
            warnings.append(
                f"the Ray auth token goes to {address} unencrypted (gRPC without TLS; "
                f"RAY_USE_TLS is off): anyone who can watch that network path can take it"
            )
        if token.loose_permissions:
            warnings.append(f"token file {token.source} is readable by others: chmod 600 {token.source}")
    return mode, token, warnings


@contextmanager
def _auth_mode(mode: str) -> Iterator[None]:
    """This process talks to the cluster in ``mode`` (``token``: Ray's client sends the token; else it
    sends none, even when ``RAY_AUTH_MODE=token`` was set for another cluster); restored afterwards.
    Ray reads the mode from the environment into a cached config: it is refreshed both ways."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # not in _raylet.pyi

    old = os.environ.get(AUTH_MODE_ENV)
    os.environ[AUTH_MODE_ENV] = "token" if mode == "token" else "disabled"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(AUTH_MODE_ENV, None)
        else:
            os.environ[AUTH_MODE_ENV] = old
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def _loopback_node() -> Iterator[None]:
    """While the block runs, Ray takes ``_node_ip_address="127.0.0.1"`` as given.

    ``ray.init`` replaces a loopback node address with the machine's routable one unless Ray clusters
    are off (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``, read when Ray asks); with it off the
    GCS, raylet, object manager, agents, workers and this driver all listen on 127.0.0.1 (measured in
    ``tests/test_connect.py``). This private constant is the only switch Ray 2.60 has for it."""
    from ray._private import ray_constants

    old = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old


def _warn(message: str) -> None:
    print(f"sweep: warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def ray_session(
    address: str | None = None,
    num_cpus: int | None = None,
    *,
    insecure: bool = False,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> Iterator[str]:
    """Yield a description of where Ray runs; shut down only what this call started.

    With an address (or ``RAY_ADDRESS``), the cluster's auth is checked first (``check_cluster``:
    ``InsecureClusterError``/``AuthError`` are bad input, ``ClusterUnreachableError`` a run-time
    failure, after at most ``connect_timeout`` seconds)."""
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) already connected: use it, leave it up
        yield "existing ray session"
        return
    flag = address
    address = resolve_address(address)
    if address:
        auth: AbstractContextManager[None] = nullcontext()  # a Ray Job's driver, on its own cluster: as it is
        if flag or not os.environ.get(JOB_DRIVER_ENV):
            mode, _, warnings = check_cluster(address, insecure=insecure, timeout=connect_timeout)
            for w in warnings:
                _warn(w)
            auth = _auth_mode(mode)
        with auth:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            try:
                yield address
            finally:
                ray.shutdown()
        return
    temp = tempfile.mkdtemp(prefix="sweep-ray-", dir=ray._common.utils.get_default_system_temp_dir())  # Ray's own rule
    try:
        with _loopback_node():
            ray.init(
                address="local",
                _temp_dir=temp,
                num_cpus=num_cpus,
                include_dashboard=False,
                _node_ip_address=LOOPBACK,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=True,
            )
        try:
            node_ip = ray.util.get_node_ip_address()
            if node_ip != LOOPBACK:
                _warn(f"the embedded Ray runs on {node_ip}, not {LOOPBACK}: its ports are open to the network")
            yield "embedded local ray"
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
