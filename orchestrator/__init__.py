"""sweep: coarse-then-fine learning-rate sweeps on Ray Tune.

Library API (the CLI is a thin layer over it)::

    from orchestrator import load_config, run_sweep, Workload
    summary = run_sweep(load_config("examples/digits.yaml"))
"""

from __future__ import annotations

from orchestrator.config import SweepConfig, load as load_config, parse as parse_config
from orchestrator.errors import ConfigError, WorkloadError


def __getattr__(name: str):
    # torch is imported only when a workload or a trial is needed: `import orchestrator` stays light for the CLI
    if name == "Workload":
        from orchestrator import workloads

        return getattr(workloads, name)
    if name in ("Trial", "TrainingError"):
        from orchestrator import session

        return getattr(session, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "SweepConfig",
    "TrainingError",
    "Trial",
    "Workload",
    "WorkloadError",
    "build_report",
    "load_config",
    "parse_config",
    "run_sweep",
]


def run_sweep(
    cfg: SweepConfig,
    address: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    config_text: str = "",
    num_cpus: int | None = None,
    checks: list | None = None,
    verbose: bool = False,
    insecure: bool = False,
    connect_timeout: float = 30.0,
):
    """Run a sweep on an embedded local Ray (no address) or an existing cluster; returns the report summary.
    ``space.batch_size: auto`` is first resolved where the trials run (``memprobe.resolve_sweep``).

    An existing cluster must require a token unless ``insecure``; it must answer within ``connect_timeout``
    seconds (``cluster.connect.ray_session``)."""
    from cluster.connect import ray_session
    from orchestrator import folder, tuning

    if not resume:
        folder.refuse_taken(cfg)
    with ray_session(address, num_cpus=num_cpus, insecure=insecure, connect_timeout=connect_timeout):
        if not resume and cfg.space.get("batch_size") == "auto":  # a resumed sweep's searcher holds the batch
            from orchestrator import config as configs, memprobe

            config_text = config_text or configs.dump(cfg)  # sweep.yaml keeps `auto`: the report says so
            cfg = memprobe.resolve_sweep(cfg, quiet=quiet)
        options = tuning.RunOptions(
            resume=resume, quiet=quiet, verbose=verbose, config_text=config_text, checks=tuple(checks or ())
        )
        return tuning.run(cfg, options)


def build_report(folder, out=None):
    """Rebuild best.json, report.md and the plots from a stored sweep folder; returns the summary.

    ``folder`` may be a URI (``s3://bucket/runs/NAME``): its result files (not its checkpoints) are
    downloaded into ``out/NAME`` (default: ``~/.cache/sweep/reports/...``) and the report is built
    there; the URI is left as it was. ``out`` is for URIs only."""
    from orchestrator import report as _report, storage
    from orchestrator.results import ResultsError

    if not storage.is_uri(str(folder)):
        if out is not None:
            raise ResultsError(
                f"out={out!r}: only for a sweep stored at a URI; {folder} is a local folder "
                f"(its report is written in it)"
            )
        return _report.build(storage.local_path(str(folder)) if storage.scheme(str(folder)) else folder)
    summary = _report.build(storage.fetch(str(folder), out))
    summary.where = storage.display(str(folder))
    return summary
