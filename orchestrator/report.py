"""The report aggregator: from a stored sweep folder alone, the chosen configuration and why.

Writes ``best.json``, ``report.md`` and ``val_loss_vs_lr.png`` beside ``trials.parquet``.
Works on any finished or interrupted sweep folder, local or copied from a cluster.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import results, zoom
from orchestrator.space import nice


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

    def line(self) -> str:
        return (f"chosen lr={self.lr:.3g}  {self.metric}={self.value:.4f} (epoch {self.epoch})  "
                f"cost={self.epochs} epochs ({self.fte:.1f} FTE, {self.trials} trials, {len(self.rounds)} rounds)  "
                f"results: {self.folder}")


def trial_table(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by trial id, each list sorted by epoch."""
    by_trial: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_trial[r["trial_id"]].append(r)
    for v in by_trial.values():
        v.sort(key=lambda r: r["epoch"] or 0)
    return dict(by_trial)


def observations(by_trial: dict[str, list[dict[str, Any]]], metric: str) -> list[zoom.Observation]:
    obs = []
    for rs in by_trial.values():
        first = rs[0]
        curve = tuple((r[metric] if r[metric] is not None and math.isfinite(r[metric]) else math.inf)
                      for r in rs if r["epoch"] is not None)
        if curve:
            obs.append(zoom.Observation(first["group"], math.log10(first["lr"]), first["round"], curve, True))
    return obs


def summarise(folder: str | Path) -> Summary:
    folder = Path(folder)
    rows = results.read_trials(folder)
    meta = results.read_json(folder / results.ROUNDS) or {}
    metric = meta.get("metric", "val_loss")
    param = meta.get("param", "lr")
    max_epochs = int(meta.get("max_epochs") or max(r["epoch"] or 0 for r in rows))
    by_trial = trial_table(rows)
    obs = observations(by_trial, metric)
    if not obs:
        raise results.ResultsError(f"{folder}: no trial reported a metric")
    group, x, value, epoch = zoom.choose(obs)
    lr = nice(10**x)
    # the best trial actually run, in the chosen group, at the comparison epoch
    candidates = [rs for rs in by_trial.values() if rs[0]["group"] == group and len(rs) >= epoch]
    best_rows = min(candidates, key=lambda rs: _finite(rs[epoch - 1][metric]))
    config = json.loads(best_rows[0]["config"] or "{}")
    chosen = {k: v for k, v in config.items() if k not in ("round", "group", "_cpus")}
    chosen[param] = lr
    best = best_rows[epoch - 1]
    best_trial = {"trial_id": best["trial_id"], param: best_rows[0]["lr"], "epoch": epoch,
                  metric: best[metric], "train_loss": best["train_loss"], "val_error": best["val_error"],
                  "status": best["status"]}
    epochs = sum(len(rs) for rs in by_trial.values())
    return Summary(folder, chosen, lr, value, epoch, metric, epochs, epochs / max_epochs, len(by_trial),
                   meta.get("rounds", []), meta.get("stop_reason"), best_trial)


def _finite(v: Any) -> float:
    return v if v is not None and math.isfinite(v) else math.inf


def build(folder: str | Path) -> Summary:
    """Summarise a sweep folder and write best.json, report.md and the plot."""
    s = summarise(folder)
    results.write_json(s.folder / "best.json", {
        "config": s.chosen, "lr": s.lr, s.metric: s.value, "epoch": s.epoch,
        "epochs_spent": s.epochs, "fte": s.fte, "trials": s.trials,
        "best_trial": s.best_trial, "stop_reason": s.stop_reason,
    })
    rows = results.read_trials(s.folder)
    plot_path = _plot(s, rows)
    results.atomic_write_bytes(s.folder / "report.md", _markdown(s, rows, plot_path).encode())
    return s


def _markdown(s: Summary, rows: list[dict[str, Any]], plot: Path | None) -> str:
    by_trial = trial_table(rows)
    gap = None
    if s.best_trial.get("train_loss") is not None and s.best_trial.get(s.metric) is not None:
        gap = s.best_trial[s.metric] - s.best_trial["train_loss"]
    lines = [
        f"# Sweep report: {s.folder.name}", "",
        f"**Chosen learning rate: {s.lr:.4g}** ({s.metric} {s.value:.4f} at epoch {s.epoch}, smooth fit in log space)",
        "", f"- Best trial run: `{s.best_trial['trial_id']}` at lr {s.best_trial.get('lr', float('nan')):.4g}: "
            f"{s.metric} {s.best_trial[s.metric]:.4f}, val_error {s.best_trial['val_error']}",
        f"- Cost: {s.epochs} epochs = {s.fte:.2f} FTE over {s.trials} trials",
        f"- Stopped because: {s.stop_reason or 'n/a'}",
    ]
    if gap is not None:
        verdict = "large: overfitting" if gap > 0.5 * max(s.best_trial[s.metric], 1e-12) else (
            "negative: check for a train/val leak" if gap < 0 else "normal")
        lines.append(f"- Train/validation gap of the winner: {gap:.4f} ({verdict})")
    lines += ["", "## Rounds", "", "| round | trials | why |", "|---|---|---|"]
    for r in s.rounds:
        lines.append(f"| {r['index']} | {r['points']} | {r['reason']} |")
    lines += ["", "## Trials", "", f"| trial | round | lr | epochs | status | final {s.metric} |", "|---|---|---|---|---|---|"]
    for tid, rs in sorted(by_trial.items(), key=lambda kv: (kv[1][0]["round"], kv[1][0]["lr"])):
        last = rs[-1]
        lines.append(f"| {tid} | {rs[0]['round']} | {rs[0]['lr']:.4g} | {len(rs)} | {last['status']} | {_fmt(last[s.metric])} |")
    if plot:
        lines += ["", f"![validation loss against learning rate]({plot.name})"]
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _plot(s: Summary, rows: list[dict[str, Any]]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_trial = trial_table(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    colours = plt.get_cmap("viridis")
    n_rounds = max(r[0]["round"] for r in by_trial.values()) + 1
    for k in range(n_rounds):
        pts = [(rs[0]["lr"], rs[-1][s.metric], len(rs)) for rs in by_trial.values() if rs[0]["round"] == k]
        finite = [(x, y, n) for x, y, n in pts if y is not None and math.isfinite(y)]
        if finite:
            ax.scatter([p[0] for p in finite], [p[1] for p in finite], s=[12 + 2 * p[2] for p in finite],
                       color=colours(k / max(1, n_rounds - 1)), label=f"round {k}", alpha=0.8)
    if s.rounds and len(s.rounds) > 1:
        centre, half = next(iter(s.rounds[-1]["brackets"].values()))
        ax.axvspan(10 ** (centre - half), 10 ** (centre + half), color="orange", alpha=0.15, label="last bracket")
    ax.axvline(s.lr, color="red", linestyle="--", label=f"chosen {s.lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"last reported {s.metric} (marker size: epochs trained)")
    ax.set_title(f"{s.folder.name}: {s.metric} against learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = s.folder / "val_loss_vs_lr.png"
    fig.savefig(path)
    plt.close(fig)
    return path
