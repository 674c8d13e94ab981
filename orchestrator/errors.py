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


# --- clusters (cluster/): ValueError subclasses are bad input (exit 2), RuntimeError ones run-time (exit 1)
class AddressError(ValueError):
    """A cluster address ``sweep`` cannot use (exit 2). One kind per way of reaching a cluster:
    ``RunAddressError`` for ``sweep run --address`` (the cluster's GCS, ``HEAD:6379``), ``JobsAddressError``
    for ``sweep submit|status|logs|stop`` (the dashboard's Jobs API, ``http://HEAD:8265``)."""


class RunAddressError(AddressError):
    """An address that ``sweep run`` cannot drive a sweep through (expected ``HEAD:6379``)."""


class ClusterUnreachableError(RuntimeError):
    """The cluster did not answer within the connect timeout (exit 1)."""


class JobsInputError(ValueError):
    """Bad input to the Jobs commands: no or malformed address, unknown job, a refused cluster (exit 2).
    One line, no secrets."""


class JobsAddressError(JobsInputError, AddressError):
    """No cluster address, or one that is not the Jobs API's (``http(s)://HEAD:8265``)."""


class AuthError(JobsInputError):
    """The cluster wants a token and none was found, or it rejected the one sent (HTTP 401/403)."""


class InsecureClusterError(JobsInputError):
    """The cluster's Jobs API does not require a token and ``insecure`` was not given."""


class JobNotFoundError(JobsInputError):
    """No job with that id on the cluster."""


class LocalStorageError(JobsInputError):
    """``storage:`` is relative or under ``~``: on the cluster it would not be a place the user can read."""


class JobsError(RuntimeError):
    """A Jobs API request failed at run time: cluster unreachable, server error, upload refused (exit 1)."""
