"""The process surroundings of a ``sweep run`` or ``sweep extend``: ``plugins_beside`` makes plugin modules
next to the config file importable, ``ray_lines`` hides Ray's own warnings unless verbose. Each is a context
manager that restores what it changed. Pure: standard library only; reads the environment when entered,
never at import."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

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
