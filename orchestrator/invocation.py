"""``Invocation``: a config file and the overrides given with it on the command line (``--name``, each
``--set``, ``--from``). It loads the effective config, and says the command that resumes the sweep it
starts. Frozen. Pure: imports neither Ray nor torch."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator import config as config_mod, reuse, storage, yamldoc

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig


@dataclass(frozen=True)
class Invocation:
    """``config``: the sweep YAML's path; ``name``: ``--name`` (None: the file's); ``sets``: each
    ``--set KEY=VALUE`` in order; ``from_run``: ``--from RUN`` (None: the file's ``warm_start``)."""

    config: str
    name: str | None = None
    sets: tuple[str, ...] = ()
    from_run: str | None = None

    def flags(self) -> list[list[str]]:
        """The overrides as command-line flags, each ``[flag, value]``, in the order they apply."""
        return (
            ([["--name", self.name]] if self.name is not None else [])
            + [["--set", s] for s in self.sets]
            + ([["--from", self.from_run]] if self.from_run else [])
        )

    def load(self) -> tuple[SweepConfig, str]:
        """``(SweepConfig, text)``: the config file with ``--name`` and each ``--set`` applied, and the text
        of that effective config (stored as the sweep's ``sweep.yaml``). ``ConfigError`` (one line)."""
        text = config_mod.read(self.config)
        if not self.sets and self.name is None:
            return config_mod.loads(text, self.config), text
        text = yamldoc.with_sets(text, list(self.sets), self.config, name=self.name)
        flags = storage.redact(" ".join(shlex.join(f) for f in self.flags()))
        if len(flags) + len(str(self.config)) > 150:  # errors cut the source at 200 characters
            flags = f"{len(self.flags())} overrides: --name, --set"
        return config_mod.loads(text, f"{self.config} (with {flags})"), text

    def with_from(self, cfg: SweepConfig, text: str) -> tuple[SweepConfig, str]:
        """``(SweepConfig, text)`` with ``warm_start.run`` set to ``--from RUN`` (the config's other
        ``warm_start`` keys kept); unchanged without ``--from``. ``ConfigError`` (one line) when the config
        already warm-starts from another sweep."""
        run = self.from_run
        if not run:
            return cfg, text
        if cfg.warm_start is not None and reuse.locate(cfg.warm_start.run) != reuse.locate(run):
            raise config_mod.ConfigError(
                f"--from {storage.redact(run)}: {self.config} already warm-starts from "
                f"{storage.redact(cfg.warm_start.run)} (warm_start.run); give one of them"
            )
        text = yamldoc.with_sets(text, [f"warm_start.run={json.dumps(run)}"], self.config)
        return config_mod.loads(text, f"{self.config} (with --from)"), text

    def resume_command(self) -> str:
        """The command that resumes the sweep this starts: the same config file and overrides (what looks
        like a credential in them masked)."""
        flags = [x for f in self.flags() for x in f]
        return storage.redact(shlex.join(["sweep", "run", str(self.config), *flags, "--resume"]))
