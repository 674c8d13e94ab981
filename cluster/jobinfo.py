"""What ``cluster.jobs`` reports of a Ray Job, with no cluster in reach: its state (``JobInfo``, ``TERMINAL``),
the state as ``sweep status`` / ``sweep stop`` print it (``public_info``: URI credentials masked), a submitted
job (``Submitted``), a stream of logs with the token masked (``scrub_stream``, ``MASK``), and the stop wait
a job was submitted with (``stop_wait_of``). Imports neither Ray nor torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
MASK = "***"


def scrub_stream(text: str, secret: str) -> tuple[str, str]:
    """``(shown, held)``: ``text`` with every ``secret`` masked, split so that ``held`` is its longest end
    that could be the start of ``secret`` (a secret cut between two chunks of a stream). Feed ``held``
    in front of the next chunk; write it out as is once the stream ends."""
    if not secret:
        return text, ""
    text = text.replace(secret, MASK)
    for n in range(min(len(secret) - 1, len(text)), 0, -1):
        if secret.startswith(text[-n:]):
            return text[:-n], text[-n:]
    return text, ""


def stop_wait_of(runtime_env: dict | None) -> int | None:
    """``RAY_JOB_STOP_WAIT_TIME_S`` of a job's runtime environment as an int; None when absent or not a number."""
    try:
        return int((runtime_env or {}).get("env_vars", {}).get("RAY_JOB_STOP_WAIT_TIME_S"))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str = ""
    entrypoint: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    start_time: int | None = None  # ms since the epoch, as Ray reports it
    end_time: int | None = None
    stop_wait_s: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def resume_hint(self) -> str:
        config = self.metadata.get("sweep_config", "CONFIG")
        where = self.metadata.get("sweep_folder", "")
        folder = f" (its state is in {where})" if where else ""
        return (
            f"resume with: sweep run {config} --resume on a machine that sees the same storage{folder}, "
            f"or: sweep submit {config} --resume"
        )


def public_info(info: JobInfo) -> JobInfo:
    """``info`` with URI credentials masked in its message and metadata (``storage.redact``): what
    ``sweep status`` and ``sweep stop`` print. Jobs this version submits carry none (their metadata holds
    ``storage.display`` of the URI); a job submitted by an older one, or a message quoting a URI, may."""
    from orchestrator.storage import redact

    return dataclasses.replace(
        info,
        message=redact(info.message),
        entrypoint=redact(info.entrypoint),
        metadata={k: redact(str(v)) for k, v in info.metadata.items()},
    )


@dataclass(frozen=True)
class Submitted:
    job_id: str
    address: str
    entrypoint: str
    folder: str  # where the sweep's results land, as the cluster resolves it
    warnings: tuple[str, ...] = ()
