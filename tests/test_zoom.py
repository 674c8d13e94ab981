"""The zoom rules on analytic loss curves where the answer is known. No Ray."""

import math

import pytest

from orchestrator import zoom


def analytic(x_star: float, floor: float = 0.1):
    """Loss after e epochs at x = log10(lr): a valley at x_star that deepens with training."""

    def curve(x: float, epochs: int) -> tuple[float, ...]:
        return tuple((x - x_star) ** 2 + floor + 1.0 / e for e in range(1, epochs + 1))

    return curve


def simulate(curve, rules: zoom.Rules, groups: int = 1, epochs=None):
    """Run the search loop with every trial trained to max_epochs (no early stopping)."""
    rounds, obs = [], []
    plan = zoom.coarse_round(rules, groups)
    while isinstance(plan, zoom.Round):
        rounds.append(plan)
        for g, x in plan.points:
            obs.append(zoom.Observation(g, x, plan.index, curve(x, epochs or rules.max_epochs), True))
        plan = zoom.next_round(rules, rounds, obs)
    return rounds, obs, plan


def rules(**kw):
    base = dict(
        low=-6.0, high=-1.0, spacing=1.0, max_epochs=5, max_rounds=4, points_per_round=4, resolution=0.1, tolerance=0.0
    )
    return zoom.Rules(**{**base, **kw})


@pytest.mark.parametrize("x_star", [-3.0, -2.5, -4.37])
def test_finds_optimum_between_grid_points(x_star):
    # no cliff guard: this valley triples within 0.9 decade of its optimum on both sides, so a cliff located
    # closely (the cliff probe does) caps the pick 1 decade below it, under the optimum; the guard has its
    # own tests
    rounds, obs, stop = simulate(analytic(x_star), rules(cliff_margin=None))
    pick = zoom.choose(obs, margin=None)
    assert abs(pick.x - x_star) < 0.1
    assert pick.epoch == 5
    assert len(rounds) >= 2
    assert isinstance(stop, zoom.Stop)


def test_later_rounds_place_new_points_inside_the_bracket_around_the_best():
    _, obs, _ = simulate(analytic(-2.5), rules(max_rounds=2))
    round1 = [o.x for o in obs if o.round == 1]
    assert round1 and all(-3.5 < x < -1.5 for x in round1)
    tried0 = {o.x for o in obs if o.round == 0}
    assert not tried0 & set(round1)  # new points only


def test_range_grows_past_the_edge_when_the_best_is_on_it():
    rounds, obs, _ = simulate(analytic(-0.3), rules(max_rounds=5))
    assert max(o.x for o in obs) > -1.0  # searched beyond the configured high end
    assert "edge" in rounds[1].reason
    x = zoom.choose(obs).x
    assert abs(x - (-0.3)) < 0.25


def test_low_edge_grows_downwards():
    _rounds, obs, _ = simulate(analytic(-6.6), rules(max_rounds=4))
    assert min(o.x for o in obs) < -6.0


def test_past_the_high_edge_steps_are_half_as_wide_as_past_the_low_one():
    # the cliff lies past the high edge: half steps find it close enough for the cliff guard
    high, _, _ = simulate(analytic(-0.3), rules(max_rounds=2))
    assert sorted(x for _, x in high[1].points) == pytest.approx([-1.5, -0.5, 0.0])  # -2.0 was tried
    low, _, _ = simulate(analytic(-6.6), rules(max_rounds=2))
    assert sorted(x for _, x in low[1].points) == pytest.approx([-8.0, -7.0, -5.5])  # -5.0 was tried


def test_stops_on_resolution():
    rounds, _, stop = simulate(analytic(-2.5), rules(max_rounds=50, resolution=0.3))
    assert "resolution" in stop.reason
    assert len(rounds) < 50


def test_stops_on_round_budget():
    rounds, _, stop = simulate(analytic(-2.5), rules(max_rounds=2))
    assert len(rounds) == 2 and "round budget" in stop.reason


def test_stops_on_epoch_budget():
    _rounds, obs, stop = simulate(analytic(-2.5), rules(max_rounds=50, budget_epochs=40))
    assert "epoch budget" in stop.reason
    assert zoom.epochs_spent(obs) < 40 + 4 * 5  # at most one round past the budget


def test_stops_when_a_round_does_not_improve():
    flat = lambda x, e: tuple(1.0 for _ in range(e))  # noqa: E731 - test-local curve
    rounds, _, stop = simulate(flat, rules(max_rounds=10, tolerance=0.01))
    assert "improved" in stop.reason
    assert len(rounds) == 2


def test_trial_stopped_early_is_not_compared_as_finished():
    # an early-stopped trial looked great at epoch 1; finished trials are compared at epoch 5
    obs = [zoom.Observation(0, -1.0, 0, (0.05,), True)]
    obs += [
        zoom.Observation(0, x, 0, tuple(1.0 - 0.1 * e + abs(x + 3) * 0.1 for e in range(1, 6)), True)
        for x in (-2.0, -3.0, -4.0)
    ]
    assert zoom.comparison_epoch(obs) == 5
    pick = zoom.choose(obs)
    assert pick.epoch == 5 and abs(pick.x - (-3.0)) < 0.3


def test_diverged_trials_count_as_worst_and_do_not_poison_the_fit():
    obs = [zoom.Observation(0, -1.0, 0, (math.inf,), True)]
    obs += [zoom.Observation(0, x, 0, analytic(-3.0)(x, 4), True) for x in (-2.0, -3.0, -4.0, -5.0)]
    pick = zoom.choose(obs)
    assert math.isfinite(pick.value) and pick.epoch == 4 and abs(pick.x + 3.0) < 0.1
    assert zoom.points_at(obs, 4)[-1] == (-1.0, math.inf)


def test_fit_minimum_is_smooth_not_the_single_best_point():
    # noisy samples of a parabola with its vertex at -2.3: the best sample is at -2.0
    pts = [(-3.0, 0.49 + 0.02), (-2.5, 0.04 + 0.03), (-2.0, 0.09 - 0.06), (-1.5, 0.64)]
    x, value = zoom.fit_minimum(pts)
    assert -2.5 < x < -2.0 and value == pytest.approx(0.03)


def test_fit_minimum_falls_back_to_best_point_when_not_convex():
    # a hump: every point is within reach of the best and within the cliff ratio, so the parabola is fitted
    # through all five (no "fewer than 3 points" fallback); it opens downwards, and its vertex (-1.94) is the
    # hump's top, the worst place to pick. The fit must give up and return the best measured point.
    import numpy as np

    pts = [(-3.0, 0.5), (-2.5, 0.85), (-2.0, 0.95), (-1.5, 0.9), (-1.0, 0.6)]
    xs, ys = np.array(pts).T
    assert np.polyfit(xs, ys, 2, w=1 / ys)[0] < 0  # the premise: the weighted fit is concave, not convex
    assert zoom.fit_minimum(pts, reach=2.0) == (-3.0, 0.5)


def test_round_ready_waits_for_the_decision_epoch_not_for_stragglers():
    obs = [zoom.Observation(0, -2.0, 0, (1.0, 0.9)), zoom.Observation(0, -3.0, 0, (1.0,))]
    assert not zoom.round_ready(obs, 0, 2)
    obs[1] = zoom.Observation(0, -3.0, 0, (1.0, 0.8))
    assert zoom.round_ready(obs, 0, 2)  # neither has finished: rounds are lineage, not barriers


def test_groups_refine_only_the_best_group():
    def curve_for(g, x, e):
        return tuple((x + 3) ** 2 + (0.0 if g == 1 else 0.5) + 1 / k for k in range(1, e + 1))

    r = rules(max_rounds=2)
    rounds = [zoom.coarse_round(r, 2)]
    obs = [zoom.Observation(g, x, 0, curve_for(g, x, 5), True) for g, x in rounds[0].points]
    nxt = zoom.next_round(r, rounds, obs)
    assert {g for g, _ in nxt.points} == {1}


def test_rules_reject_bad_values_by_name():
    with pytest.raises(ValueError, match="spacing"):
        rules(spacing=0)
    with pytest.raises(ValueError, match="high"):
        rules(low=-1.0, high=-3.0)


def test_finished_trials_and_running_ones_are_compared_at_the_running_ones_depth():
    # the demo's trap: trials that finished first (far from the optimum) must not win just because
    # the better ones are still running
    c = analytic(-2.0)
    obs = [zoom.Observation(0, x, 0, c(x, 27), True) for x in (-6.0, -4.0, -3.0)]
    obs += [zoom.Observation(0, x, 0, c(x, 12), False) for x in (-2.0, -1.0)]
    assert zoom.comparison_epoch(obs) == 12
    best = zoom.best_of_group(obs)
    assert best.epoch == 12 and abs(best.x + 2.0) < 0.3


def test_a_point_that_errored_is_never_suggested_again():
    c = analytic(-2.0)
    obs = [zoom.Observation(0, -3.0, 0, (), True)]  # crashed before reporting
    obs += [zoom.Observation(0, x, 0, c(x, 5), True) for x in (-2.0, -1.0)]
    r = rules(low=-3.0, high=-1.0)
    nxt = zoom.next_round(r, [zoom.coarse_round(r, 1)], obs)
    assert all(abs(x - (-3.0)) > 0.05 for _, x in nxt.points)


def test_fit_ignores_the_divergence_cliff():
    # a valley at -2.0 with a cliff at -1 (diverged-ish but finite): the cliff must not drag the vertex
    pts = [(-3.0, 0.224), (-2.4, 0.1376), (-2.0, 0.1188), (-1.6, 0.128), (-1.0, 2.6)]
    x, _ = zoom.fit_minimum(pts)
    assert -2.2 < x < -1.75


def test_score_averages_the_last_epochs():
    o = zoom.Observation(0, -2.0, 0, (1.0, 0.5, 0.4, 0.3, 0.2))
    assert zoom.score(o, 5) == pytest.approx(0.3)
    assert zoom.score(o, 1) == 1.0
    assert zoom.score(zoom.Observation(0, -1.0, 0, (1.0, math.inf)), 5) == math.inf


def test_coarse_round_hands_out_the_middle_first():
    r = zoom.coarse_round(rules(), 1)
    assert [round(x, 6) for _, x in r.points][:2] == [-4.0, -3.0]
    assert sorted(x for _, x in r.points) == [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0]


def skewed(x_star: float):
    """A valley gentle below the optimum and steep above it (the divergence side), as measured on digits."""
    return lambda x: 0.1 * math.exp((x - x_star) ** 2 * (1.0 if x < x_star else 8.0))


def test_kernel_pick_finds_a_skewed_valleys_floor_where_a_parabola_is_dragged_low():
    f, x_star = skewed(-1.87), -1.87
    pts = [(x, f(x)) for x in [-3.0 + 0.25 * i for i in range(9)]]
    x_kernel, value = zoom.smooth_minimum(pts, bandwidth=0.15)
    x_parabola, _ = zoom.fit_minimum(pts, reach=1.0)
    assert abs(x_kernel - x_star) < 0.15 and value == min(y for _, y in pts)  # grid spacing 0.25
    assert abs(x_parabola - x_star) > abs(x_kernel - x_star)


def test_kernel_pick_averages_noise_and_skips_diverged_points():
    # alternate +-15% noise on a symmetric valley at -2.5; one diverged point (inf) on the right
    pts = [(-3.5 + 0.1 * i, (0.2 + (-3.5 + 0.1 * i + 2.5) ** 2) * (1.15 if i % 2 else 0.85)) for i in range(21)]
    pts.append((-1.2, math.inf))
    x, _ = zoom.smooth_minimum(pts, bandwidth=0.2)
    assert abs(x - (-2.5)) < 0.15
    assert zoom.smooth_minimum([(-2.0, math.inf)]) == (-2.0, math.inf)
    with pytest.raises(ValueError, match="bandwidth"):
        zoom.smooth_minimum(pts, bandwidth=0)


def test_choose_takes_the_pick_rule_by_name():
    f = skewed(-1.87)
    obs = [zoom.Observation(0, x, 0, (f(x),) * 3, True) for x in [-3.0 + 0.25 * i for i in range(9)]]
    assert abs(zoom.choose(obs, pick="kernel", margin=None).x - (-1.87)) < 0.15
    with pytest.raises(ValueError, match="pick"):
        zoom.choose(obs, pick="median")


def test_cliff_cap_is_margin_below_the_first_much_worse_or_diverged_point_above_the_best():
    pts = [(-4.0, 1.0), (-3.0, 0.3), (-2.0, 0.15), (-1.5, 0.2), (-1.0, 0.5), (0.0, math.inf)]
    assert zoom.cliff_cap(pts, ratio=3.0, margin=1.0) == pytest.approx(-2.0)  # -1.0 is 3.3x the best
    assert zoom.cliff_cap(pts, ratio=4.0, margin=1.0) == pytest.approx(-1.0)  # then only the diverged 0.0
    assert zoom.cliff_cap([(-3.0, 0.3), (-2.0, 0.15), (-1.0, 0.2)]) is None  # no cliff seen
    assert zoom.cliff_cap([(-3.0, 9.0), (-2.0, 0.15)]) is None  # much worse BELOW the best: not a cliff
    assert zoom.cliff_cap([(-2.0, math.inf)]) is None
    with pytest.raises(ValueError, match="margin"):
        zoom.cliff_cap(pts, margin=-0.1)


def test_the_pick_backs_off_from_a_lucky_point_by_the_cliff():
    # a smooth valley at -2.3 whose one trial by the cliff (-1.2) drew a lucky seed; -0.7 is 5x worse
    xs = [-4.2, -3.2, -2.6, -2.2, -1.8, -1.2, -0.7, -0.2]
    curve = {x: 0.15 * (1 + (x + 2.3) ** 2) for x in xs}
    curve[-1.2], curve[-0.7], curve[-0.2] = 0.12, 0.6, math.inf
    obs = [zoom.Observation(0, x, 0, (v,) * 3, True) for x, v in curve.items()]
    assert zoom.choose(obs, margin=None).x == pytest.approx(-1.2)  # fooled: the lucky point wins
    assert zoom.choose(obs, margin=1.0).x == pytest.approx(-1.7)  # cliff -0.7, minus the margin
    assert zoom.choose(obs, margin=0.2).x == pytest.approx(-1.2)  # a cap above the pick changes nothing
    # a trial ASHA stopped early is not compared at the final epoch, but still marks the cliff
    stopped = [o if o.x != -0.7 else zoom.Observation(0, -0.7, 0, (0.6,), True) for o in obs]
    stopped = [zoom.Observation(0, o.x, 0, o.curve * 2, True) if o.x != -0.7 else o for o in stopped]
    assert zoom.comparison_epoch(stopped) == 6
    assert zoom.choose(stopped, margin=1.0).x == pytest.approx(-1.7)
    # the refinement round centres below the cap too
    rules = zoom.Rules(low=-6, high=-1, spacing=1.0, max_epochs=3, cliff_margin=1.0)
    assert zoom.refine(0, obs, 1.0, rules).bracket[0] == pytest.approx(-1.7)
    with pytest.raises(ValueError, match="cliff_margin"):
        zoom.Rules(low=-6, high=-1, spacing=1.0, max_epochs=3, cliff_margin=-1)


def test_several_groups_are_refined_at_once_each_around_its_own_minimum():
    # three groups: valleys at -2 (floor 0.1, best), -4 (floor 0.2), -3 (floor 0.6, worst); groups=2 refines
    # the best two in the same round, each around its own minimum
    centre, floor = {0: -2.0, 1: -4.0, 2: -3.0}, {0: 0.1, 1: 0.2, 2: 0.6}

    def curve(g, x, epochs):
        return tuple((x - centre[g]) ** 2 + floor[g] + 1 / e for e in range(1, epochs + 1))

    r = rules(max_rounds=2, groups=2)
    rounds = [zoom.coarse_round(r, 3)]
    assert sorted({g for g, _ in rounds[0].points}) == [0, 1, 2]
    obs = [zoom.Observation(g, x, 0, curve(g, x, 5), True) for g, x in rounds[0].points]
    nxt = zoom.next_round(r, rounds, obs)
    assert set(nxt.brackets) == {0, 1} and {g for g, _ in nxt.points} == {0, 1}
    for g in (0, 1):
        c, half = nxt.brackets[g]
        assert abs(c - centre[g]) < 0.1 and half == pytest.approx(1.0)
        xs = [x for h, x in nxt.points if h == g]
        assert len(xs) == 4 and all(abs(x - centre[g]) <= 1.0 for x in xs)
    assert "group 0:" in nxt.reason and "group 1:" in nxt.reason and "group 2" not in nxt.reason
    obs += [zoom.Observation(g, x, 1, curve(g, x, 5), True) for g, x in nxt.points]
    pick = zoom.choose(obs)
    assert pick.group == 0 and abs(pick.x - centre[0]) < 0.1  # the best group wins; its pick is its own minimum


def test_the_range_grows_no_further_than_the_zooms_limits():
    # optimum past LOG_CEIL (10^1.8) and below LOG_FLOOR (10^-11): points stay within the limits, the
    # search refines inside and stops on resolution instead of spending every round at the limit
    for x_star, low, high, limit in (
        (1.8, -2.0, zoom.LOG_CEIL, zoom.LOG_CEIL),
        (-11.0, zoom.LOG_FLOOR, -7.0, zoom.LOG_FLOOR),
    ):
        rounds, obs, stop = simulate(analytic(x_star), rules(low=low, high=high, max_rounds=10))
        assert all(zoom.LOG_FLOOR <= o.x <= zoom.LOG_CEIL for o in obs)
        assert len({round(o.x, 9) for o in obs}) == len(obs)  # no point tried twice (clamped duplicates dropped)
        assert "resolution" in stop.reason and len(rounds) < 10
        assert all("grows past" not in r.reason and "limit" in r.reason for r in rounds[1:])
        assert zoom.choose(obs).x == limit


@pytest.mark.parametrize(
    "name, value",
    [
        ("cliff_ratio", 1.0),
        ("cliff_ratio", math.nan),
        ("high_edge_step", 0.0),
        ("high_edge_step", -0.5),
        ("log_floor", 1.0),
        ("log_ceil", -10.0),
        ("max_cost", 0.0),
    ],
)
def test_every_tunable_is_a_checked_field_of_the_rules(name, value):
    with pytest.raises(ValueError, match="expected") as raised:
        rules(**{name: value})
    assert f"{name}={value}" in str(raised.value)  # names the field and the value


def test_the_rules_fields_steer_the_refinement():
    # best at the high edge of what was tried (-1.0): the range grows in high_edge_step spacings past it
    obs = [zoom.Observation(0, x, 0, analytic(0.0)(x, 3), True) for x in (-4.0, -3.0, -2.0, -1.0)]
    half = zoom.refine(0, obs, 1.0, rules())
    whole = zoom.refine(0, obs, 1.0, rules(high_edge_step=1.0))
    assert half.grows and whole.grows and "grows past" in half.reason
    assert [x for x in half.points if x > -1.0] == pytest.approx([-0.5, 0.0])
    assert [x for x in whole.points if x > -1.0] == pytest.approx([0.0, 1.0])
    # a ceiling of its own: the best point on it is refined inside, no point above it
    capped = zoom.refine(0, obs, 1.0, rules(log_ceil=-1.0))
    assert not capped.grows and "limit" in capped.reason and max(capped.points) <= -1.0
    # cliff_ratio decides which point marks the cliff: -1.0 did 2.2x worse than the best at -1.5
    curve = {-4.0: 0.6, -3.0: 0.4, -2.0: 0.2, -1.5: 0.19, -1.0: 0.42}
    obs = [zoom.Observation(0, x, 0, (v,) * 3, True) for x, v in curve.items()]
    free = zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0)).bracket[0]
    guarded = zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0, cliff_ratio=2.0)).bracket[0]
    assert guarded == pytest.approx(-2.0) and free > -2.0 + 1e-6  # -1.0 is over a 2x cliff: 1 decade below it


def test_observation_of_turns_every_non_finite_value_into_inf():
    o = zoom.Observation.of(1, -2.0, 3, [0.5, None, math.nan, -math.inf, math.inf, 0.25], done=True)
    assert o == zoom.Observation(1, -2.0, 3, (0.5, math.inf, math.inf, math.inf, math.inf, 0.25), True)
    assert zoom.Observation.of(0, 0.0, 0, []).curve == () and not zoom.Observation.of(0, 0.0, 0, []).done


def test_picks_and_refinements_are_frozen_records():
    obs = [zoom.Observation(0, x, 0, analytic(-2.5)(x, 3), True) for x in (-4.0, -3.0, -2.0, -1.0)]
    pick = zoom.choose(obs)
    assert isinstance(pick, zoom.Pick) and pick.group == 0 and pick.epoch == 3
    refinement = zoom.refine(0, obs, 1.0, rules())
    assert isinstance(refinement, zoom.Refinement) and isinstance(refinement.points, tuple)
    with pytest.raises(AttributeError):
        pick.x = 0.0


def test_cliff_gap_is_the_stretch_between_the_cliff_and_the_highest_point_below_it():
    pts = [(-3.0, 0.3), (-2.0, 0.1), (-1.5, 0.2), (-1.0, math.inf)]
    assert zoom.cliff_gap(pts) == (-1.5, -1.0)  # -1.5 is only 2x the best: below the cliff
    assert zoom.cliff_gap(pts, ratio=2.0) == (-2.0, -1.5)
    assert zoom.cliff_gap(pts[:3]) is None and zoom.cliff_gap([(-2.0, math.inf)]) is None


def test_the_cliff_probe_halves_a_coarse_gap_only_where_the_cap_could_move_the_centre():
    # best -2 (capped there: the cliff at -1 is 1 decade above); the cliff lies in (-2, -1]: -1.5 may move the cap
    curve = {-4.0: 0.6, -3.0: 0.3, -2.0: 0.1, -1.0: math.inf}
    obs = [zoom.Observation(0, x, 0, (v,) * 3, True) for x, v in curve.items()]
    probed = zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0))
    plain = zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0, cliff_probe=False))
    assert -1.5 in probed.points and -1.5 not in plain.points and "halves the gap" in probed.reason
    assert len(probed.points) == len(plain.points) == 4  # the highest planned point gave way to it
    assert sorted(probed.points)[:3] == sorted(plain.points)[:3]
    # best -4, far below: a cliff found at -1.5 would cap at -2.5, above the centre; no probe
    curve = {-5.0: 0.3, -4.0: 0.1, -3.0: 0.15, -2.0: 0.2, -1.0: math.inf}
    obs = [zoom.Observation(0, x, 0, (v,) * 3, True) for x, v in curve.items()]
    assert (
        zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0)).points
        == zoom.refine(0, obs, 1.0, rules(cliff_margin=1.0, cliff_probe=False)).points
    )


def test_max_cost_holds_refinement_inside_the_range_to_the_coarse_grids_epochs():
    r = rules(low=-6.0, high=-1.0, max_epochs=5, max_rounds=3, max_cost=1.0, cliff_margin=None)
    coarse = zoom.coarse_round(r, 1)  # 6 points: a ceiling of 6 x 5 = 30 epochs
    valley = analytic(-3.5)
    # two trials still running (each counts 5 epochs), four stopped after 1 epoch: 14 committed, 3 trials left
    obs = [
        zoom.Observation(0, x, 0, valley(x, 3 if x in (-4.0, -3.0) else 1), x not in (-4.0, -3.0))
        for _, x in coarse.points
    ]
    assert zoom.epochs_committed(obs, 5) == 14 and zoom.refinements_left(r, [coarse], obs) == 3
    plan = zoom.next_round(r, [coarse], obs)
    assert isinstance(plan, zoom.Round) and plan.points == ((0, -4.5), (0, -3.5))  # 3 planned, -4.0 was tried
    assert len(zoom.next_round(rules(low=-6.0, high=-1.0, max_epochs=5, max_rounds=3), [coarse], obs).points) == 4
    # every coarse trial ran to the end: nothing left inside the range
    done = [zoom.Observation(0, x, 0, valley(x, 5), True) for _, x in coarse.points]
    stop = zoom.next_round(r, [coarse], done)
    assert isinstance(stop, zoom.Stop) and "cost ceiling" in stop.reason
    # a point grown past the range raises the ceiling by its own epochs
    grown = [*done, zoom.Observation(0, -7.0, 1, valley(-7.0, 5), True)]
    assert zoom.refinements_left(r, [coarse], grown) == 0 and zoom.refinements_left(r, [coarse], grown[:-1]) == 0
    assert zoom.refinements_left(r, [coarse], [*done[:-1], zoom.Observation(0, -7.0, 1, valley(-7.0, 1), True)]) == 1
