"""The figures of the report (matplotlib, imported inside the functions: importing this module draws in
nothing): ``val_loss_vs_lr.png``, the metric against the learning rate, and ``val_curves.png``, the metric
over epochs of the finalists. Each figure function takes the one ``analysis.Summary`` and returns a
matplotlib Figure, not saved; ``write`` saves both into the sweep folder. No pyplot: no global backend or
figure state is touched, so the figures are safe to draw in threads."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from orchestrator import documents, results, zoom
from orchestrator.analysis import Summary
from orchestrator.compare import Parabola, fit_parabola
from orchestrator.curves import TrialCurve, group_label, observations, score_label
from orchestrator.results import TrialStatus

__all__ = ["CURVES", "FINALISTS", "PLOT", "PickTrace", "figure_curves", "figure_vs_lr", "pick_trace", "write"]

PLOT = "val_loss_vs_lr.png"
CURVES = "val_curves.png"
FINALISTS = 6  # curves drawn in val_curves.png


def write(s: Summary) -> list[Path]:
    """Save the figures into ``s.folder`` (``PLOT``; ``CURVES`` when a trial reached the chosen epoch), each
    written atomically; returns the paths written."""
    return [p for p in (_plot_vs_lr(s), _plot_curves(s)) if p is not None]


_MARKERS = "osD^vP*X"
_FRACTION_MARKER = "h"  # trials on a fraction of the data that the pick did not compare
# fixed margins for an 8 x 5 inch figure with a two-line y label, not tight_layout (why: docs/decisions.md)
_MARGINS = {"left": 0.11, "right": 0.98, "bottom": 0.1, "top": 0.93}


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    results.atomic_write_bytes(path, buf.getvalue())
    return path


def _figure(size: tuple[float, float]):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, safe in threads

    fig = Figure(figsize=size, dpi=100)
    return fig, fig.subplots()


def _log_y(ax) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(plain)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(max(n, 1))]


def _plot_vs_lr(s: Summary) -> Path | None:
    return _save(figure_vs_lr(s), s.folder / PLOT)


@dataclass(frozen=True)
class PickTrace:
    """How the pick of ``s`` was made, in log10 of the rate: the parabola it fitted (``compare.fit_parabola``
    over the chosen group's trials at the comparison epoch, among those ``zoom.same_data`` keeps, within
    ``zoom.FINAL_REACH`` decades; None when there were too few points), ``free`` the fit's own minimum (None
    without a convex fit), ``cliff`` the first rate above the best that did ``ratio`` times worse or diverged
    (``zoom.cliff_cap`` at margin 0; None when not seen) and ``cap`` the highest rate the pick could take
    (``margin`` decades below the cliff; None without a cliff guard or cliff). When one full-data trial
    confirmed a pick made on a fraction of the data (``Summary.confirmed``, ``zoom.coarse_rounds``), the fit
    and the cliff are the search's: over the trials on that fraction, at their comparison epoch (``data``)."""

    fit: Parabola | None
    free: float | None
    cliff: float | None
    cap: float | None
    ratio: float
    margin: float | None
    data: float = 1.0  # the data fraction of the trials the fit went through (below 1: a confirmed pick's search)

    @property
    def capped(self) -> bool:
        """The cap moved the pick: the fit alone would have picked a higher rate."""
        return self.cap is not None and self.free is not None and self.free > self.cap + 1e-9


def pick_trace(s: Summary) -> PickTrace:
    """The ``PickTrace`` of ``s``, worked out as ``zoom.choose`` does (parabola pick, ``cliff_margin`` from
    rounds.json, the default cliff ratio, as ``analysis.analyse`` calls it)."""
    margin = s.meta.get("cliff_margin")
    ratio = zoom.CLIFF_RATIO
    obs = [o for o in observations(s.table) if o.group == s.group]
    if s.confirmed is not None:  # the pick was made among the trials on the fraction, then trained on all the data
        obs = [o for o in obs if o.data < 1]
    members = zoom.same_data(obs)
    epoch = s.epoch if s.confirmed is None else zoom.comparison_epoch(members)
    pts = zoom.points_at(members, epoch)
    fit = fit_parabola(pts, reach=zoom.FINAL_REACH) if pts else None
    free = fit.vertex if fit is not None and fit.convex else None
    marks = pts + zoom.stopped_over_cliff(members, epoch, ratio)
    cliff = zoom.cliff_cap(marks, ratio=ratio, margin=0.0)
    cap = None if cliff is None or margin is None else cliff - margin
    data = max((o.data for o in members), default=1.0)
    return PickTrace(fit, free, cliff, cap, ratio, margin, data)


def _compared(s: Summary, c: TrialCurve) -> bool:
    """``c`` trained on the data the pick compared (``Summary.picked_on``): not a coarse round's fraction."""
    return zoom.data_of(c.config) >= s.picked_on


def figure_vs_lr(s: Summary):
    """The metric against the learning rate (a matplotlib Figure, not saved): each trial that reported a
    result is one marker, its score (``zoom.score``) at the epoch the pick compared (filled), or at its
    last epoch when it stopped before (hollow); diverged trials as x on the top edge. One colour per
    round, one marker per group; trials on a fraction of the data that the pick did not compare
    (``zoom.coarse_data``) as hexagons, left out of the grey line of the compared trials and of the fit.
    How the pick was made (``pick_trace``): the parabola it fitted (solid black, over the rates it used),
    the cliff (dotted ``axvline``), the cap where it moved the pick (dash-dot ``axvline``); the chosen
    group's last bracket shaded (``axvspan``); the chosen rate dashed (``axvline`` at ``s.lr``); the band
    shaded green."""
    m = s.metric
    n_rounds = max(c.round for c in s.table) + 1
    groups = sorted({c.group for c in s.table})
    colours = _colours(n_rounds)
    fig, ax = _figure((8, 5))
    finite = [v for c in s.table for v in c.values if v is not None and math.isfinite(v)]
    top = max(finite) if finite else 1.0
    diverged_y = top * 1.5 if s.mode is results.Mode.MIN else min(finite, default=1.0) * 0.5
    for k in range(n_rounds):
        for gi, g in enumerate(groups):
            members = [c for c in s.table if c.round == k and c.group == g and c.epochs]
            label = f"round {k}" + (f", {group_label(s.meta, g)}" if len(groups) > 1 else "")
            compared = [c for c in members if _compared(s, c)]
            _markers(ax, s, compared, _MARKERS[gi % len(_MARKERS)], colours[k], label, diverged_y)
            for data in sorted({zoom.data_of(c.config) for c in members if not _compared(s, c)}):
                apart = [c for c in members if zoom.data_of(c.config) == data]
                text = f"{label} on {data:.0%} of the data (not compared with full-data trials)"
                _markers(ax, s, apart, _FRACTION_MARKER, colours[k], text, diverged_y)
    # the curve the pick was made on: the chosen group's trials at the comparison epoch, on the data it compared
    line = sorted(
        (c.lr, c.mean_at(s.epoch))
        for c in s.table
        if c.group == s.group and _compared(s, c) and math.isfinite(c.score_at(s.epoch))
    )
    if len(line) > 1:
        ax.plot(*zip(*line), color="grey", linewidth=0.8, alpha=0.6, zorder=2, label=f"at epoch {s.epoch}")
    _draw_trace(ax, s, pick_trace(s))
    bracket = _chosen_bracket(s, s.group)
    if bracket:
        (k, lo, hi) = bracket
        ax.axvspan(lo, hi, color="orange", alpha=0.15, label=f"bracket of round {k}", zorder=1)
    if s.band and s.band.high > s.band.low:
        ax.axvspan(
            s.band.low,
            s.band.high,
            color="green",
            alpha=0.15,
            zorder=1,
            label=f"band {s.band.low:.3g}..{s.band.high:.3g} (not told apart from the best)",
        )
    ax.axvline(s.lr, color="red", linestyle="--", linewidth=1.2, label=f"chosen {s.lr:.3g}", zorder=4)
    ax.set_xscale("log")
    if finite and min(finite) > 0 and top / min(finite) > 20:
        _log_y(ax)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{score_label(m, s.epoch)}\n(hollow: at the epoch the trial stopped)")
    title = f"{s.folder.name}: {m} against learning rate"
    if any(c.status == TrialStatus.DIVERGED for c in s.table):
        title += " (x: diverged)"
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.subplots_adjust(**_MARGINS)
    return fig


def _markers(ax, s: Summary, trials: list[TrialCurve], marker: str, colour, label: str, diverged_y: float) -> None:
    """One marker per trial: filled at the comparison epoch, hollow at the last epoch of a trial stopped
    before it, x on the edge for a diverged one."""
    full, partial, bad = [], [], []
    for c in trials:
        if c.status == TrialStatus.DIVERGED or c.values[-1] is None or not math.isfinite(c.values[-1]):
            bad.append(c.lr)
        elif len(c.epochs) >= s.epoch:
            full.append((c.lr, c.mean_at(s.epoch)))
        else:
            partial.append((c.lr, c.mean_at(len(c.epochs))))
    if full:
        ax.scatter(*zip(*full), s=45, marker=marker, color=colour, label=label, zorder=3)
    if partial:
        ax.scatter(
            *zip(*partial),
            s=45,
            marker=marker,
            facecolors="none",
            edgecolors=colour,
            label=None if full else label,
            zorder=3,
        )
    if bad:
        ax.scatter(bad, [diverged_y] * len(bad), s=55, marker="x", color=colour, zorder=3)


_FIT_POINTS = 60  # points along the drawn parabola


def _draw_trace(ax, s: Summary, t: PickTrace) -> None:
    """The parabola the pick fitted, over the rates it used; the cliff; the cap where it moved the pick."""
    if t.fit is not None:
        fit, span = t.fit, t.fit.high - t.fit.low
        xs = [fit.low + span * i / (_FIT_POINTS - 1) for i in range(_FIT_POINTS)]
        reach = f"±{zoom.FINAL_REACH:g} decade"
        on = f" on {t.data:.0%} of the data" if t.data < 1 else ""
        label = (
            f"fit the pick used{on} (parabola, {reach})"
            if fit.convex
            else f"parabola{on} ({reach}) not convex: the pick is the best trial's rate"
        )
        ax.plot(
            [10**x for x in xs],
            [s.goal.metric(fit.at(x)) for x in xs],
            color="black",
            linewidth=1.3 if fit.convex else 0.8,
            alpha=0.8 if fit.convex else 0.4,
            zorder=3,
            label=label,
        )
    if t.cliff is not None:
        ax.axvline(
            10**t.cliff,
            color="darkred",
            linestyle=":",
            linewidth=1.2,
            zorder=4,
            label=f"cliff: {t.ratio:g}x worse or diverged",
        )
    if t.capped and t.cap is not None and t.margin is not None:
        ax.axvline(
            10**t.cap,
            color="darkred",
            linestyle="-.",
            linewidth=1.0,
            zorder=4,
            label=f"cap: {t.margin:g} decade{'' if t.margin == 1 else 's'} below the cliff",
        )


def _chosen_bracket(s: Summary, group: int) -> tuple[int, float, float] | None:
    """(round, low, high) of the last round whose bracket covers the chosen group."""
    for r in reversed(s.rounds):
        stored = (r.get("brackets") or {}).get(str(group))
        if stored:
            b = documents.bracket_of(stored)
            return r["index"], b.low, b.high
    return None


def _plot_curves(s: Summary) -> Path | None:
    fig = figure_curves(s)
    return None if fig is None else _save(fig, s.folder / CURVES)


def figure_curves(s: Summary):
    """The metric over epochs for the finalists (a matplotlib Figure, not saved; None when no trial
    reached the chosen epoch): the ``FINALISTS`` best trials among those that reached it (solid; train
    loss dashed), the winner thicker."""
    m = s.metric
    reached = [c for c in s.table if len(c.epochs) >= s.epoch and math.isfinite(c.score_at(s.epoch))]
    reached.sort(key=lambda c: (c.score_at(s.epoch), c.trial))
    finalists = reached[:FINALISTS]
    if not finalists:
        return None
    fig, ax = _figure((8, 5))
    colours = _colours(len(finalists))
    several_optimizers = len({c.optimizer for c in finalists}) > 1
    values = []
    for colour, c in zip(colours, finalists):
        xs = list(c.epochs)
        ys = [v if v is not None and math.isfinite(v) else math.nan for v in c.values]
        win = c.trial == s.best_trial["trial_id"]
        extra = []
        if c.law != "constant":
            extra.append(c.law)
        if several_optimizers:
            extra.append(c.optimizer)
        label = f"lr {c.lr:.3g} (round {c.round}{', ' + ', '.join(extra) if extra else ''})" + (" best" if win else "")
        ax.plot(xs, ys, color=colour, linewidth=2.4 if win else 1.3, label=label, zorder=3 if win else 2)
        values += [y for y in ys if math.isfinite(y)]
        if m != "train_loss":
            tr = [(e, v) for e, v in zip(c.epochs, c.train_loss) if v is not None and math.isfinite(v)]
            if tr:
                ax.plot(*zip(*tr), color=colour, linewidth=0.9, linestyle="--", alpha=0.7)
                values += [y for _, y in tr]
    ax.axvline(s.epoch, color="grey", linestyle=":", linewidth=1, label=f"compared at epoch {s.epoch}")
    if values and min(values) > 0 and max(values) / min(values) > 20:
        _log_y(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{m} (solid); train_loss (dashed)")
    ax.set_title(f"{s.folder.name}: the {len(finalists)} best trials that reached epoch {s.epoch}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.subplots_adjust(**_MARGINS)
    return fig
