"""The report: renderers over ``analysis`` (which reads a stored sweep folder and works out the pick).

From a sweep folder alone (``trials.parquet`` and ``rounds.json``: any finished or interrupted sweep,
local or copied from a cluster), ``build`` writes beside them:

- ``best.json``: the chosen configuration and rate, the chosen rate's own score (``score``: the trial at
  that rate, or interpolated between its neighbours, labelled), the band of rates the sweep cannot tell
  apart from the best (``band``), the best trial actually run, the cost (``bestjson.best_json``);
- ``report.md``: the choice, why the zoom chose each round's bracket, the best learning rate per decay law
  and per optimizer, the winner's train/validation gap, the cost in epochs and FTE and in real units (training
  span, trial-hours, GPU-hours, money), what each round cost and bought, the closing advice, all trials;
- ``val_loss_vs_lr.png``: the metric against the learning rate (log axis), one colour per round, the
  last bracket and the band shaded;
- ``val_curves.png``: the metric over epochs of the finalists (train loss dashed); both drawn by ``plots``.

``terminal_table`` is the table of all trials that ``sweep report`` prints. Every renderer takes the one
``analysis.Summary`` (which carries the trial table).
Statistics carry one name each everywhere (``curves.mean_label``, ``curves.best_label``, ``curves.LAST``);
a "bracket" is always the range of rates the zoom searched in a round, "rates tried" the range its trials ran.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orchestrator import analysis, cost as costs, documents, noise, plots, results, zoom
from orchestrator.analysis import Summary, train_val_gap
from orchestrator.bestjson import batch_size, best_json
from orchestrator.curves import LAST, best_by, best_label, group_label, law_of, optimizer_of, ordered, score_label
from orchestrator.plots import CURVES
from orchestrator.space import nice

__all__ = ["Summary", "build", "markdown", "summarise", "terminal_table"]

summarise = analysis.summarise


# --- writing ---------------------------------------------------------------------------------------
def build(folder: str | Path) -> Summary:
    """Summarise a sweep folder (``analysis.summarise``, once) and write best.json, report.md and the plots.
    Raises ``results.ResultsError`` (one line) like ``analysis.summarise``."""
    s = analysis.summarise(folder)
    results.write_json(s.folder / "best.json", best_json(s))
    results.atomic_write_bytes(s.folder / "report.md", markdown(s, plots.write(s)).encode())
    return s


def cost_lines(s: Summary) -> list[str]:
    """The cost in real units, one markdown bullet, and the closing advice (report.md, ``sweep report``)."""
    if s.cost is None:
        return []
    return [f"- Cost in real units: {s.cost.text()}"] + ([f"- Advice: {s.advice}"] if s.advice else [])


def _rounds_cost_table(s: Summary) -> list[str]:
    """report.md's table of what each round cost and how it moved the pick and its band."""
    m = s.cost.currency if s.cost else "USD"
    lines = [
        "| round | trials | epochs | training span (s) | trial-hours | GPU-hours | CPU-hours | money "
        f"({m}) | pick after it ({s.param}) | moved (decades) | band after it | narrowed (decades) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for before, p in zip([None, *s.round_picks], s.round_picks):
        c = p.cost
        band = (
            f"{p.low:.4g} .. {p.high:.4g}"
            if p.measured and p.low is not None and p.high is not None
            else "not measured"
        )
        lines.append(
            f"| {p.index} | {c.trials} | {c.epochs} | {_num(c.wall_s, '.0f')} | {c.trial_hours:.3g} | "
            f"{c.gpu_total:.3g} | {c.cpu_hours:.3g} | {_num(c.money, '.2f')} | {_num(p.lr, '.4g')} | "
            f"{_num(costs.moved(before, p), '.2f')} | {band} | {_num(costs.narrowed(before, p), '.2f')} |"
        )
    return lines


def _num(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _bracket_text(brackets: dict[str, Any], meta: dict[str, Any]) -> str:
    parts = []
    for g, stored in sorted(brackets.items(), key=lambda kv: int(kv[0])):
        b = documents.bracket_of(stored)
        span = f"{nice(b.low):.3g} .. {nice(b.high):.3g}"
        parts.append(
            span
            if len(brackets) == 1 and len(meta.get("groups") or [{}]) <= 1
            else f"{group_label(meta, int(g))}: {span}"
        )
    return "; ".join(parts) or "n/a"


def markdown(s: Summary, figures: list[Path]) -> str:
    """report.md: the choice and why, the rounds, the bests per law and optimizer, every trial."""
    m = s.metric
    bt = s.best_trial
    param = s.param
    batch = batch_size(s)
    lines = [
        f"# Sweep report: {s.folder.name}",
        "",
        f"**Chosen learning rate: {s.lr:.4g}**: the smooth minimum of a parabola fitted in log-{param} space "
        f"through the best trials, each scored by its {score_label(m, s.epoch)}"
        f"{' (higher is better)' if s.mode is results.Mode.MAX else ''}"
        + (
            f"; fitted on {s.coarse_data:.0%} of the data, then trained once on all of it (round {s.confirmed})."
            if s.confirmed is not None
            else "."
        ),
        "",
        f"- Chosen: {s.chosen_text()}",
        *([f"- Batch size: {batch['text']}"] if batch and batch["auto"] else []),
        f"- Best trial run: `{bt['trial_id']}` at {param} {bt.get(param, float('nan')):.4g}: {m} {_fmt(s.value)} "
        f"({s.statistic})",
        *([f"- Data: {s.data_text()}"] if s.data_text() else []),
    ]
    if s.confirmed is not None:
        lines.append(
            f"- Band: not measured: one full-data trial, the one at the pick (round {s.confirmed}), cannot tell "
            f"which rates score the same; the trials on {s.coarse_data:.0%} of the data are not compared with it"
        )
    if s.band:
        lines.append(
            f"- Band: {param} {s.band.low:.4g} .. {s.band.high:.4g}: the rates this sweep cannot tell apart "
            f"from its best trial, given the seed noise it measured ("
            + (
                f"noise {s.band.noise:.4f}: trials within {noise.BAND_SIGMAS:g} x noise of the best, "
                f"{s.band.trials} trial(s)"
                if s.band.noise is not None
                else "not measured: fewer than 4 trials near the best"
            )
            + ")"
        )
    lines.append("")
    edge = edge_warning(s)
    lines += [f"**Warning:** {edge}", ""] if edge else []
    lines += [f"The pick was {n}." for n in s.notes] + ([""] if s.notes else [])
    if s.interpolated:
        lines += ["The chosen rate is a fit, not a trial that ran: retrain it fully to confirm.", ""]
    lines += [
        "## Chosen configuration",
        "",
        "```json",
        json.dumps(s.chosen, indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Summary",
        "",
        f"- Best trial run: `{bt['trial_id']}` at {param} {bt.get(param, float('nan')):.4g}, at epoch "
        f"{bt['epoch']}: {m} {_fmt(bt.get(m))}, train_loss {_fmt(bt.get('train_loss'))}, val_error "
        f"{_fmt(bt.get('val_error'))} ({bt['status']})",
    ]
    gap = train_val_gap(s)
    if gap is not None:
        flag = "" if gap[1] == "normal" else "**Warning:** "
        lines.append(f"- {flag}Train/validation gap of the winner: {gap[0]:+.4f}: {gap[1]}")
    lines += [
        f"- Cost: {s.epochs} epochs = {s.fte:.2f} FTE (full-training equivalents of "
        f"{s.max_epochs} epochs) over {s.trials} trials and {len(s.rounds)} rounds"
        + (
            f"; FTE counts the data seen: an epoch on {s.coarse_data:.0%} of the training data counts "
            f"{s.coarse_data:g} of an epoch"
            if s.coarse_data < 1
            else ""
        )
        + (f"; {s.seconds:.0f} s of training time" if s.seconds else ""),
        f"- Stopped because: {s.stop_reason or 'n/a (interrupted?)'}",
        *([f"- Warm start: {s.warm}"] if s.warm else []),
    ] + cost_lines(s)[:1]

    best_name = best_label(s.mode)
    lines += [
        "",
        "## Rounds: where the zoom looked and why",
        "",
        f"| round | trials | epochs | bracket ({param}) | rates tried | {m}, {best_name} | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, stat in zip(s.rounds, analysis.round_stats(s)):
        tried = [c.lr for c in s.table if c.round == r["index"]]
        span = f"{min(tried):.4g} .. {max(tried):.4g}" if tried else "n/a"
        lines.append(
            f"| {r['index']} | {r.get('points', stat.trials)} | {stat.epochs} | "
            f"{_bracket_text(r.get('brackets') or {}, s.meta)} | {span} | {_fmt(stat.best)} | "
            f"{r.get('reason', '')} |"
        )
    lines += [
        "",
        "The bracket is the range of rates the zoom searched in that round (round 0: the configured coarse "
        "grid); rates tried is the range its trials ran at. Later rounds add only points not tried before.",
    ]
    if s.round_picks:
        lines += (
            ["", "## Cost per round, and what it bought", ""]
            + _rounds_cost_table(s)
            + [
                "",
                "Each round's own trials' cost (trial-hours: training time summed over trials; GPU- and CPU-hours: "
                "trial-hours x the GPUs and CPUs a trial holds, from the config's resources; training span: its first "
                "epoch's start to its last epoch's end), and the pick and band the sweep would have had had it "
                "stopped after that round (recomputed from the trials of that round and the earlier ones).",
                "",
                f"**Advice: {s.advice}**",
            ]
        )

    for title, label in (("decay law", law_of), ("optimizer", optimizer_of)):
        lines += [
            "",
            f"## Best learning rate per {title}",
            "",
            f"| {title} | trials | best {param} | {m}, mean of the last {zoom.SMOOTH_EPOCHS} epochs "
            f"| up to epoch | trial |",
            "|---|---|---|---|---|---|",
        ]
        for b in best_by(s.table, label):
            lines.append(
                f"| {b.key} | {b.trials} | {b.lr:.4g} | {_fmt(b.value)} | {b.epoch or 'n/a'} | `{b.trial_id}` |"
            )
    lines += [
        "",
        f"Each row compares its own trials the way the zoom does: at their common epoch (trials stopped "
        f"early are not compared as if they had finished), by the mean of its {m} over the last "
        f"{zoom.SMOOTH_EPOCHS} epochs up to it.",
    ]

    lines += [
        "",
        "## Trials",
        "",
        f"| trial | round | {param} | law | optimizer | epochs | status | {m}, {best_name} | {m}, {LAST} "
        f"| train_loss, {LAST} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ordered(s.table):
        mark = " **(best)**" if c.trial == bt["trial_id"] else ""
        lines.append(
            f"| `{c.trial}`{mark} | {c.round} | {c.lr:.4g} | {c.law} | {c.optimizer} | "
            f"{len(c.epochs)} | {c.status} | {_fmt(c.best)} | {_fmt(c.last)} | "
            f"{_fmt(c.final('train_loss'))} |"
        )
    errors = [c for c in ordered(s.table) if c.error]
    if errors:
        lines += ["", "### Errors", ""] + [f"- `{c.trial}`: {c.error}" for c in errors]
    checks = results.read_json(s.folder / "preflight.json")
    if checks:
        lines += [
            "",
            "## Pre-flight checks (before the fan-out)",
            "",
            "| check | status | measured | advice |",
            "|---|---|---|---|",
        ]
        lines += [f"| {c['name']} | {c['status']} | {c['measured']} | {c['advice']} |" for c in checks]
    for p in figures:
        alt = "validation curves of the finalists" if p.name == CURVES else f"{m} against learning rate"
        lines += ["", f"![{alt}]({p.name})"]
    return "\n".join(lines) + "\n"


def edge_warning(s: Summary) -> str | None:
    """A sentence when the chosen rate sits on the lowest or highest rate its group tried (the best may
    lie past it), else None."""
    tried = [c.lr for c in s.table if c.group == s.group]
    if len(set(tried)) < 2:
        return None
    low, high = min(tried), max(tried)
    side = "lowest" if s.lr <= low * (1 + 1e-9) else "highest" if s.lr >= high * (1 - 1e-9) else None
    if side is None:
        return None
    return (
        f"the chosen {s.param} {s.lr:.4g} is the {side} rate tried ({low:.4g} .. {high:.4g}): the best may "
        f"lie {'below' if side == 'lowest' else 'above'} it; widen space.{s.param} past it and run again."
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "n/a"
    return f"{v:.4f}"


def terminal_table(source: Summary | str | Path) -> str:
    """All trials as a fixed-width text table (what ``sweep report`` prints); the best trial run is
    marked ``*``. ``source``: a Summary, or a sweep folder to summarise (raises ``results.ResultsError``
    like ``build``)."""
    s = source if isinstance(source, Summary) else analysis.summarise(source)
    m = s.metric
    multi = len({c.group for c in s.table}) > 1
    best_name, last = f"{m}, {best_label(s.mode).replace(' at any epoch', '')}", f"{m}, last"
    header = (
        ["trial", "round"]
        + (["group"] if multi else [])
        + ["lr", "law", "optimizer", "epochs", "status", best_name, last, "val_error, last"]
    )
    table = []
    for c in ordered(s.table):
        table.append(
            [c.trial + (" *" if c.trial == s.best_trial["trial_id"] else ""), str(c.round)]
            + ([group_label(s.meta, c.group)] if multi else [])
            + [
                f"{c.lr:.4g}",
                c.law,
                c.optimizer,
                str(len(c.epochs)),
                str(c.status),
                _fmt(c.best),
                _fmt(c.last),
                _fmt(c.final("val_error")),
            ]
        )
    numeric = {"round", "lr", "epochs", best_name, last, "val_error, last"}
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if h in numeric else c.ljust(w) for c, w, h in zip(cells, widths, header)).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in table]
    out.append(f"columns: {best_name.split(', ')[1]} = {best_label(s.mode)}, last = {LAST}")
    out.append(f"* best trial run: lr {s.best_trial['lr']:.4g}, {m} {s.value:.4f} ({s.statistic})")
    out += [line[2:] for line in cost_lines(s)]
    return "\n".join(out)
