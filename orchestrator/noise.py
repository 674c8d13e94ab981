"""How sure the pick is: the chosen rate's own score (``Score``, ``own_score``) and the band of rates the sweep
cannot tell apart from its best trial given the seed noise it measured (``Band``, ``band``, ``seed_noise``).

Pure arithmetic over one group's ``curves.TrialCurve`` records at the comparison epoch, in the minimised
score (``Goal.loss``); ``analysis`` turns the results into the metric's units. Imports neither Ray, torch
nor matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator import zoom
from orchestrator.curves import TrialCurve

NOISE_REACH = 1.0  # decades around the best trial whose scores measure the seed noise (``band``)
BAND_SIGMAS = 2.0  # a rate whose score is within this many noise estimates of the best is not told apart


@dataclass(frozen=True)
class Score:
    """The chosen rate's own score, in the metric's units, at the comparison epoch (``mean_label``): the
    trial that ran at that rate (``trials`` holds its id), or, when no trial ran there, interpolated in
    log10(rate) between the two trials that flank it (``interpolated``; ``trials`` holds both ids)."""

    value: float
    interpolated: bool
    trials: tuple[str, ...]

    def label(self, lr: Callable[[str], float]) -> str:
        """Where the value comes from, in words; ``lr`` gives a trial id's rate."""
        if not self.interpolated:
            return "the trial at this rate"
        rates = " and ".join(f"{lr(t):.4g}" for t in self.trials)
        return f"interpolated between the trials at {rates}, not trained"


@dataclass(frozen=True)
class Band:
    """The rates the sweep cannot tell apart from its best trial, given the seed noise it measured.

    ``noise``: the standard deviation of one trial's score around a parabola in log10(rate) through the
    trials within ``NOISE_REACH`` decades of the best and not ``zoom.CLIFF_RATIO`` times worse (``seed_noise``),
    in the metric's units; None when fewer than 4 such trials. ``threshold``: the best score plus
    ``BAND_SIGMAS`` noise estimates (minus, for a maximised metric). ``low``/``high``: the lowest and the
    highest rate of the trials next to the best (no worse trial between) within the threshold, widened to
    hold the chosen rate."""

    low: float
    high: float
    noise: float | None
    threshold: float | None
    trials: int  # trials inside the band

    def stored(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "noise": self.noise,
            "threshold": self.threshold,
            "trials": self.trials,
            "sigmas": BAND_SIGMAS,
        }

    def text(self, param: str = "lr") -> str:
        """One phrase: 'band lr 0.005..0.02 (noise 0.0061)'."""
        noise = f"noise {self.noise:.4f}" if self.noise is not None else "noise not measured: fewer than 4 trials"
        return f"band {param} {self.low:.4g}..{self.high:.4g} ({noise})"


def own_score(members: list[TrialCurve], lr: float, epoch: int) -> Score | None:
    """The score (minimised, ``Goal.loss``) of rate ``lr`` among ``members`` (one group's trials) at
    ``epoch``: the trial at that rate when one reached the epoch, else the linear interpolation in log10(rate)
    between the nearest scored trials below and above it (the nearest one alone when ``lr`` lies outside
    them). None when no trial has a finite score there."""
    scored = sorted(
        (c for c in members if c.lr and c.lr > 0 and math.isfinite(c.score_at(epoch))), key=lambda c: (c.lr, c.trial)
    )
    if not scored:
        return None
    at = [c for c in scored if abs(c.lr - lr) <= 1e-9 * lr]
    if at:
        return Score(at[0].score_at(epoch), False, (at[0].trial,))
    below = [c for c in scored if c.lr < lr]
    above = [c for c in scored if c.lr > lr]
    if not below or not above:
        c = (below or above)[-1 if below else 0]
        return Score(c.score_at(epoch), True, (c.trial,))
    a, b = below[-1], above[0]
    t = (math.log10(lr) - math.log10(a.lr)) / (math.log10(b.lr) - math.log10(a.lr))
    return Score(a.score_at(epoch) + t * (b.score_at(epoch) - a.score_at(epoch)), True, (a.trial, b.trial))


def seed_noise(points: list[tuple[float, float]]) -> float:
    """The standard deviation of one trial's score around the least-squares parabola through ``points``
    (x, score; at least 4 distinct x; 3 parameters fitted): each point its own seed, so the scatter measures
    the seed noise, plus whatever of the valley's shape a parabola does not hold (an upper bound, then)."""
    xs, ys = np.array(points).T
    residuals = ys - np.polyval(np.polyfit(xs, ys, 2), xs)
    return math.sqrt(float(np.sum(residuals**2)) / (len(points) - 3))


def band(members: list[TrialCurve], lr: float, epoch: int) -> Band:
    """The ``Band`` of ``members`` (one group's trials) at ``epoch`` around the chosen rate ``lr``; its
    ``noise`` and ``threshold`` as the minimised score (``Goal.loss``) sees them."""
    scored = sorted(
        (math.log10(c.lr), c.score_at(epoch), c.lr)
        for c in members
        if c.lr and c.lr > 0 and c.observation().reached(epoch)
    )
    pts = [(x, y) for x, y, _ in scored]
    finite_pts = [p for p in pts if math.isfinite(p[1])]
    if not finite_pts:
        return Band(lr, lr, None, None, 0)
    bi = min(range(len(pts)), key=lambda i: pts[i][1])
    bx, by = pts[bi]
    valley = [
        (x, y) for x, y in finite_pts if abs(x - bx) <= NOISE_REACH + 1e-9 and not zoom.worse(y, by, zoom.CLIFF_RATIO)
    ]
    noise = threshold = None
    lo = hi = bi
    if len({round(x, 9) for x, _ in valley}) >= 4:
        noise = seed_noise(valley)
        threshold = by + BAND_SIGMAS * noise
        while lo > 0 and pts[lo - 1][1] <= threshold:
            lo -= 1
        while hi < len(pts) - 1 and pts[hi + 1][1] <= threshold:
            hi += 1
    return Band(min(scored[lo][2], lr), max(scored[hi][2], lr), noise, threshold, hi - lo + 1)
