"""``RunOptions``: how ``tuning.run`` runs a sweep, besides its config: start it or ``resume`` it, what is
printed (``quiet``, ``verbose``), and what is stored with a new sweep (``config_text`` as ``sweep.yaml``,
the pre-flight ``checks`` as ``preflight.json``). Frozen; a bad value is a ValueError naming the field and
the value. Pure: imports neither Ray nor torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.sections import shown


@dataclass(frozen=True)
class RunOptions:
    """``resume``: continue the sweep in the config's folder when one is there (else start it); ``quiet``:
    no progress lines; ``verbose``: every trial's epochs as lines too; ``config_text``: the YAML stored as
    the new sweep's ``sweep.yaml`` ("": ``config.dump`` of the config); ``checks``: the pre-flight results
    stored as its ``preflight.json`` (empty: none stored; a list is taken as a tuple)."""

    resume: bool = False
    quiet: bool = False
    verbose: bool = False
    config_text: str = ""
    checks: tuple[Any, ...] = ()  # preflight.Check results (not imported: preflight needs torch)

    def __post_init__(self) -> None:
        for name in ("resume", "quiet", "verbose"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name}={shown(value)}: expected True or False")
        if not isinstance(self.config_text, str):
            raise ValueError(f"config_text={shown(self.config_text)}: expected the config's YAML text, or ''")
        if not isinstance(self.checks, (list, tuple)):
            raise ValueError(f"checks={shown(self.checks)}: expected a list of pre-flight results (preflight.Check)")
        object.__setattr__(self, "checks", tuple(self.checks))
