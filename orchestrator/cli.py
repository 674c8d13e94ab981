"""``sweep``: a thin command line over the library. Each subcommand is a small function; ``main() -> int``.

Exit codes (``errors.ExitCode``): 0 ok, 1 the sweep failed at run time, 2 bad input (config, folder,
arguments; storage that cannot be read or written), 3 a pre-flight check failed, 130 interrupted.
Importing this module, building the parser and the commands ``schedules``, ``report`` and ``tensorboard``
need no Ray.
"""

from __future__ import annotations

import argparse
import sys

from orchestrator.errors import ExitCode
from orchestrator.launch import resumable as resumable  # callers know cli.resumable
from orchestrator.runenv import plugins_beside, ray_lines

# the names tests and callers know; the values are ExitCode's
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CHECK_FAILED = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.BAD_INPUT,
    ExitCode.CHECK_FAILED,
)


def _err(message: str) -> None:
    print(f"sweep: error: {message}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from orchestrator import launch, preflight as checks

    cfg, _ = load(args)
    results = launch.first_trial_checks(cfg, batch=True)
    print(
        checks.format_checks(results)
        or f"no pre-flight checks: train: {cfg.train} is a training function "
        f"(the checks need a workload: returning a Workload)"
    )
    bad = checks.failed(results)
    if bad:
        _err(launch.checks_failed(bad))
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _invocation(args: argparse.Namespace):
    from orchestrator.invocation import Invocation

    sets = tuple(getattr(args, "set", None) or [])
    return Invocation(args.config, getattr(args, "name", None), sets, getattr(args, "from_run", None))


def load(args: argparse.Namespace) -> tuple:
    """``(SweepConfig, text)``: the config with ``--name`` and each ``--set`` applied (``Invocation.load``)."""
    return _invocation(args).load()


def resume_command(args: argparse.Namespace) -> str:
    """The command that resumes the sweep ``args`` started (``Invocation.resume_command``)."""
    return _invocation(args).resume_command()


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import launch, storage

    invocation = _invocation(args)
    cfg, text = invocation.with_from(*invocation.load())
    where = storage.target(cfg.storage, cfg.name)
    if args.resume and not launch.present(where):
        _err(launch.nothing_to_resume(where))
        return EXIT_BAD_INPUT
    try:
        with ray_lines(args.verbose):
            return _run(args, cfg, text, where)
    except KeyboardInterrupt:
        _err(launch.interrupted(where, invocation.resume_command()))
        return ExitCode.INTERRUPTED


def _run(args: argparse.Namespace, cfg, text: str, where) -> int:
    from orchestrator import launch, preflight as checks, run_sweep

    launch.refuse(cfg, where, args.address, args.resume, "--from" if args.from_run else "warm_start.run")
    results = []
    if not args.no_check and not args.resume:
        results = launch.first_trial_checks(cfg)
        bad = checks.failed(results)
        if bad:
            print(checks.format_checks(results), file=sys.stderr)
            _err(f"{launch.checks_failed(bad)}; nothing was submitted (fix the workload, or pass --no-check)")
            return EXIT_CHECK_FAILED
        if not args.quiet:
            print(launch.checks_passed(results), flush=True)
    summary = run_sweep(
        cfg,
        address=args.address,
        resume=args.resume,
        quiet=args.quiet,
        config_text=text,
        checks=results,
        verbose=args.verbose,
        insecure=args.insecure,
        connect_timeout=args.connect_timeout,
    )
    print(summary.line())
    return EXIT_OK


def cmd_extend(args: argparse.Namespace) -> int:
    """``sweep extend RUN --rounds N | --budget-fte X | --budget-wall-s S | --budget-gpu-hours H`` (new totals):
    a finished sweep goes on with more rounds (checked before Ray starts: a refusal is one line, exit 2)."""
    from cluster.connect import ray_session, resolve_address
    from orchestrator import launch
    from orchestrator.errors import SweepInterrupted

    resolve_address(args.address)
    try:
        limits = launch.extension_limits(
            args.run, args.rounds, args.budget_fte, args.budget_wall_s, args.budget_gpu_hours
        )
    except ValueError as exc:
        _err(f"extend: {exc}")
        return EXIT_BAD_INPUT
    try:
        with (
            ray_lines(args.verbose),
            ray_session(args.address, insecure=args.insecure, connect_timeout=args.connect_timeout),
        ):
            from orchestrator import tuning

            summary = tuning.extend(args.run, limits, quiet=args.quiet)
    except SweepInterrupted as exc:
        _err(str(exc).replace("sweep run CONFIG --resume", "sweep run CONFIG --resume (CONFIG: the sweep's config)"))
        return ExitCode.INTERRUPTED
    print(summary.line())
    return EXIT_OK


def _extend_parser(sub) -> None:
    e = sub.add_parser("extend", help="continue a finished sweep with more rounds, in the same folder")
    e.add_argument("run", help="the sweep's folder or URI, e.g. runs/digits-lr or s3://bucket/runs/digits-lr")
    e.add_argument("--rounds", type=int, metavar="N", help="the total rounds (more than it ran)")
    e.add_argument("--budget-fte", type=float, metavar="X", help="a larger epoch budget, in full trainings")
    e.add_argument("--budget-wall-s", type=float, metavar="S", help="a larger wall-clock budget, seconds in all")
    e.add_argument("--budget-gpu-hours", type=float, metavar="H", help="a larger GPU-hour budget, in all")
    e.add_argument("--address", help="existing Ray cluster's GCS, e.g. HEAD:6379 (default: RAY_ADDRESS, else embedded)")
    e.add_argument("--insecure", action="store_true", help="drive a cluster that does not require a token")
    e.add_argument("--connect-timeout", type=_seconds, default=30.0, metavar="SECONDS")
    e.add_argument("--quiet", action="store_true", help="print only the final line")
    e.add_argument("--verbose", action="store_true", help="also show Ray's warnings")
    e.set_defaults(func=cmd_extend)


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator import build_report, report

    s = build_report(args.folder, out=args.out)
    print(report.terminal_table(s))  # the summary carries the trial table: summarised once
    print(s.line())
    print(f"report: {s.folder / 'report.md'}" + (" (built from a downloaded copy)" if s.where else ""))
    return EXIT_OK


def cmd_schedules(args: argparse.Namespace) -> int:
    from schedules import plot

    print(plot.describe_laws())
    if args.plot:
        plot.plot_laws(args.plot, epochs=args.epochs)
        print(f"plot: {args.plot}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep", description="Coarse-then-fine learning-rate sweeps on Ray Tune.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a sweep (embedded local Ray unless --address or RAY_ADDRESS)")
    r.add_argument("config", help="sweep YAML, e.g. examples/digits.yaml")
    r.add_argument("--address", help="existing Ray cluster's GCS, e.g. HEAD:6379 (default: RAY_ADDRESS, else embedded)")
    r.add_argument("--resume", action="store_true", help="continue the sweep in an existing folder")
    r.add_argument(
        "--insecure",
        action="store_true",
        help="drive a cluster that does not require a token (its ports run anyone's code)",
    )
    r.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on a cluster that does not answer within this many seconds (default 30)",
    )
    r.add_argument("--quiet", action="store_true", help="print only the final line")
    r.add_argument("--verbose", action="store_true", help="also print each trial as it ends")
    r.add_argument("--no-check", action="store_true", help="skip the pre-flight checks")
    r.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN",
        help="warm-start from a finished sweep's folder or URI (sets warm_start.run)",
    )
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="babysitting pre-flight checks on the workload, no fan-out")
    c.add_argument("config", help="sweep YAML")
    c.set_defaults(func=cmd_check)
    for command in (r, c):
        command.add_argument("--name", help="the sweep's name, instead of the config's name:")
        command.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override one config key (dotted, e.g. space.optimizer=adam; the value is "
            "read as YAML); repeatable; checked like the file",
        )

    from cluster.commands import register as register_jobs

    register_jobs(sub)  # submit, status, logs, stop (Ray Jobs API)

    from orchestrator.tbserver import register as register_tensorboard

    register_tensorboard(sub)  # tensorboard RUN

    _extend_parser(sub)  # extend RUN

    rep = sub.add_parser("report", help="rebuild report.md, best.json and plots from a sweep folder")
    rep.add_argument("folder", help="a sweep folder, e.g. runs/digits-lr, or a URI, e.g. s3://bucket/runs/digits-lr")
    rep.add_argument(
        "--out",
        metavar="DIR",
        help="for a URI: download the results into DIR/NAME and build the "
        "report there (default: ~/.cache/sweep/reports/...)",
    )
    rep.set_defaults(func=cmd_report)

    s = sub.add_parser("schedules", help="list the learning-rate decay laws")
    s.add_argument("--plot", help="draw eta_t / eta_0 over epochs for each law into this PNG")
    s.add_argument("--epochs", type=int, default=100)
    s.set_defaults(func=cmd_schedules)
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds in (0, 3600]")
    return value


def main(argv: list[str] | None = None) -> int:
    from orchestrator.errors import (
        AddressError,
        ClusterUnreachableError,
        ConfigError,
        JobsInputError,
        LeaseHeldError,
        NoMetricError,
        ResultsError,
        StorageError,
        SweepExistsError,
        SweepInterrupted,
        WorkloadError,
    )

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    try:
        with plugins_beside(getattr(args, "config", None)):
            return args.func(args)
    except NoMetricError as exc:  # `run`: the workload failed at every rate; `report`: nothing to report on
        _err(str(exc))
        return EXIT_FAILED if args.func is cmd_run else EXIT_BAD_INPUT
    except (
        AddressError,
        ConfigError,
        ResultsError,
        StorageError,
        SweepExistsError,
        WorkloadError,
        JobsInputError,
        LeaseHeldError,
    ) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except ClusterUnreachableError as exc:
        _err(str(exc))
        return EXIT_FAILED
    except SweepInterrupted as exc:
        _err(str(exc).replace("sweep run CONFIG --resume", resume_command(args)))
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        _err("interrupted")
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
