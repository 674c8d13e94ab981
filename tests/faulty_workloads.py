"""Workloads that fail on purpose, referenced from test configs as tests.faulty_workloads:NAME."""

from __future__ import annotations

import math

from orchestrator.workloads.digits import digits_mlp


def raises_at_1e_3(config: dict):
    """Crashes every time for lr=1e-3 (a bug in the user's code), trains normally otherwise."""
    if math.isclose(float(config["lr"]), 1e-3):
        raise RuntimeError("deliberate failure for lr=0.001")
    return digits_mlp(config)


def logged(config: dict):
    """digits_mlp that appends one line per build (i.e. per start or restart of a trial) to config['log_path']."""
    with open(config["log_path"], "a") as f:
        f.write(f"{config['lr']}\n")
    return digits_mlp(config)
