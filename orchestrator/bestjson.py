"""``best.json``: the pick of a sweep as a JSON document (``best_json``), from the one ``analysis.Summary``.
``report.build`` writes it beside ``report.md``; ``tbsummary.pick_of`` reads it back for TensorBoard.
Pure: imports neither Ray, torch nor matplotlib.
"""

from __future__ import annotations

from typing import Any

from orchestrator import cost as costs
from orchestrator.analysis import Summary, read_config


def best_json(s: Summary) -> dict[str, Any]:
    """What best.json holds: ``lr`` (the chosen rate) and next to it ``METRIC``, the chosen rate's own score
    (``score``: its ``value``, ``statistic`` such as 'mean of epochs 25-27' at ``epoch``, ``interpolated``,
    the ``trials`` it comes from and ``source``, those in words); ``band`` (``low``, ``high`` rates,
    ``noise`` and ``threshold`` in the metric's units, ``trials`` in it, ``sigmas``); ``best_trial`` (its
    ``score`` under the same statistic, ``METRIC`` at that epoch); ``mode`` and ``target``; the cost in epochs
    and ``cost`` in real units (``cost.Cost.stored``: ``wall_s``, ``trial_hours``, ``cpu_hours``,
    ``gpu_hours`` and ``gpu_hours_by_kind``, ``money`` in ``currency``, ``text``: the final line's phrase), its
    ``rounds`` (each: ``round``, its own cost, the ``lr`` and ``band_low``/``band_high`` had the sweep stopped
    after it, ``moved_decades``, ``narrowed_decades``) and the closing ``advice``; ``warm_start``: 'warm-started
    from RUN (...)' or None; ``batch_size``: the batch the rate was searched at (``batch_size``)."""
    own = s.score
    return {
        "config": s.chosen,
        "lr": s.lr,
        "metric": s.metric,
        "mode": str(s.mode),
        "target": s.goal.target,
        s.metric: own.value if own else None,
        "score": {
            "value": own.value if own else None,
            "statistic": s.statistic,
            "epoch": s.epoch,
            "interpolated": own.interpolated if own else None,
            "trials": list(own.trials) if own else [],
            "source": own.label(s.rate_of) if own else None,
        },
        "band": s.band.stored() if s.band else None,
        "interpolated": s.interpolated,
        "epoch": s.epoch,
        "epochs_spent": s.epochs,
        "fte": s.fte,
        "trials": s.trials,
        "best_trial": s.best_trial,
        "stop_reason": s.stop_reason,
        "warnings": s.warnings,
        "notes": s.notes,
        "cost": _cost_json(s),
        "warm_start": s.warm,
        "batch_size": batch_size(s),
    }


def batch_size(s: Summary) -> dict[str, Any] | None:
    """The batch size the rate was searched at: ``value`` (the chosen config's, per worker), ``auto`` (found
    automatically: ``batch_size: auto`` in the stored sweep.yaml) and ``text``; None without one."""
    value = s.chosen.get("batch_size")
    if value is None:
        return None
    space = read_config(s.folder)[0].get("space")
    auto = isinstance(space, dict) and space.get("batch_size") == "auto"
    how = " (found automatically: batch_size: auto, the largest that fits)" if auto else ""
    return {"value": value, "auto": auto, "text": f"the {s.param} was searched at batch size {value}{how}"}


def _cost_json(s: Summary) -> dict[str, Any] | None:
    if s.cost is None:
        return None
    rounds = []
    for before, p in zip([None, *s.round_picks], s.round_picks):
        rounds.append(
            {
                "round": p.index,
                **p.cost.stored(),
                "lr": p.lr,
                "band_low": p.low if p.measured else None,
                "band_high": p.high if p.measured else None,
                "moved_decades": costs.moved(before, p),
                "narrowed_decades": costs.narrowed(before, p),
            }
        )
    return {**s.cost.stored(), "rounds": rounds, "advice": s.advice}
