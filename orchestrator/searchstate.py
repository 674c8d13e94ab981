"""A sweep config as the search's starting state: ``make_state`` builds the ``SweepState`` (the ``zoom.Rules``
from ``zoom:`` and the zoomed range, or a warm start's prior; the groups; the base trial config) and
``budget_of`` its real-unit ``Budget``. Pure: imports neither Ray nor torch."""

from __future__ import annotations

import math

from orchestrator import zoom
from orchestrator.budget import Budget, OnBudget
from orchestrator.config import SweepConfig
from orchestrator.state import SweepState
from orchestrator.warm import Prior


def make_state(cfg: SweepConfig, start: Prior | None = None) -> SweepState:
    """``start``: a warm start's prior (``reuse.warm_prior``): round 0 looks at its range only, the range
    never grows past the old sweep's moved cliff."""
    rng = cfg.zoom_range
    z = cfg.zoom
    low, high = (start.low, start.high) if start else (math.log10(rng.log[0]), math.log10(rng.log[1]))
    rules = zoom.Rules(
        low=low,
        high=high,
        spacing=1.0 / rng.per_decade,
        max_epochs=cfg.max_epochs,
        max_rounds=z.max_rounds,
        points_per_round=z.points_per_round,
        resolution=z.resolution,
        tolerance=z.tolerance,
        budget_epochs=z.budget_fte * cfg.max_epochs if z.budget_fte else None,
        groups=z.groups,
        cliff_margin=z.cliff_margin,
        log_ceil=min(zoom.LOG_CEIL, start.cliff) if start and start.cliff is not None else zoom.LOG_CEIL,
        coarse_data=z.coarse_data,
        coarse_rounds=z.coarse_rounds,
    )
    # The next round is planned once the current one reached a third of training (ASHA's first rung),
    # with or without ASHA: waiting for the last epoch would leave slots idle between rounds (a barrier).
    decision = cfg.decision_epoch
    base = {**cfg.base_config(), "_cpus": cfg.resources.cpu}
    return SweepState(
        rules=rules,
        param=cfg.zoom.param,
        metric=cfg.metric,
        decision_epoch=decision,
        groups=cfg.groups(),
        base=base,
        mode=cfg.mode,
        target=cfg.target,
        budget=budget_of(cfg),
        gpus_per_trial=cfg.resources.gpu * getattr(cfg.resources, "workers", 1),
    )


def budget_of(cfg: SweepConfig) -> Budget:
    """The real-unit budget of ``cfg.zoom`` (wall-clock seconds, GPU-hours) and what happens when it ends."""
    z = cfg.zoom
    return Budget(wall_s=z.budget_wall_s, gpu_hours=z.budget_gpu_hours, on_end=OnBudget(z.on_budget))
