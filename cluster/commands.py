"""``sweep submit | status | logs | stop``: the Ray Jobs subcommands, thin over ``cluster.jobs``.

``orchestrator/cli.py`` calls ``register(subparsers)``: the commands exist only as ``sweep SUBCOMMAND``.
Each command returns its exit code and maps its own errors: one line ``sweep: error: ...`` on stderr, no
traceback; 2 for bad input (config, a machine-local storage, address, token, an open cluster, an unknown
job), 1 for a job that FAILED or was STOPPED, or a cluster that cannot be reached. The token is never
printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from functools import wraps

from orchestrator.errors import ExitCode

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT

_ADDRESS_HELP = "the cluster's Jobs API, e.g. http://HEAD:8265 (default: RAY_ADDRESS, read now)"


def _err(message: str) -> None:
    print(f"sweep: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


def _quiet_ray_client_logs() -> None:
    # Ray's job SDK logs "Uploading package ..." at INFO through a handler of its own, and its modules
    # set their loggers to INFO when imported: import them first.
    import importlib

    for module in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        importlib.import_module(module)
    for name in (
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
        "ray._private.authentication.http_token_authentication",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def _mapped(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors of the jobs library and the config become one line and an exit code."""

    @wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from cluster import jobs
        from orchestrator.config import ConfigError

        _quiet_ray_client_logs()
        try:
            return fn(args)
        except (ConfigError, jobs.JobsInputError) as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
        except jobs.JobsError as exc:
            _err(str(exc))
            return EXIT_FAILED
        except KeyboardInterrupt:
            job = getattr(args, "job", None) or "JOB"
            _err(f"interrupted; the job keeps running on the cluster: sweep stop {job}")
            return ExitCode.INTERRUPTED

    return run


def _final(info) -> int:
    """Exit code and message for a finished job (followed by submit or logs)."""
    if info.status == "SUCCEEDED":
        _note(f"job {info.job_id} SUCCEEDED")
        return EXIT_OK
    if info.status == "STOPPED":
        _err(f"job {info.job_id} STOPPED; {info.resume_hint()}")
        return EXIT_FAILED
    if info.terminal:
        _err(f"job {info.job_id} {info.status}: {info.message or 'no message'} (sweep logs {info.job_id})")
        return EXIT_FAILED
    _err(f"job {info.job_id} is still {info.status} after its logs ended; check: sweep status {info.job_id}")
    return EXIT_FAILED


def _write(chunk: str) -> None:
    sys.stdout.write(chunk)
    sys.stdout.flush()


@_mapped
def cmd_submit(args: argparse.Namespace) -> int:
    from cluster import jobs
    from orchestrator import config as config_mod

    config_mod.load(args.config)  # the cluster runs `sweep run` on it: refuse a bad one here, exit 2
    sub = jobs.submit(
        args.config,
        args.address,
        insecure=args.insecure,
        resume=args.resume,
        stop_wait_s=args.stop_wait,
        pip=args.pip or None,
        allow_local_storage=args.allow_local_storage,
        notify=_note,
    )
    for w in sub.warnings:
        _note(f"warning: {w}")
    print(sub.job_id, flush=True)
    if not args.follow:
        _note(
            f"submitted to {sub.address}; results: {sub.folder}; "
            f"follow: sweep logs {sub.job_id} --follow; stop: sweep stop {sub.job_id}"
        )
        return EXIT_OK
    try:
        info = jobs.Cluster(sub.address, insecure=args.insecure).follow(sub.job_id, _write)
    except KeyboardInterrupt:
        _err(
            f"stopped following; job {sub.job_id} keeps running: sweep logs {sub.job_id} --follow, "
            f"or sweep stop {sub.job_id}"
        )
        return ExitCode.INTERRUPTED
    code = _final(info)
    if code == EXIT_OK:
        _note(f"results: {sub.folder} (sweep report {sub.folder})")
    return code


@_mapped
def cmd_status(args: argparse.Namespace) -> int:
    from cluster import jobs

    info = jobs.status(args.job, args.address)
    line = f"{info.job_id} {info.status}"
    if info.message:
        line += f": {' '.join(info.message.split())}"
    print(line)
    if info.metadata.get("sweep_folder"):
        print(f"results: {info.metadata['sweep_folder']}")
    if info.status == "STOPPED":
        _note(info.resume_hint())
    return EXIT_FAILED if info.status in ("FAILED", "STOPPED") else EXIT_OK


@_mapped
def cmd_logs(args: argparse.Namespace) -> int:
    from cluster import jobs

    if args.follow:
        return _final(jobs.follow(args.job, _write, args.address))
    _write(jobs.logs(args.job, args.address))
    return EXIT_OK


@_mapped
def cmd_stop(args: argparse.Namespace) -> int:
    from cluster import jobs

    info = jobs.stop(args.job, args.address, wait=not args.no_wait)
    if info.status == "STOPPED":
        print(f"{info.job_id} STOPPED")
        _note(info.resume_hint())
        return EXIT_OK
    if info.terminal:
        print(f"{info.job_id} {info.status} (it had already ended; nothing to stop)")
        return EXIT_OK
    print(f"{info.job_id} {info.status} (stop requested; Tune is saving its state)")
    _note(f"check: sweep status {info.job_id}; then {info.resume_hint()}")
    return EXIT_OK


def register(subparsers) -> None:
    """Add ``submit``, ``status``, ``logs`` and ``stop`` to the ``sweep`` parser's subcommands."""
    from cluster.package import DEFAULT_STOP_WAIT_S

    s = subparsers.add_parser("submit", help="hand a sweep to a Ray cluster as a Ray Job (prints the job id)")
    s.add_argument(
        "config", help="sweep YAML; its storage: must be an absolute path every node and you share, or a URI"
    )
    s.add_argument("--address", help=_ADDRESS_HELP)
    s.add_argument("--follow", action="store_true", help="stream the job's logs until it ends; exit 0 if it succeeded")
    s.add_argument(
        "--insecure",
        action="store_true",
        help="submit even if the cluster's Jobs API needs no token (anyone could run code on it)",
    )
    s.add_argument("--resume", action="store_true", help="continue the sweep whose folder exists on the cluster")
    s.add_argument(
        "--stop-wait",
        type=int,
        default=DEFAULT_STOP_WAIT_S,
        metavar="SECONDS",
        help=f"on `sweep stop`, time Tune gets to save its state before SIGKILL (default {DEFAULT_STOP_WAIT_S})",
    )
    s.add_argument(
        "--allow-local-storage",
        action="store_true",
        help="submit even if storage: is relative or under ~ (the results then stay on the node "
        "that runs the job; a relative one in a folder Ray deletes)",
    )
    s.add_argument(
        "--pip",
        action="append",
        metavar="REQUIREMENT",
        help="install this on the cluster first (repeatable), for clusters whose Python lacks the deps",
    )
    s.set_defaults(func=cmd_submit)

    st = subparsers.add_parser("status", help="a submitted sweep's job status")
    st.add_argument("job", help="the job id that `sweep submit` printed")
    st.add_argument("--address", help=_ADDRESS_HELP)
    st.set_defaults(func=cmd_status)

    lg = subparsers.add_parser("logs", help="a submitted sweep's logs")
    lg.add_argument("job", help="the job id that `sweep submit` printed")
    lg.add_argument("--address", help=_ADDRESS_HELP)
    lg.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    lg.set_defaults(func=cmd_logs)

    sp = subparsers.add_parser("stop", help="stop a submitted sweep (Tune saves its state; resume later)")
    sp.add_argument("job", help="the job id that `sweep submit` printed")
    sp.add_argument("--address", help=_ADDRESS_HELP)
    sp.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    sp.set_defaults(func=cmd_stop)
