"""sweep: coarse-then-fine learning-rate sweeps on Ray Tune.

Library API (the CLI is a thin layer over it)::

    from orchestrator import load_config, run_sweep, Workload
    summary = run_sweep(load_config("examples/digits.yaml"))
"""
from __future__ import annotations

from orchestrator.config import ConfigError, SweepConfig, load as load_config, parse as parse_config


def __getattr__(name: str):
    # torch is imported only when a workload is needed: `import orchestrator` stays light for the CLI
    if name in ("Workload", "WorkloadError"):
        from orchestrator import workloads

        return getattr(workloads, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")

__all__ = ["ConfigError", "SweepConfig", "Workload", "WorkloadError", "load_config", "parse_config", "run_sweep",
           "build_report"]


def run_sweep(cfg: SweepConfig, address: str | None = None, resume: bool = False, quiet: bool = False,
              config_text: str = "", num_cpus: int | None = None, checks: list | None = None,
              verbose: bool = False):
    """Run a sweep on an embedded local Ray (no address) or an existing cluster; returns the report summary."""
    from cluster.connect import ray_session
    from orchestrator import tuning

    with ray_session(address, num_cpus=num_cpus):
        return tuning.run(cfg, config_text=config_text, resume=resume, quiet=quiet, checks=checks,
                          verbose=verbose)


def build_report(folder):
    """Rebuild best.json, report.md and the plots from a stored sweep folder; returns the summary."""
    from orchestrator import report as _report

    return _report.build(folder)
