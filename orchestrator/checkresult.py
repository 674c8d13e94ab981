"""The verdict of one pre-flight check (``Check``) and its three statuses.

The contract between ``orchestrator.preflight`` (which runs the checks) and the modules that hold them
(``checks_training``, ``checks_setup``); ``preflight`` re-exports ``Check``.
"""

from __future__ import annotations

from dataclasses import dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``status`` is "pass", "warn" or "fail"; ``measured`` is the number, as text."""

    name: str
    status: str
    measured: str
    advice: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Check.status={self.status!r}: expected one of {STATUSES}")
