"""Exit codes and the exceptions of ``sweep``: one table. Standard library only, so every layer may import it.

The modules that raise these re-export them under their old names (``orchestrator.config.ConfigError`` is
``orchestrator.errors.ConfigError``). ``cli.main`` maps them to exit codes: each class says its code in
its docstring; ``ValueError`` subclasses are bad input.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``sweep`` exits with."""

    OK = 0
    FAILED = 1  # the sweep, a job or a server failed at run time
    BAD_INPUT = 2  # config, folder, arguments, address, storage that cannot be read or written
    CHECK_FAILED = 3  # a pre-flight check failed; nothing was submitted
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it)


MAX_MESSAGE = 1000  # characters of a ConfigError message, whatever it holds


class ConfigError(ValueError):
    """A sweep config is missing, malformed or invalid (exit 2). The message is one line (file, key,
    expectation) of at most ``MAX_MESSAGE`` characters: newlines become spaces and a longer text is cut."""

    def __init__(self, message: object) -> None:
        text = " ".join(str(message).splitlines())
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 12] + " ... (cut)"
        super().__init__(text)


class StorageError(ValueError):
    """The storage URI cannot be opened, read or written (exit 2). The message is one line and names the URI."""


class ResultsError(ValueError):
    """A results folder is missing, empty or corrupt (exit 2)."""


class NoMetricError(ResultsError):
    """A sweep ran but no trial reported its metric (every trial errored or diverged before its first
    report): a run-time failure of the user's workload for ``sweep run`` (exit 1), nothing to report on
    for ``sweep report`` (exit 2)."""


class LeaseHeldError(ValueError):
    """Another driver holds the sweep's lease and its heartbeat is live (exit 2)."""


class SweepExistsError(ValueError):
    """The sweep folder exists and --resume was not given (exit 2)."""


class SweepInterrupted(RuntimeError):
    """The sweep stopped before its search was done (Ctrl-C, ``sweep stop``); its state is saved (exit 130)."""


class WorkloadError(ValueError):
    """The workload named in a config cannot be loaded or returned something else than a Workload (exit 2)."""


class CheckpointError(ValueError):
    """A checkpoint's ``state.pt`` holds something other than tensors and plain data (dicts, lists,
    numbers, strings): it is refused, never unpickled. The message is one line and names the file."""


class TensorBoardError(RuntimeError):
    """TensorBoard did not start: bad folder, port taken, crashed (exit 2)."""
