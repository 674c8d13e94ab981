"""The numbers a user reads agree: the chosen rate stands next to its own score, one name per statistic,
the band of rates the sweep cannot tell apart from the best; ``mode: max`` judged in the right direction."""
from __future__ import annotations

import pytest

from orchestrator import config, zoom


def test_the_cliff_of_a_negated_maximised_metric_is_judged_by_the_ratio():
    """A maximised metric reaches the zoom negated (lower is better): accuracy 0.3 is 3x worse than 0.96,
    accuracy 0.9 is not, whatever the sign."""
    acc = {-3.0: 0.5, -2.0: 0.96, -1.5: 0.9, -1.0: 0.3}
    points = [(x, -a) for x, a in acc.items()]
    assert zoom.cliff_cap(points, ratio=3.0, margin=1.0) == -2.0  # the cliff at 10^-1, one decade below it
    assert not zoom.worse(-0.9, -0.96, 3.0) and zoom.worse(-0.3, -0.96, 3.0) and zoom.worse(float("inf"), -0.96, 3.0)
    # a trial ASHA stopped at epoch 2 with accuracy 0.9 (the best had 0.95 there) is no cliff
    best = zoom.Observation.of(0, -2.0, 0, [-0.9, -0.95, -0.96, -0.96], done=True)
    stopped = zoom.Observation.of(0, -1.5, 0, [-0.85, -0.9], done=True)
    pick = zoom.best_of_group([best, stopped, zoom.Observation.of(0, -2.5, 0, [-0.8, -0.9, -0.93, -0.94], True)])
    assert pick.x > -2.5 and zoom._stopped_over_cliff([best, stopped], 4) == []


def test_metric_may_be_any_reported_key_and_mode_max_is_accepted():
    base = "name: m\nworkload: digits_mlp\nmax_epochs: 3\nspace:\n  lr: {log: [1e-3, 1e-1]}\n"
    cfg = config.loads(base + "metric: val_accuracy\nmode: max\n")
    assert (cfg.metric, cfg.mode) == ("val_accuracy", "max")
    assert config.loads(base).mode == "min"
    for bad, key in (("metric: 'val loss'\n", "metric"), ("mode: maximum\n", "mode")):
        with pytest.raises(config.ConfigError) as info:
            config.loads(base + bad, "c.yaml")
        assert key in str(info.value) and "\n" not in str(info.value)
