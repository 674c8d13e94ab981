"""Hand a sweep to a Ray cluster as a Ray Job, and follow, inspect or stop it.

Everything goes through Ray's ``JobSubmissionClient`` (the dashboard's Jobs API, ``http://HEAD:8265``).
What this module adds on top of it:

* the address: the ``address`` argument, else ``RAY_API_SERVER_ADDRESS`` / ``RAY_ADDRESS`` read at call
  time. (Ray's client lets those variables override an explicit address; here the explicit one wins.)
* the token: Ray's client sends the token only when *this* process runs with ``RAY_AUTH_MODE=token``.
  Here the cluster is asked (``GET /api/authentication_mode``, a public endpoint) and, when it wants a
  token, the token is found the way Ray's loader finds it (``cluster.auth``). It is sent only to clusters
  in token mode and never appears in a message: error bodies, job messages and logs (streamed too) show
  it as ``***``.
* the refusal: ``submit`` refuses a cluster whose Jobs API is open (authentication mode not ``token``)
  unless ``insecure=True``: an open Jobs API runs anyone's code (CVE-2023-48022).
* the storage: ``storage:`` is resolved on the cluster, so a relative or ``~`` path is refused
  (``LocalStorageError``) unless the caller allows it: results there are out of the user's reach.
* readiness: a cluster whose head node's job agent is not up yet (right after ``ray start``) is retried
  for a bounded time.
* the package: ``cluster.package`` stages the project and the sweep YAML as the job's ``working_dir``
  and builds its entrypoint and runtime environment; ``sweep stop`` sends SIGINT so Tune saves the
  experiment state (``RAY_JOB_STOP_SIGNAL`` / ``RAY_JOB_STOP_WAIT_TIME_S``).

What is reported of a job (``JobInfo``, ``Submitted``, the masking) is ``cluster.jobinfo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cluster.auth import Token, rejected_token_message, require_auth
from cluster.jobinfo import MASK, JobInfo, Submitted, public_info, scrub_stream, stop_wait_of
from cluster.package import DEFAULT_STOP_WAIT_S, entrypoint, name_and_storage, results_folder, runtime_env, stage
from orchestrator.errors import (  # noqa: F401  (one home for the errors; re-exported here)
    AddressError,
    AuthError,
    InsecureClusterError,
    JobNotFoundError,
    JobsAddressError,
    JobsError,
    JobsInputError,
    LocalStorageError,
)

# --- constants --------------------------------------------------------------------------------------

# The head node's job agent registers a little after `ray start` returns; until then the Jobs API answers
# this (HTTP 500). submit retries exactly this answer, with backoff, for at most AGENT_WAIT_S seconds.
NO_AGENT = "No available agent to submit job"
AGENT_WAIT_S = 120.0

# --- address ----------------------------------------------------------------------------------------


def dashboard_address(address: str | None = None) -> str:
    """The Jobs API URL: ``address``, else ``RAY_API_SERVER_ADDRESS``, else ``RAY_ADDRESS`` (read now).

    ``HEAD:8265`` becomes ``http://HEAD:8265``. Ray Client (``ray://``) and ``auto`` addresses are
    refused: jobs go through the dashboard's HTTP API.
    """
    given = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not given or not given.strip():
        raise JobsAddressError(
            "no cluster address: pass --address http://HEAD:8265 (the Ray dashboard's Jobs API) or set RAY_ADDRESS"
        )
    url = given.strip().rstrip("/")
    if url.lower() in ("auto", "local"):
        raise JobsAddressError(f"address={url!r}: expected the Ray dashboard's Jobs API URL, e.g. http://HEAD:8265")
    if "://" not in url:
        url = "http://" + url
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "ray":
        raise JobsAddressError(
            f"address={url!r} is a Ray Client address (for `sweep run`); jobs go through the "
            f"dashboard's Jobs API: expected http://HEAD:8265"
        )
    if scheme.lower() not in ("http", "https") or not rest:
        raise JobsAddressError(f"address={url!r}: expected http://HEAD:8265 or https://HEAD:PORT")
    return f"{scheme.lower()}://{rest}"


# --- talking to the cluster -------------------------------------------------------------------------


def authentication_mode(address: str, timeout: float = 10.0, verify: bool | str = True) -> str:
    """The cluster's answer to ``GET /api/authentication_mode`` (public, no token needed): ``token``,
    ``disabled``, or ``unknown`` for a dashboard too old to have the endpoint (such clusters are open)."""
    import requests

    url = address + "/api/authentication_mode"
    try:
        r = requests.get(url, timeout=timeout, verify=verify)
    except requests.exceptions.RequestException as exc:
        raise JobsError(
            f"cannot reach the Ray Jobs API at {address} ({exc.__class__.__name__}); "
            f"expected the dashboard address, usually http://HEAD:8265"
        ) from None
    if r.status_code == 404:
        return "unknown"
    if r.status_code != 200:
        raise JobsError(f"{url}: HTTP {r.status_code}")
    try:
        return str(r.json().get("authentication_mode", "unknown"))
    except ValueError:
        raise JobsError(f"{url}: not a Ray dashboard (the answer is not JSON)") from None


@contextlib.contextmanager
def _api_address_env(address: str) -> Iterator[None]:
    # JobSubmissionClient lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override its `address` argument;
    # pin the first to the address resolved here for the constructor's duration.
    old = os.environ.get("RAY_API_SERVER_ADDRESS")
    os.environ["RAY_API_SERVER_ADDRESS"] = address
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RAY_API_SERVER_ADDRESS", None)
        else:
            os.environ["RAY_API_SERVER_ADDRESS"] = old


class Cluster:
    """A connection to one cluster's Jobs API: the client, the address, the auth mode, the token used."""

    def __init__(
        self,
        address: str | None = None,
        *,
        insecure: bool = False,
        refuse_open: bool = False,
        verify: bool | str = True,
        timeout: float = 10.0,
    ) -> None:
        self.address = dashboard_address(address)
        self.mode = authentication_mode(self.address, timeout=timeout, verify=verify)
        self.insecure = insecure
        self.token: Token | None = None
        self.token = require_auth(self.address, self.mode, insecure or not refuse_open, what="its Jobs API")
        if self.token is not None:
            headers: dict[str, Any] = self.token.header()
        else:
            # An open cluster gets no token, even when this process runs with RAY_AUTH_MODE=token (Ray's
            # client would add it): a None-valued header stops Ray adding one, and requests sends none.
            headers = {"Authorization": None}
        from ray.job_submission import JobSubmissionClient

        with self._errors(), _api_address_env(self.address):
            self.client = JobSubmissionClient(self.address, headers=headers, verify=verify)
        if self.token is None:  # the websocket client (aiohttp) refuses None-valued headers
            self.client._headers = {k: v for k, v in self.client._headers.items() if v is not None}

    @contextlib.contextmanager
    def _errors(self, job_id: str | None = None) -> Iterator[None]:
        """Map Ray client errors to one-line errors of this module; never let the token through."""
        import requests
        from ray.exceptions import AuthenticationError

        try:
            yield
        except (JobsInputError, JobsError):
            raise
        except AuthenticationError as exc:
            message = str(getattr(exc, "message", ""))  # Ray's text: "Authentication failed: ..." is a 403
            status = 403 if message.startswith("Authentication failed") or "Forbidden" in message else 401
            raise AuthError(rejected_token_message(self.address, getattr(self, "token", None), status)) from None
        except (requests.exceptions.RequestException, ConnectionError) as exc:
            raise JobsError(f"cannot reach the Ray Jobs API at {self.address} ({exc.__class__.__name__})") from None
        except Exception as exc:  # RuntimeError("Request failed with status code ...") and kin
            text = self._scrub(" ".join(str(exc).split()))
            if job_id is not None and "failed with status code 404:" in text:
                raise JobNotFoundError(f"no job {job_id!r} on {self.address}") from None
            raise JobsError(f"{self.address}: {text[:400]}") from None

    def _scrub(self, text: str) -> str:
        token = getattr(self, "token", None)
        return text.replace(token.value, MASK) if token else text

    # --- the four operations -------------------------------------------------------------------------

    def submit(
        self,
        entrypoint: str,
        runtime_env: dict,
        metadata: dict[str, str],
        submission_id: str,
        agent_wait_s: float | None = None,
        notify: Callable[[str], Any] | None = None,
    ) -> str:
        """Submit the job. While the cluster answers "No available agent to submit job" (its head node's
        job agent is not up yet, e.g. right after ``ray start``), retry with backoff for at most
        ``agent_wait_s`` seconds (default ``AGENT_WAIT_S``), calling ``notify`` once with a line saying so."""
        wait_s = AGENT_WAIT_S if agent_wait_s is None else agent_wait_s
        deadline, pause, told = time.monotonic() + wait_s, 0.5, False
        while True:
            try:
                with self._errors():
                    return self.client.submit_job(
                        entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata, submission_id=submission_id
                    )
            except JobsError as exc:
                left = deadline - time.monotonic()
                if NO_AGENT not in str(exc):
                    raise
                if left <= 0:
                    raise JobsError(
                        f"{self.address}: the cluster had no job agent ready after {wait_s:g} s "
                        f"of retries ({NO_AGENT}); check the head node's dashboard_agent.log"
                    ) from None
                if not told and notify is not None:
                    notify(f"the cluster's job agent is not ready yet ({NO_AGENT}); retrying for up to {wait_s:g} s")
                    told = True
                time.sleep(min(pause, left))
                pause = min(pause * 2, 5.0)

    def info(self, job_id: str) -> JobInfo:
        with self._errors(job_id):
            d = self.client.get_job_info(job_id)
        return public_info(
            JobInfo(
                job_id=d.submission_id or job_id,
                status=str(d.status),
                message=self._scrub(d.message or ""),
                entrypoint=d.entrypoint,
                metadata=dict(d.metadata or {}),
                start_time=d.start_time,
                end_time=d.end_time,
                stop_wait_s=stop_wait_of(d.runtime_env),
            )
        )

    def logs(self, job_id: str) -> str:
        with self._errors(job_id):
            return self._scrub(self.client.get_job_logs(job_id))

    def follow(self, job_id: str, write: Callable[[str], Any]) -> JobInfo:
        """Stream the job's logs through ``write`` until the job ends; return its final state."""
        self.info(job_id)  # an unknown job: a clear error, not a websocket failure

        token = self.token.value if self.token else ""

        async def tail() -> None:
            held = ""
            try:
                async for chunk in self.client.tail_job_logs(job_id):
                    shown, held = scrub_stream(held + chunk, token)
                    write(shown)
            finally:
                if held:
                    write(held)

        with self._errors(job_id):
            asyncio.run(tail())
        return self.wait(job_id, timeout=30)

    def stop(self, job_id: str) -> bool:
        with self._errors(job_id):
            return bool(self.client.stop_job(job_id))

    def wait(self, job_id: str, timeout: float, poll: float = 1.0) -> JobInfo:
        """Poll until the job is terminal or ``timeout`` seconds pass; return the last state seen."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(job_id)
            if info.terminal or time.monotonic() >= deadline:
                return info
            time.sleep(poll)


def submit(
    config_path: str | Path,
    address: str | None = None,
    *,
    insecure: bool = False,
    resume: bool = False,
    stop_wait_s: int = DEFAULT_STOP_WAIT_S,
    pip: list[str] | None = None,
    submission_id: str | None = None,
    verify: bool | str = True,
    allow_local_storage: bool = False,
    agent_wait_s: float | None = None,
    notify: Callable[[str], Any] | None = None,
) -> Submitted:
    """Submit the sweep YAML to the cluster as a Ray Job; return its id and where its results land.

    Validate the YAML first (``orchestrator.load_config``; ``sweep submit`` does): the cluster runs
    ``sweep run`` on it. A machine-local ``storage:`` is refused unless ``allow_local_storage`` (see
    ``results_folder``). While the cluster has no job agent ready, retries for ``agent_wait_s`` seconds
    (``Cluster.submit``; ``notify`` gets one line). Raises ``AddressError``, ``AuthError``,
    ``InsecureClusterError``, ``LocalStorageError`` (all ValueErrors: bad input) or ``JobsError`` (run time).
    """
    config_path = Path(config_path)
    name, storage = name_and_storage(config_path)
    folder, warning = results_folder(storage, name, allow_local=allow_local_storage)
    warnings = [warning] if warning else []
    runtime_env(".", stop_wait_s, pip)  # validate the arguments before touching the cluster
    cluster = Cluster(address, insecure=insecure, refuse_open=True, verify=verify)
    if cluster.token is not None and cluster.token.loose_permissions:
        warnings.append(f"token file {cluster.token.source} is readable by others: chmod 600 {cluster.token.source}")
    job_id = submission_id or f"sweep-{name}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="sweep-submit-") as tmp:
        work = Path(tmp) / "project"
        rel = stage(config_path, work)
        cmd = entrypoint(rel, resume=resume)
        metadata = {
            "sweep_name": name,
            "sweep_config": str(config_path),
            "sweep_folder": folder,
            "submitted_by": "sweep",
        }
        job_id = cluster.submit(
            cmd, runtime_env(work, stop_wait_s, pip), metadata, job_id, agent_wait_s=agent_wait_s, notify=notify
        )
    return Submitted(job_id=job_id, address=cluster.address, entrypoint=cmd, folder=folder, warnings=tuple(warnings))


def status(job_id: str, address: str | None = None, verify: bool | str = True) -> JobInfo:
    return Cluster(address, verify=verify).info(job_id)


def logs(job_id: str, address: str | None = None, verify: bool | str = True) -> str:
    return Cluster(address, verify=verify).logs(job_id)


def follow(job_id: str, write: Callable[[str], Any], address: str | None = None, verify: bool | str = True) -> JobInfo:
    """Stream a job's logs through ``write`` until it ends; return its final state."""
    return Cluster(address, verify=verify).follow(job_id, write)


def stop(job_id: str, address: str | None = None, wait: bool = True, verify: bool | str = True) -> JobInfo:
    """Ask the cluster to stop the job (SIGINT: Tune saves its state), then wait until it has stopped
    (at most the job's stop wait time and a margin); return its last state."""
    cluster = Cluster(address, verify=verify)
    info = cluster.info(job_id)
    if info.terminal:
        return info
    cluster.stop(job_id)
    if not wait:
        return cluster.info(job_id)
    return cluster.wait(job_id, timeout=(info.stop_wait_s or DEFAULT_STOP_WAIT_S) + 30)
