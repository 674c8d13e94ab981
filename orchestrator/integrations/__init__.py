"""Adapters that let a sweep drive a training framework the user already has, each a small callback that
forwards to the trial runtime (``orchestrator.Trial``), never a second training loop:

- ``orchestrator.integrations.hf``: a Hugging Face ``transformers.Trainer`` (extra ``sweep-orchestrator[hf]``)
- ``orchestrator.integrations.lightning``: a ``lightning`` Trainer and LightningModule (extra ``[lightning]``)

Each module imports its framework when it is imported (never this package), and says which extra to install
when the framework is missing.
"""

from __future__ import annotations


def missing(framework: str, extra: str) -> ImportError:
    """The one-line error for an adapter whose framework is not installed."""
    return ImportError(
        f"{framework} is not installed: the sweep's adapter for it needs the extra, "
        f"pip install 'sweep-orchestrator[{extra}]' (from a clone: pip install -e '.[{extra}]')"
    )
