"""The JSON documents of a sweep folder, as ``results.read_json`` checks them: the shape of ``rounds.json``
(``rounds_problem``; each round's brackets as ``Bracket``, read by ``bracket_of``) and of ``preflight.json``
(``preflight_problem``): each check returns what is wrong in one line, or None (``results.SHAPES`` names the
file each applies to).
Pure: the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def number(v: Any) -> bool:
    """``v`` is an int or a float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def cut(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters ('...' at the end when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Bracket:
    """The range of rates the zoom searched in one round for one group, in the parameter's units."""

    low: float
    high: float

    @classmethod
    def of(cls, centre: float, half_width: float) -> Bracket:
        """From the zoom's (centre, half-width) in decades of log10."""
        return cls(10 ** (centre - half_width), 10 ** (centre + half_width))

    def stored(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}


def bracket_of(stored: Any) -> Bracket:
    """A bracket as ``rounds.json`` stores it: ``{"low", "high"}``, or the older ``[centre, half-width]`` in
    decades. ValueError for anything else."""
    if isinstance(stored, dict) and number(stored.get("low")) and number(stored.get("high")):
        return Bracket(float(stored["low"]), float(stored["high"]))
    if isinstance(stored, (list, tuple)) and len(stored) == 2 and all(map(number, stored)):
        return Bracket.of(*stored)
    raise ValueError(f"bracket={cut(repr(stored))}: expected {{low, high}} or [centre, half-width]")


def rounds_problem(data: Any) -> str | None:
    """What is wrong with a ``rounds.json`` document (as ``folder.save`` writes it), or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    fields = {
        "metric": lambda v: isinstance(v, str) and bool(v),
        "param": lambda v: isinstance(v, str),
        "mode": lambda v: v in ("min", "max"),
        "target": lambda v: v is None or (number(v) and math.isfinite(v)),
        "max_epochs": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        "stop_reason": lambda v: v is None or isinstance(v, str),
        "cliff_margin": lambda v: v is None or (number(v) and v >= 0),
        "groups": lambda v: v is None or (isinstance(v, list) and all(isinstance(g, dict) for g in v)),
        "rounds": lambda v: isinstance(v, list),
    }
    for key, ok in fields.items():
        if key in data and not ok(data[key]):
            return f"{key}: unexpected value {cut(repr(data[key]))}"
    for i, r in enumerate(data.get("rounds") or []):
        if not isinstance(r, dict):
            return f"rounds[{i}]: expected an object, got {cut(repr(r))}"
        for key, ok in (
            ("index", lambda v: isinstance(v, int)),
            ("points", lambda v: isinstance(v, int)),
            ("reason", lambda v: isinstance(v, str)),
            ("brackets", lambda v: isinstance(v, dict)),
        ):
            if key in r and not ok(r[key]):
                return f"rounds[{i}].{key}: unexpected value {cut(repr(r[key]))}"
        for g, b in (r.get("brackets") or {}).items():
            try:
                bracket_of(b)
            except ValueError:
                b = None
            if not (str(g).lstrip("-").isdigit() and b is not None):
                return (
                    f"rounds[{i}].brackets[{cut(repr(g))}]: expected {{low, high}} (or [centre, half-width]), "
                    f"got {cut(repr((r.get('brackets') or {})[g]))}"
                )
    return None


def preflight_problem(data: Any) -> str | None:
    """What is wrong with a ``preflight.json`` document (a list of checks), or None."""
    if not isinstance(data, list):
        return f"expected a list of checks, got {type(data).__name__}"
    for i, c in enumerate(data):
        if not (isinstance(c, dict) and {"name", "status", "measured", "advice"} <= set(c)):
            return f"[{i}]: expected a check with name, status, measured and advice, got {cut(repr(c))}"
    return None
