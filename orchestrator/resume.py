"""Resuming a sweep with an edited config: ``resume_changes`` sorts each difference between the stored and the
new ``SweepConfig`` into refused (it alters what was trained or how the search goes on) and allowed
(``RESUME_MAY_GROW`` keys raised, ``RESUME_MAY_CHANGE`` keys changed). Pure: imports neither Ray nor torch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from orchestrator.sections import shown

if TYPE_CHECKING:
    from orchestrator.config import SweepConfig


RESUME_MAY_GROW = (
    "zoom.max_rounds",
    "zoom.budget_fte",
    "zoom.budget_wall_s",  # more rounds, a larger
    "zoom.budget_gpu_hours",
)  # budget: the sweep extends
RESUME_MAY_CHANGE = ("resources.", "max_trials_per_round", "zoom.on_budget", "notify", "cost")  # nothing trained moves
RESUME_NOT_COMPARED = ("name", "storage")  # how the sweep folder was found


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and (data or not prefix):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def resume_changes(stored: SweepConfig, new: SweepConfig) -> tuple[list[str], dict[str, tuple[Any, Any]]]:
    """Compare the config a sweep was started with (``stored``) with the one it is resumed with (``new``).

    Returns ``(refused, allowed)``: ``refused`` lists each change that alters what was already trained or
    how the search goes on from it, as ``"key: old -> new"`` (any key but those below); ``allowed`` maps
    each allowed change to ``(old, new)``: ``RESUME_MAY_GROW`` keys raised (a null budget is no limit),
    ``RESUME_MAY_CHANGE`` keys changed either way. ``RESUME_NOT_COMPARED`` keys are not compared."""
    old, cur = _flat(stored.model_dump(mode="json")), _flat(new.model_dump(mode="json"))
    refused: list[str] = []
    allowed: dict[str, tuple[Any, Any]] = {}
    missing = object()
    for key in sorted(set(old) | set(cur)):
        a, b = old.get(key, missing), cur.get(key, missing)
        if a == b or key in RESUME_NOT_COMPARED:
            continue
        if key in RESUME_MAY_GROW and a is not missing and b is not missing and _grows(a, b):
            allowed[key] = (a, b)
        elif key.startswith(RESUME_MAY_CHANGE):
            allowed[key] = (None if a is missing else a, None if b is missing else b)
        else:
            refused.append(
                f"{key}: {'(absent)' if a is missing else shown(a)} -> {'(absent)' if b is missing else shown(b)}"
            )
    return refused, allowed


def _grows(old: Any, new: Any) -> bool:
    inf = math.inf
    return (inf if new is None else new) >= (inf if old is None else old)
