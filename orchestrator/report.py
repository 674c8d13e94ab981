"""The report aggregator: from a stored sweep folder alone, the chosen configuration and why.

Reads ``trials.parquet`` and ``rounds.json`` (nothing else: works on any finished or interrupted sweep
folder, local or copied from a cluster) and writes beside them:

- ``best.json``: the chosen configuration, the best score measured (``METRIC``: the best trial's, which is
  not a score of the chosen rate when that rate is a fit between trials: then ``interpolated`` is true),
  the best trial actually run, the cost;
- ``report.md``: the choice, why the zoom chose each round's bracket, the best learning rate per decay law
  and per optimizer, the winner's train/validation gap, the cost in epochs and FTE, all trials;
- ``val_loss_vs_lr.png``: the metric against the learning rate (log axis), one colour per round, the
  chosen bracket shaded;
- ``val_curves.png``: the metric over epochs of the finalists (train loss dashed).

``terminal_table(folder)`` is the table of all trials that ``sweep report`` prints.
"""
from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import results, zoom
from orchestrator.space import nice

PLOT = "val_loss_vs_lr.png"
CURVES = "val_curves.png"
FINALISTS = 6  # curves drawn in val_curves.png
GAP_OVERFIT = 0.5  # (val - train) / val above this: overfitting
GAP_LEAK = -0.1  # (val - train) / train below this: validation better than training by >10%


@dataclass
class Summary:
    folder: Path
    chosen: dict[str, Any]
    lr: float
    value: float
    epoch: int
    metric: str
    epochs: int
    fte: float
    trials: int
    rounds: list[dict[str, Any]]
    stop_reason: str | None
    best_trial: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the pick was made, where it is not the plain fit
    where: str = ""  # where the results are stored when that is not ``folder`` (a URI; ``folder`` its local copy)
    interpolated: bool = False  # the chosen rate is a fit between trials: no trial ran at it

    def line(self) -> str:
        """One line: the chosen rate and the best score measured; when the rate is a fit between trials,
        the score is labelled as the best trial's (at its own rate), never as the chosen rate's."""
        score = f"{self.metric}={self.value:.4f} (mean of epochs {max(1, self.epoch - 2)}-{self.epoch})"
        if self.interpolated:
            score = (f"(fitted between trials, not trained; best trial: lr={self.best_trial['lr']:.3g} "
                     f"{score})")
        return (f"chosen lr={self.lr:.3g}  {score}  "
                f"cost={self.epochs} epochs ({self.fte:.1f} FTE, {self.trials} trials, {len(self.rounds)} rounds)  "
                f"results: {self.where or self.folder}")


# --- reading ---------------------------------------------------------------------------------------
def trial_table(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by trial id, each list sorted by epoch (a trial that errored before reporting has
    one row with ``epoch`` None)."""
    by_trial: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_trial[r["trial_id"]].append(r)
    for v in by_trial.values():
        v.sort(key=lambda r: r["epoch"] or 0)
    return dict(by_trial)


def epochs_of(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one trial that are epochs (not the placeholder row of a trial with no result)."""
    return [r for r in rs if r["epoch"] is not None]


def observations(by_trial: dict[str, list[dict[str, Any]]], metric: str) -> list[zoom.Observation]:
    obs = []
    for rs in by_trial.values():
        first = rs[0]
        curve = tuple(_finite(r[metric]) for r in epochs_of(rs))
        if curve and first["lr"] and first["lr"] > 0:
            obs.append(zoom.Observation(first["group"], math.log10(first["lr"]), first["round"], curve, True))
    return obs


def config_of(rs: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        return json.loads(rs[0].get("config") or "{}")
    except json.JSONDecodeError:
        return {}


def law_of(config: dict[str, Any]) -> str:
    """The decay law a trial ran with: ``schedule`` ('constant' if absent), '+ warmup N' when it has one."""
    law = str(config.get("schedule") or "constant")
    warmup = config.get("warmup") or 0
    return f"{law} + warmup {warmup}" if warmup else law


def optimizer_of(config: dict[str, Any]) -> str:
    return str(config.get("optimizer") or "sgd")


def _finite(v: Any) -> float:
    return v if v is not None and math.isfinite(v) else math.inf


def observation(rs: list[dict[str, Any]], metric: str) -> zoom.Observation:
    first = rs[0]
    x = math.log10(first["lr"]) if first["lr"] and first["lr"] > 0 else 0.0
    return zoom.Observation(first["group"], x, first["round"], tuple(_finite(r[metric]) for r in epochs_of(rs)), True)


def score_at(rs: list[dict[str, Any]], epoch: int, metric: str) -> float:
    """The trial's score at ``epoch`` as the zoom compares it (``zoom.score``: the metric averaged over the
    last few epochs up to ``epoch``); inf when diverged or not reached."""
    o = observation(rs, metric)
    if epoch < 1 or not o.reached(epoch):
        return math.inf
    return zoom.score(o, epoch)


def score_label(metric: str, epoch: int) -> str:
    k = min(zoom.SMOOTH_EPOCHS, epoch)
    return f"{metric} at epoch {epoch}" if k <= 1 else f"{metric} averaged over epochs {epoch - k + 1}-{epoch}"


def _value_at(rs: list[dict[str, Any]], epoch: int, key: str) -> Any:
    for r in rs:
        if r["epoch"] == epoch:
            return r.get(key)
    return None


def _load(folder: str | Path) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    folder = Path(folder)
    rows = results.read_trials(folder)
    meta = results.read_json(folder / results.ROUNDS) or {}
    return folder, rows, meta


def _max_epochs(rows: list[dict[str, Any]], meta: dict[str, Any]) -> int:
    if meta.get("max_epochs"):
        return int(meta["max_epochs"])
    for r in rows:
        cfg = config_of([r])
        if cfg.get("max_epochs"):
            return int(cfg["max_epochs"])
    return max((r["epoch"] or 0 for r in rows), default=0) or 1


def summarise(folder: str | Path) -> Summary:
    folder, rows, meta = _load(folder)
    return _summarise(folder, rows, meta)


def _summarise(folder: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Summary:
    metric = meta.get("metric", "val_loss")
    param = meta.get("param", "lr")
    max_epochs = _max_epochs(rows, meta)
    by_trial = trial_table(rows)
    obs = observations(by_trial, metric)
    if not obs:
        raise results.NoMetricError(_no_metric(folder, by_trial, meta))
    # sweeps written before the cliff guard existed keep the pick they made
    margin = meta.get("cliff_margin")
    pick = zoom.choose(obs, margin=margin)
    group, x, value, epoch = pick.group, pick.x, pick.value, pick.epoch
    lr = nice(10**x)
    notes = []
    if margin is not None:
        free = zoom.choose(obs, margin=None).x
        if free > x + 1e-9:
            notes.append(f"kept {margin:g} decade(s) below {param} {nice(10 ** (x + margin)):.4g}, the first rate above "
                         f"the best that did {zoom.CLIFF_RATIO:g}x worse or diverged (the fit alone gave "
                         f"{nice(10**free):.4g}); next to that cliff one seed's result is a coin toss "
                         f"(zoom.cliff_margin)")
    # the best trial actually run, in the chosen group, at the comparison epoch
    candidates = [rs for rs in by_trial.values() if rs[0]["group"] == group and len(epochs_of(rs)) >= epoch]
    best_rows = min(candidates, key=lambda rs: (score_at(rs, epoch, metric), rs[0]["trial_id"]))
    config = config_of(best_rows)
    chosen = {k: v for k, v in config.items() if k not in ("round", "group", "seed_offset") and not k.startswith("_")}
    chosen[param] = lr
    best_trial = {"trial_id": best_rows[0]["trial_id"], param: best_rows[0]["lr"], "epoch": epoch,
                  "score": score_at(best_rows, epoch, metric),
                  metric: _value_at(best_rows, epoch, metric), "val_loss": _value_at(best_rows, epoch, "val_loss"),
                  "train_loss": _value_at(best_rows, epoch, "train_loss"),
                  "val_error": _value_at(best_rows, epoch, "val_error"), "status": best_rows[-1]["status"]}
    epochs = sum(len(epochs_of(rs)) for rs in by_trial.values())
    interpolated = not any(abs(rs[0]["lr"] - lr) <= 1e-9 * lr for rs in by_trial.values() if rs[0]["group"] == group)
    s = Summary(folder, chosen, lr, value, epoch, metric, epochs, epochs / max_epochs, len(by_trial),
                meta.get("rounds", []), meta.get("stop_reason"), best_trial, notes=notes, interpolated=interpolated)
    gap = train_val_gap(s)
    if gap is not None and gap[1] != "normal":
        s.warnings.append(f"train/validation gap of the winner {gap[0]:+.4f}: {gap[1]}")
    return s


def _no_metric(folder: Path, by_trial: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    """One line for a folder where no trial reported a metric: why the search stopped (rounds.json) and
    the first error recorded, so that a workload that crashes at every rate is named, not waited for."""
    message = f"{folder}: no trial reported a metric"
    if meta.get("stop_reason"):
        message += f" (the search stopped: {meta['stop_reason']})"
    errored = [(tid, rs[-1]) for tid, rs in _ordered(by_trial) if rs[-1].get("error")]
    if errored:
        tid, row = errored[0]
        error = " ".join(str(row["error"]).split())[:300]
        message += f"; {len(errored)} of {len(by_trial)} trials errored, first `{tid}` at lr {row['lr']:.4g}: {error}"
    return message


def train_val_gap(s: Summary) -> tuple[float, str] | None:
    """(validation - training loss of the best trial at the chosen epoch, verdict), or None if unknown.
    Training loss is the mean over the epoch as it trained, so a small negative gap is normal."""
    val, train = s.best_trial.get("val_loss"), s.best_trial.get("train_loss")
    if val is None or train is None or not (math.isfinite(val) and math.isfinite(train)):
        return None
    gap = val - train
    if gap > GAP_OVERFIT * max(abs(val), 1e-12):
        return gap, (f"large: overfitting, validation loss {val / max(train, 1e-12):.1f}x the training loss; "
                     f"try weight decay, dropout or fewer epochs")
    if gap < GAP_LEAK * max(abs(train), 1e-12):
        return gap, "negative: validation loss well below training loss; check for a train/validation leak"
    return gap, "normal"


# --- per decay law / per optimizer ------------------------------------------------------------------
@dataclass
class Best:
    key: str
    trials: int
    trial_id: str
    lr: float
    value: float
    epoch: int


def best_by(by_trial: dict[str, list[dict[str, Any]]], metric: str, label) -> list[Best]:
    """For each value of ``label(config)``: the trial with the lowest score among those trials, compared
    the way the zoom compares (``zoom.comparison_epoch``: trials stopped early are not compared as if they
    had finished; ``zoom.score``). Sorted best first."""
    subsets: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for rs in by_trial.values():
        subsets[label(config_of(rs))].append(rs)
    out = []
    for key, members in subsets.items():
        obs = [observation(rs, metric) for rs in members if epochs_of(rs)]
        epoch = zoom.comparison_epoch(obs) if obs else 0
        if epoch < 1:
            out.append(Best(key, len(members), members[0][0]["trial_id"], members[0][0]["lr"], math.inf, 0))
            continue
        rs = min(members, key=lambda rs: (score_at(rs, epoch, metric), rs[0]["trial_id"]))
        out.append(Best(key, len(members), rs[0]["trial_id"], rs[0]["lr"], score_at(rs, epoch, metric), epoch))
    return sorted(out, key=lambda b: (b.value, b.key))


# --- writing ---------------------------------------------------------------------------------------
def build(folder: str | Path) -> Summary:
    """Summarise a sweep folder and write best.json, report.md and the plots."""
    folder, rows, meta = _load(folder)
    s = _summarise(folder, rows, meta)
    results.write_json(s.folder / "best.json", {
        "config": s.chosen, "lr": s.lr, "interpolated": s.interpolated, s.metric: s.value, "epoch": s.epoch,
        "epochs_spent": s.epochs, "fte": s.fte, "trials": s.trials,
        "best_trial": s.best_trial, "stop_reason": s.stop_reason, "warnings": s.warnings, "notes": s.notes,
    })
    plots = [p for p in (_plot_vs_lr(s, rows, meta), _plot_curves(s, rows)) if p is not None]
    results.atomic_write_bytes(s.folder / "report.md", markdown(s, rows, meta, plots).encode())
    return s


def _group_label(meta: dict[str, Any], group: int) -> str:
    groups = meta.get("groups") or []
    if 0 <= group < len(groups) and groups[group]:
        return ", ".join(f"{k}={v}" for k, v in sorted(groups[group].items()))
    return f"group {group}"


def _bracket_text(brackets: dict[str, Any], meta: dict[str, Any]) -> str:
    parts = []
    for g, (centre, half) in sorted(brackets.items(), key=lambda kv: int(kv[0])):
        span = f"{nice(10 ** (centre - half)):.3g} .. {nice(10 ** (centre + half)):.3g}"
        parts.append(span if len(brackets) == 1 and len(meta.get("groups") or [{}]) <= 1
                     else f"{_group_label(meta, int(g))}: {span}")
    return "; ".join(parts) or "n/a"


def markdown(s: Summary, rows: list[dict[str, Any]], meta: dict[str, Any], plots: list[Path]) -> str:
    by_trial = trial_table(rows)
    m = s.metric
    bt = s.best_trial
    param = meta.get("param", "lr")
    lines = [
        f"# Sweep report: {s.folder.name}", "",
        f"**Chosen learning rate: {s.lr:.4g}**: the smooth minimum of a parabola fitted in log-{param} space "
        f"through the best trials, each scored by its {score_label(m, s.epoch)}; the best score is "
        f"{s.value:.4f}.", "",
    ]
    lines += [f"The pick was {n}." for n in s.notes] + ([""] if s.notes else [])
    if s.interpolated:
        near = min(by_trial.values(), key=lambda rs: (abs(math.log10(rs[0]["lr"] / s.lr)), rs[0]["trial_id"]))
        lines += [f"The chosen rate is a fit, not a trial that ran: retrain it fully to confirm. The best trial "
                  f"run is `{bt['trial_id']}` at {param} {bt.get(param, float('nan')):.4g}; the nearest trial to "
                  f"the chosen rate, `{near[0]['trial_id']}` at {param} {near[0]['lr']:.4g}, scored "
                  f"{_fmt(score_at(near, s.epoch, m))}.", ""]
    lines += ["## Chosen configuration", "", "```json", json.dumps(s.chosen, indent=2, sort_keys=True, default=str),
              "```", "",
              "## Summary", "",
              f"- Best trial run: `{bt['trial_id']}` at {param} {bt.get(param, float('nan')):.4g}: {m} "
              f"{_fmt(bt.get(m))}, train_loss {_fmt(bt.get('train_loss'))}, val_error {_fmt(bt.get('val_error'))} "
              f"(epoch {bt['epoch']}, {bt['status']})"]
    gap = train_val_gap(s)
    if gap is not None:
        flag = "" if gap[1] == "normal" else "**Warning:** "
        lines.append(f"- {flag}Train/validation gap of the winner: {gap[0]:+.4f}: {gap[1]}")
    seconds = sum(r.get("epoch_seconds") or 0.0 for r in rows)
    lines += [f"- Cost: {s.epochs} epochs = {s.fte:.2f} FTE (full-training equivalents of "
              f"{_max_epochs(rows, meta)} epochs) over {s.trials} trials and {len(s.rounds)} rounds"
              + (f"; {seconds:.0f} s of training time" if seconds else ""),
              f"- Stopped because: {s.stop_reason or 'n/a (interrupted?)'}"]

    lines += ["", "## Rounds: where the zoom looked and why", "",
              f"| round | trials | epochs | bracket ({param}) | best {m} | why |", "|---|---|---|---|---|---|"]
    for r in s.rounds:
        members = [rs for rs in by_trial.values() if rs[0]["round"] == r["index"]]
        spent = sum(len(epochs_of(rs)) for rs in members)
        best = min((_finite(x[m]) for rs in members for x in epochs_of(rs)), default=math.inf)
        lines.append(f"| {r['index']} | {r.get('points', len(members))} | {spent} | "
                     f"{_bracket_text(r.get('brackets') or {}, meta)} | {_fmt(best)} | {r.get('reason', '')} |")
    lines += ["", "Brackets are the zoom's (centre +- half-width in decades); round 0 is the configured coarse grid. "
              "Later rounds add only points not tried before. Best is the lowest value reached at any epoch."]

    for title, label in (("decay law", law_of), ("optimizer", optimizer_of)):
        lines += ["", f"## Best learning rate per {title}", "",
                  f"| {title} | trials | best {param} | score ({m}) | at epoch | trial |", "|---|---|---|---|---|---|"]
        for b in best_by(by_trial, m, label):
            lines.append(f"| {b.key} | {b.trials} | {b.lr:.4g} | {_fmt(b.value)} | {b.epoch or 'n/a'} | `{b.trial_id}` |")
    lines += ["", f"Each row compares its own trials the way the zoom does: at their common epoch (trials stopped "
                  f"early are not compared as if they had finished), by the {m} averaged over the last "
                  f"{zoom.SMOOTH_EPOCHS} epochs up to it."]

    lines += ["", "## Trials", "",
              f"| trial | round | {param} | law | optimizer | epochs | status | best {m} | final {m} | final train_loss |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for tid, rs in _ordered(by_trial):
        ep = epochs_of(rs)
        cfg = config_of(rs)
        last = ep[-1] if ep else rs[-1]
        best = min((_finite(x[m]) for x in ep), default=math.inf)
        mark = " **(best)**" if tid == bt["trial_id"] else ""
        lines.append(f"| `{tid}`{mark} | {rs[0]['round']} | {rs[0]['lr']:.4g} | {law_of(cfg)} | {optimizer_of(cfg)} | "
                     f"{len(ep)} | {rs[-1]['status']} | {_fmt(best)} | {_fmt(last.get(m))} | "
                     f"{_fmt(last.get('train_loss'))} |")
    errors = [(tid, rs[-1].get("error")) for tid, rs in _ordered(by_trial) if rs[-1].get("error")]
    if errors:
        lines += ["", "### Errors", ""] + [f"- `{tid}`: {err}" for tid, err in errors]
    checks = results.read_json(s.folder / "preflight.json")
    if checks:
        lines += ["", "## Pre-flight checks (before the fan-out)", "", "| check | status | measured | advice |",
                  "|---|---|---|---|"]
        lines += [f"| {c['name']} | {c['status']} | {c['measured']} | {c['advice']} |" for c in checks]
    for p in plots:
        alt = "validation curves of the finalists" if p.name == CURVES else f"{m} against learning rate"
        lines += ["", f"![{alt}]({p.name})"]
    return "\n".join(lines) + "\n"


def _ordered(by_trial: dict[str, list[dict[str, Any]]]):
    return sorted(by_trial.items(), key=lambda kv: (kv[1][0]["round"], kv[1][0]["group"], kv[1][0]["lr"], kv[0]))


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "n/a"
    return f"{v:.4f}"


def terminal_table(folder: str | Path) -> str:
    """All trials as a fixed-width text table (what ``sweep report`` prints); the best trial run is
    marked ``*``. Raises ``results.ResultsError`` like ``build``."""
    folder, rows, meta = _load(folder)
    s = _summarise(folder, rows, meta)
    by_trial = trial_table(rows)
    m = s.metric
    multi = len({rs[0]["group"] for rs in by_trial.values()}) > 1
    header = ["trial", "round"] + (["group"] if multi else []) + [
        "lr", "law", "optimizer", "epochs", "status", f"best {m}", f"final {m}", "val_error"]
    table = []
    for tid, rs in _ordered(by_trial):
        ep = epochs_of(rs)
        cfg = config_of(rs)
        last = ep[-1] if ep else rs[-1]
        best = min((_finite(x[m]) for x in ep), default=math.inf)
        table.append([tid + (" *" if tid == s.best_trial["trial_id"] else ""), str(rs[0]["round"])]
                     + ([_group_label(meta, rs[0]["group"])] if multi else [])
                     + [f"{rs[0]['lr']:.4g}", law_of(cfg), optimizer_of(cfg), str(len(ep)), str(rs[-1]["status"]),
                        _fmt(best), _fmt(last.get(m)), _fmt(last.get("val_error"))])
    numeric = {"round", "lr", "epochs", f"best {m}", f"final {m}", "val_error"}
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if h in numeric else c.ljust(w)
                         for c, w, h in zip(cells, widths, header)).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in table]
    if s.interpolated:
        out.append(f"* best trial run ({m} {s.value:.4f} at epoch {s.epoch}, lr {s.best_trial['lr']:.4g}); "
                   f"chosen lr {s.lr:.4g}: fitted between trials, not trained")
    else:
        out.append(f"* best trial run; chosen lr {s.lr:.4g} ({m} {s.value:.4f} at epoch {s.epoch})")
    return "\n".join(out)


# --- plots -----------------------------------------------------------------------------------------
_MARKERS = "osD^vP*X"
# fixed margins for an 8 x 5 inch figure with a two-line y label: tight_layout measured every tick
# label and took 40% of the report's time (0.4 s of 1.2 s a build on 2 cores)
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


def _plot_vs_lr(s: Summary, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path | None:
    return _save(figure_vs_lr(s, rows, meta), s.folder / PLOT)


def figure_vs_lr(s: Summary, rows: list[dict[str, Any]], meta: dict[str, Any]):
    """The metric against the learning rate (a matplotlib Figure, not saved): each trial that reported a
    result is one marker, its score (``zoom.score``) at the epoch the pick compared (filled), or at its
    last epoch when it stopped before (hollow); diverged trials as x on the top edge. One colour per
    round, one marker per group; the chosen group's last bracket shaded (``axvspan``); the chosen rate
    dashed (``axvline`` at ``s.lr``)."""
    by_trial = trial_table(rows)
    m = s.metric
    n_rounds = max(rs[0]["round"] for rs in by_trial.values()) + 1
    groups = sorted({rs[0]["group"] for rs in by_trial.values()})
    colours = _colours(n_rounds)
    fig, ax = _figure((8, 5))
    finite = [_finite(r[m]) for r in rows if r["epoch"] is not None]
    finite = [v for v in finite if math.isfinite(v)]
    top = max(finite) if finite else 1.0
    diverged_y = top * 1.5
    for k in range(n_rounds):
        for gi, g in enumerate(groups):
            full, partial, bad = [], [], []
            for rs in by_trial.values():
                if rs[0]["round"] != k or rs[0]["group"] != g:
                    continue
                ep = epochs_of(rs)
                if not ep:
                    continue
                if rs[-1]["status"] == "diverged" or not math.isfinite(_finite(ep[-1][m])):
                    bad.append(rs[0]["lr"])
                elif len(ep) >= s.epoch:
                    full.append((rs[0]["lr"], score_at(rs, s.epoch, m)))
                else:
                    partial.append((rs[0]["lr"], score_at(rs, len(ep), m)))
            marker = _MARKERS[gi % len(_MARKERS)]
            label = f"round {k}" + (f", {_group_label(meta, g)}" if len(groups) > 1 else "")
            if full:
                ax.scatter(*zip(*full), s=45, marker=marker, color=colours[k], label=label, zorder=3)
            if partial:
                ax.scatter(*zip(*partial), s=45, marker=marker, facecolors="none", edgecolors=colours[k],
                           label=None if full else label, zorder=3)
            if bad:
                ax.scatter(bad, [diverged_y] * len(bad), s=55, marker="x", color=colours[k], zorder=3)
    # the curve the pick was made on: the chosen group's trials at the comparison epoch
    chosen_group = next((rs[0]["group"] for rs in by_trial.values() if rs[0]["trial_id"] == s.best_trial["trial_id"]), 0)
    line = sorted((rs[0]["lr"], score_at(rs, s.epoch, m)) for rs in by_trial.values()
                  if rs[0]["group"] == chosen_group and math.isfinite(score_at(rs, s.epoch, m)))
    if len(line) > 1:
        ax.plot(*zip(*line), color="grey", linewidth=0.8, alpha=0.6, zorder=2, label=f"at epoch {s.epoch}")
    bracket = _chosen_bracket(s, chosen_group)
    if bracket:
        (k, lo, hi) = bracket
        ax.axvspan(lo, hi, color="orange", alpha=0.15, label=f"bracket of round {k}", zorder=1)
    ax.axvline(s.lr, color="red", linestyle="--", linewidth=1.2, label=f"chosen {s.lr:.3g}", zorder=4)
    ax.set_xscale("log")
    if finite and min(finite) > 0 and top / min(finite) > 20:
        _log_y(ax)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{score_label(m, s.epoch)}\n(hollow: at the epoch the trial stopped)")
    title = f"{s.folder.name}: {m} against learning rate"
    if any(rs[-1]["status"] == "diverged" for rs in by_trial.values()):
        title += " (x: diverged)"
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.subplots_adjust(**_MARGINS)
    return fig


def _chosen_bracket(s: Summary, group: int) -> tuple[int, float, float] | None:
    """(round, low, high) of the last round whose bracket covers the chosen group."""
    for r in reversed(s.rounds):
        b = (r.get("brackets") or {}).get(str(group))
        if b:
            centre, half = b
            return r["index"], 10 ** (centre - half), 10 ** (centre + half)
    return None


def _plot_curves(s: Summary, rows: list[dict[str, Any]]) -> Path | None:
    fig = figure_curves(s, rows)
    return None if fig is None else _save(fig, s.folder / CURVES)


def figure_curves(s: Summary, rows: list[dict[str, Any]]):
    """The metric over epochs for the finalists (a matplotlib Figure, not saved; None when no trial
    reached the chosen epoch): the ``FINALISTS`` best trials among those that reached it (solid; train
    loss dashed), the winner thicker."""
    by_trial = trial_table(rows)
    m = s.metric
    reached = [rs for rs in by_trial.values() if len(epochs_of(rs)) >= s.epoch
               and math.isfinite(score_at(rs, s.epoch, m))]
    reached.sort(key=lambda rs: (score_at(rs, s.epoch, m), rs[0]["trial_id"]))
    finalists = reached[:FINALISTS]
    if not finalists:
        return None
    fig, ax = _figure((8, 5))
    colours = _colours(len(finalists))
    values = []
    for c, rs in zip(colours, finalists):
        ep = epochs_of(rs)
        cfg = config_of(rs)
        xs = [r["epoch"] for r in ep]
        ys = [_finite(r[m]) for r in ep]
        win = rs[0]["trial_id"] == s.best_trial["trial_id"]
        extra = []
        if law_of(cfg) != "constant":
            extra.append(law_of(cfg))
        if len({optimizer_of(config_of(x)) for x in finalists}) > 1:
            extra.append(optimizer_of(cfg))
        label = f"lr {rs[0]['lr']:.3g} (round {rs[0]['round']}{', ' + ', '.join(extra) if extra else ''})" \
            + (" best" if win else "")
        ax.plot(xs, ys, color=c, linewidth=2.4 if win else 1.3, label=label, zorder=3 if win else 2)
        values += [y for y in ys if math.isfinite(y)]
        if m != "train_loss":
            tr = [(r["epoch"], r["train_loss"]) for r in ep if r.get("train_loss") is not None
                  and math.isfinite(r["train_loss"])]
            if tr:
                ax.plot(*zip(*tr), color=c, linewidth=0.9, linestyle="--", alpha=0.7)
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
