"""``sweep``: a thin command line over the library. Each subcommand is a small function; ``main() -> int``.

Exit codes (``errors.ExitCode``): 0 ok, 1 the sweep failed at run time, 2 bad input (config, folder,
arguments; storage that cannot be read or written), 3 a pre-flight check failed, 130 interrupted.
Importing this module, building the parser and the commands ``schedules``, ``report`` and ``tensorboard``
need no Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import ExitCode

# the names tests and callers know; the values are ExitCode's
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CHECK_FAILED = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.BAD_INPUT,
    ExitCode.CHECK_FAILED,
)


def _err(message: str) -> None:
    print(f"sweep: error: {message}", file=sys.stderr)


def preflight(cfg, batch: bool = False) -> list:
    """The babysitting checks on the config's first trial (middle of the learning-rate grid); none for a
    training function (``train:``): the checks need a ``Workload``. ``batch``: also the largest batch that
    fits here (batch_fit; ``sweep check``)."""
    from orchestrator import preflight as checks

    if cfg.workload is None:
        return []
    grid = cfg.zoom_range.values()
    trial = {**cfg.base_config(), **cfg.groups()[0], cfg.zoom.param: grid[len(grid) // 2]}
    search = None
    if batch:
        from orchestrator.memprobe import Search

        search = Search.of(cfg)
    return checks.run_checks(cfg.workload, trial, lr_grid=grid, batch_search=search)


def cmd_check(args: argparse.Namespace) -> int:
    from orchestrator import preflight as checks

    cfg, _ = load(args)
    results = preflight(cfg, batch=True)
    print(
        checks.format_checks(results)
        or f"no pre-flight checks: train: {cfg.train} is a training function "
        f"(the checks need a workload: returning a Workload)"
    )
    bad = checks.failed(results)
    if bad:
        _err(f"{len(bad)} pre-flight check(s) failed: {', '.join(c.name for c in bad)}")
        return EXIT_CHECK_FAILED
    return EXIT_OK


def load(args: argparse.Namespace) -> tuple:
    """``(SweepConfig, text)``: the config file with ``--name`` and each ``--set`` applied, and the text of
    that effective config (stored as the sweep's ``sweep.yaml``)."""
    from orchestrator import config as config_mod, yamldoc

    text = config_mod.read(args.config)
    sets, name = list(getattr(args, "set", None) or []), getattr(args, "name", None)
    if not sets and name is None:
        return config_mod.loads(text, args.config), text
    text = yamldoc.with_sets(text, sets, args.config, name=name)
    flags = redact(" ".join(shlex.join(f) for f in _flags(args)))
    if len(flags) + len(str(args.config)) > 150:  # errors cut the source at 200 characters
        flags = f"{len(_flags(args))} overrides: --name, --set"
    return config_mod.loads(text, f"{args.config} (with {flags})"), text


def _flags(args: argparse.Namespace) -> list[list[str]]:
    return (
        ([["--name", args.name]] if getattr(args, "name", None) is not None else [])
        + [["--set", s] for s in getattr(args, "set", None) or []]
        + ([["--from", args.from_run]] if getattr(args, "from_run", None) else [])
    )


def with_from(args: argparse.Namespace, cfg, text: str) -> tuple:
    """``(SweepConfig, text)`` with ``warm_start.run`` set to ``--from RUN`` (the config's other
    ``warm_start`` keys kept); unchanged without ``--from``. ``ConfigError`` (one line) when the config
    already warm-starts from another sweep."""
    import json

    from orchestrator import config as config_mod, reuse, yamldoc

    run = getattr(args, "from_run", None)
    if not run:
        return cfg, text
    if cfg.warm_start is not None and reuse.locate(cfg.warm_start.run) != reuse.locate(run):
        raise config_mod.ConfigError(
            f"--from {redact(run)}: {args.config} already warm-starts from {redact(cfg.warm_start.run)} "
            f"(warm_start.run); give one of them"
        )
    text = yamldoc.with_sets(text, [f"warm_start.run={json.dumps(run)}"], args.config)
    return config_mod.loads(text, f"{args.config} (with --from)"), text


def resume_command(args: argparse.Namespace) -> str:
    """The command that resumes the sweep ``args`` started: the same config file and overrides (what looks
    like a credential in them masked)."""
    return redact(shlex.join(["sweep", "run", str(args.config), *[x for f in _flags(args) for x in f], "--resume"]))


def redact(text: str) -> str:
    from orchestrator import storage

    return storage.redact(text)


def _present(where) -> bool:
    from orchestrator import storage

    return storage.exists(where.uri) if where.uri else where.folder.is_dir()


def resumable(where) -> bool:
    """Whether ``--resume`` can continue the sweep at ``where`` (a ``storage.Target``): a local folder where
    Tune saved its experiment state; anything at a URI (read by the resume itself)."""
    if not _present(where):
        return False
    if where.uri:
        return True
    from ray import tune

    return tune.Tuner.can_restore(str(where.folder))


# Ray's loggers whose lines (Tuner.restore advice, "Failed to fetch metrics", the token-auth notice,
# experiment-state snapshotting warnings) `sweep run` shows with --verbose only; errors always show.
RAY_LOGGERS = ("ray.tune", "ray.train", "ray.air", "ray._private.authentication")


@contextlib.contextmanager
def ray_lines(verbose: bool) -> Iterator[None]:
    """While the block runs, Ray's own warnings are hidden unless ``verbose``; the levels are restored."""
    loggers = [logging.getLogger(n) for n in RAY_LOGGERS]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def plugins_beside(config: str | None) -> Iterator[None]:
    """While the block runs, plugin modules next to the config file are importable: its folder is on
    ``sys.path`` (after what is there) and, for the trials' processes of an embedded Ray, on ``PYTHONPATH``."""
    if config is None:
        yield
        return
    folder = str(Path(config).resolve().parent)
    old_path, old_env = list(sys.path), os.environ.get("PYTHONPATH")
    if folder not in sys.path:
        sys.path.append(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join([*filter(None, [old_env]), folder])
    try:
        yield
    finally:
        sys.path[:] = old_path
        if old_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_env


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import storage

    cfg, text = with_from(args, *load(args))
    where = storage.target(cfg.storage, cfg.name)
    if args.resume and not _present(where):
        _err(f"{where.shown}: nothing to resume (no sweep folder there); start the sweep without --resume")
        return EXIT_BAD_INPUT
    try:
        with ray_lines(args.verbose):
            return _run(args, cfg, text, where)
    except KeyboardInterrupt:
        if resumable(where):
            _err(f"interrupted; resume with: {resume_command(args)}")
        elif _present(where):
            _err(
                f"interrupted before training began: {where.shown} holds no Tune state to resume "
                f"(remove the folder to start again)"
            )
        else:
            _err(f"interrupted before {where.shown} was created; nothing to resume")
        return ExitCode.INTERRUPTED


def _run(args: argparse.Namespace, cfg, text: str, where) -> int:
    from cluster.connect import resolve_address
    from orchestrator import preflight as checks, run_sweep

    resolve_address(args.address)  # a bad address fails now, before the checks and before Ray starts
    if not args.resume:
        from orchestrator.folder import refuse_taken

        refuse_taken(cfg)  # so does a sweep folder that is taken
        from orchestrator import reuse

        reuse.warm_prior(cfg, "--from" if getattr(args, "from_run", None) else "warm_start.run")  # and a bad one
    else:
        from orchestrator import lease

        lease.check(lease.store_for(where.folder, where.uri))  # and a sweep another driver is running
    results = []
    if not args.no_check and not args.resume:
        results = preflight(cfg)
        bad = checks.failed(results)
        if bad:
            print(checks.format_checks(results), file=sys.stderr)
            _err(
                f"{len(bad)} pre-flight check(s) failed: {', '.join(c.name for c in bad)}; "
                f"nothing was submitted (fix the workload, or pass --no-check)"
            )
            return EXIT_CHECK_FAILED
        if not args.quiet:
            warned = [c.name for c in results if c.status == "warn"]
            print(
                f"[sweep] pre-flight: {len(results) - len(warned)} passed"
                + (f", warnings: {', '.join(warned)}" if warned else ""),
                flush=True,
            )
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
    from orchestrator import reuse
    from orchestrator.errors import SweepInterrupted

    resolve_address(args.address)
    try:
        limits = reuse.Limits(args.rounds, args.budget_fte, args.budget_wall_s, args.budget_gpu_hours)
        reuse.extension(reuse.locate(args.run), limits, quiet=True, record=False)
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
