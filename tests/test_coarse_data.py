"""zoom.coarse_data: round 0 trains on a fraction of the training data, the refinement rounds and the pick on
all of it; FTE and the epoch budgets count the data seen. The rules on analytic curves (no Ray), the config's
refusals, and one real tiny sweep."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import yaml

from orchestrator import config, searchstate, zoom
from orchestrator.state import Suggestion

FRACTION = 0.2


def coarse_valley(x: float, epochs: int = 6) -> tuple[float, ...]:
    """Round 0 on 20% of the data: a valley at 10^-2, lower than the full data's (a small set is fit better)."""
    return tuple(0.05 + 0.2 * (x + 2) ** 2 + 0.1 / e for e in range(1, epochs + 1))


def full_valley(x: float, epochs: int = 6) -> tuple[float, ...]:
    """The full data: the optimum shifted up to 10^-1.5."""
    return tuple(0.3 + 0.2 * (x + 1.5) ** 2 + 0.1 / e for e in range(1, epochs + 1))


def coarse(x: float, curve=None) -> zoom.Observation:
    return zoom.Observation(0, x, 0, curve or coarse_valley(x), True, FRACTION)


def full(x: float, round_index: int = 1) -> zoom.Observation:
    return zoom.Observation(0, x, round_index, full_valley(x), True)


DIVERGED = (0.5, math.inf)


def test_same_data_keeps_the_trials_on_the_most_data_and_the_cliff_seen_on_less():
    coarse_round = [coarse(x) for x in (-4.0, -3.0, -2.0, -1.0)] + [coarse(0.0, DIVERGED)]
    assert zoom.same_data(coarse_round) == coarse_round  # round 1 is planned from the coarse round alone
    refined = [full(x) for x in (-2.5, -2.0, -1.5, -1.0)]
    kept = zoom.same_data(coarse_round + refined)
    assert kept == [coarse_round[-1]] + refined  # the full-data trials, and the rate that diverged on less data
    # a full-data trial that has not reported yet compares nothing: the coarse trials are still what is known
    waiting = zoom.Observation(0, -1.5, 1, (), False)
    assert zoom.same_data(coarse_round + [waiting]) == coarse_round
    # another group's coarse divergence is no evidence for this group's cliff
    other = zoom.Observation(1, 0.0, 0, DIVERGED, True, FRACTION)
    assert other not in zoom.same_data(coarse_round + refined + [other])
    assert zoom.same_data([]) == []


def test_the_pick_is_made_among_the_full_data_trials():
    obs = [coarse(x) for x in (-4.0, -3.0, -2.0, -1.0, 0.0)] + [full(x) for x in (-2.5, -2.0, -1.5, -1.0, -0.5)]
    pick = zoom.choose(obs, margin=None)
    assert abs(pick.x - -1.5) < 0.05  # the full data's optimum, not the coarse round's lower-scoring -2
    assert pick.value == pytest.approx(sum(full_valley(-1.5)[-3:]) / 3)
    # with one round only (max_rounds: 1) the coarse trials are all there is: the pick is made among them
    assert abs(zoom.choose(obs[:5], margin=None).x - -2.0) < 0.05


def test_a_rate_that_diverged_on_the_fraction_still_caps_the_pick():
    obs = [coarse(x) for x in (-4.0, -3.0, -2.0)] + [coarse(-1.0, DIVERGED)]
    obs += [full(x) for x in (-2.5, -2.0, -1.75, -1.5)]
    assert zoom.choose(obs, margin=None).x > -1.9
    assert zoom.choose(obs, margin=1.0).x == pytest.approx(-2.0)  # one decade below 10^-1, where round 0 diverged


def test_round_one_comes_from_the_coarse_round_and_round_two_from_the_full_data():
    rules = zoom.Rules(
        low=-4.0, high=0.0, spacing=1.0, max_epochs=6, max_rounds=3, points_per_round=3, cliff_margin=None
    )
    rounds = [zoom.coarse_round(rules, 1)]
    obs = [coarse(x) for _, x in rounds[0].points]
    r1 = zoom.next_round(rules, rounds, obs)
    assert isinstance(r1, zoom.Round)
    centre = r1.brackets[0][0]
    assert abs(centre - -2.0) < 0.05
    # an odd count puts a point at the centre, a rate tried on the fraction only: it is tried again on all the data
    assert any(abs(x - -2.0) < 0.05 for _, x in r1.points) and len(r1.points) == 3
    rounds.append(r1)
    obs += [full(x) for _, x in r1.points]
    r2 = zoom.next_round(rules, rounds, obs)
    assert isinstance(r2, zoom.Round)
    # planned from the full-data trials (optimum 10^-1.5), not the coarse ones (10^-2, lower scores)
    assert abs(r2.brackets[0][0] - -1.5) < 0.1


def test_an_epoch_on_a_fraction_costs_that_fraction_of_an_epoch():
    obs = [coarse(x) for x in (-3.0, -2.0, -1.0)] + [full(-1.5)]
    assert zoom.epochs_spent(obs) == pytest.approx(3 * 6 * FRACTION + 6)
    running = zoom.Observation(0, -1.2, 1, (0.5,), False, 1.0)
    assert zoom.epochs_committed(obs + [running], 6) == pytest.approx(3 * 6 * FRACTION + 6 + 6)
    rules = zoom.Rules(low=-3.0, high=-1.0, spacing=1.0, max_epochs=6, max_rounds=5, budget_epochs=10.0)
    # 9.6 epochs of cost: under the budget of 10, although 24 epochs ran
    assert isinstance(zoom.next_round(rules, [zoom.coarse_round(rules, 1)], obs), zoom.Round)
    assert isinstance(zoom.next_round(rules, [zoom.coarse_round(rules, 1)], obs + [full(-1.2)]), zoom.Stop)


def test_observations_and_trial_configs_carry_the_fraction():
    assert zoom.data_of({"data_fraction": 0.25}) == 0.25 and zoom.data_of({}) == 1.0
    assert zoom.data_of({"data_fraction": True}) == 1.0 and zoom.data_of({"data_fraction": 2}) == 1.0
    state = searchstate.make_state(config.parse(sweep(coarse_data=FRACTION)))
    assert state.config_for(0, -2.0, 0)["data_fraction"] == FRACTION
    assert "data_fraction" not in state.config_for(0, -2.0, 1)
    assert "data_fraction" not in searchstate.make_state(config.parse(sweep())).config_for(0, -2.0, 0)
    first = state.next_config("a").config
    assert first is not None and first["round"] == 0 and first["data_fraction"] == FRACTION
    state.record("a", {"epoch": 1, "val_loss": 0.5})
    assert state.observations()[0].data == FRACTION


def sweep(**zoom_keys) -> dict:
    return {
        "name": "c",
        "workload": "digits_mlp",
        "max_epochs": 3,
        "space": {"lr": {"log": [1e-3, 1e-1]}, "optimizer": "sgd"},
        "zoom": zoom_keys,
    }


@pytest.mark.parametrize("value", [0, -0.5, 1.5, float("nan"), float("inf")])
def test_a_coarse_data_outside_zero_to_one_is_refused_in_one_line(value):
    with pytest.raises(config.ConfigError) as info:
        config.parse(sweep(coarse_data=value), "s.yaml")
    text = str(info.value)
    assert text.startswith("s.yaml: zoom.coarse_data: coarse_data=") and "(0, 1]" in text and "\n" not in text


def test_coarse_data_defaults_to_all_the_data_and_takes_a_fraction():
    assert config.parse(sweep()).zoom.coarse_data == 1.0
    assert config.parse(sweep(coarse_data=0.2)).zoom.coarse_data == 0.2
    assert config.parse(sweep(coarse_data=1)).zoom.coarse_data == 1.0


def test_a_training_function_with_coarse_data_is_refused_naming_the_built_in_loop():
    data = {k: v for k, v in sweep(coarse_data=0.2).items() if k != "workload"}
    data["train"] = "examples.custom_loop:train"
    with pytest.raises(config.ConfigError) as info:
        config.parse(data, "s.yaml")
    text = str(info.value)
    assert "zoom.coarse_data=0.2" in text and "built-in loop" in text and "\n" not in text
    assert config.parse({**data, "zoom": {}}).train  # all the data: accepted


def test_data_fraction_in_space_with_coarse_data_is_refused_as_two_owners_of_one_key():
    data = sweep(coarse_data=0.2)
    data["space"]["data_fraction"] = 0.5
    with pytest.raises(config.ConfigError) as info:
        config.parse(data, "s.yaml")
    assert "space.data_fraction" in str(info.value) and "zoom.coarse_data=0.2" in str(info.value)
    data["zoom"] = {}
    assert config.parse(data).space["data_fraction"] == 0.5  # alone it is the loop's own option


def test_the_example_is_digits_with_a_coarse_round_on_a_fifth_of_the_data():
    from .conftest import ROOT

    cheap = yaml.safe_load((ROOT / "examples" / "digits_cheap.yaml").read_text())
    base = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    assert cheap["zoom"]["coarse_data"] == 0.2 and cheap["asha"]["enabled"] is False
    assert cheap["space"] == base["space"] and cheap["workload"] == base["workload"]
    assert config.load(ROOT / "examples" / "digits_cheap.yaml").zoom.coarse_data == 0.2
    subset = yaml.safe_load((ROOT / "examples" / "digits_subset.yaml").read_text())
    assert {k: v for k, v in subset.items() if k not in ("name", "zoom")} == {
        k: v for k, v in cheap.items() if k not in ("name", "zoom")
    }
    z = config.load(ROOT / "examples" / "digits_subset.yaml").zoom
    assert (z.coarse_data, z.coarse_rounds, z.max_rounds, z.points_per_round) == (0.2, 3, 3, 4)


@pytest.mark.slow
def test_a_real_sweep_trains_round_0_on_the_fraction_and_picks_among_the_full_data(local_ray, small_config):
    from orchestrator import results, run_sweep

    data = yaml.safe_load(small_config("coarse").read_text())
    data["zoom"] = {"max_rounds": 2, "points_per_round": 3, "coarse_data": 0.5}
    data["asha"] = {"enabled": False}
    s = run_sweep(config.parse(data), quiet=True)
    rows = [r for r in results.read_trials(s.folder) if r["epoch"] is not None]
    configs = {r["trial_id"]: json.loads(r["config"]) for r in rows}
    rounds = {t: c["round"] for t, c in configs.items()}
    assert {c.get("data_fraction") for t, c in configs.items() if rounds[t] == 0} == {0.5}
    assert all("data_fraction" not in c for t, c in configs.items() if rounds[t] >= 1) and max(rounds.values()) == 1
    # the pick and the best trial come from the full-data round; the band too
    full_lrs = [c["lr"] for t, c in configs.items() if rounds[t] >= 1]
    assert min(full_lrs) * (1 - 1e-9) <= s.lr <= max(full_lrs) * (1 + 1e-9)
    assert rounds[s.best_trial["trial_id"]] == 1 and s.picked_on == 1.0
    # FTE counts the data seen: round 0's epochs at half cost
    seen = sum(0.5 if rounds[r["trial_id"]] == 0 else 1.0 for r in rows)
    assert s.fte == pytest.approx(seen / 4) and s.fte < s.epochs / 4
    best = json.loads((s.folder / "best.json").read_text())
    assert best["fte"] == pytest.approx(seen / 4)
    text = "round 0 trained on 50% of the training data (zoom.coarse_data: 0.5); the pick is among the full-data trials"
    assert text in (s.folder / "report.md").read_text()
    assert "round 0 on 50% of the data" in s.line()


def stored_sweep(folder, rounds: int, confirm: bool = False):
    """A stored sweep (no Ray): round 0 on 20% of the data at 10^-4..10^0 (coarse_valley), and with
    ``rounds`` 2 a round 1 on all of it at 10^-2..10^-1 (full_valley), with ``confirm`` (and ``rounds`` 2) a
    round 1 of one full-data trial at 10^-2 instead (the confirmation round); 6 epochs each."""
    from orchestrator import results

    folder.mkdir(parents=True)
    points = [(0, x, coarse_valley(x)) for x in (-4.0, -3.0, -2.0, -1.0, 0.0)]
    if rounds == 2:
        xs = (-2.0,) if confirm else (-2.0, -1.75, -1.5, -1.25, -1.0)
        points += [(1, x, full_valley(x)) for x in xs]
    rows = []
    for i, (r, x, curve) in enumerate(points):
        cfg = {"workload": "digits_mlp", "max_epochs": 6, "lr": 10**x, "round": r, "group": 0}
        cfg.update({"data_fraction": FRACTION} if r == 0 else {})
        for e, v in enumerate(curve, 1):
            rows.append(
                {
                    "trial_id": f"t{i}",
                    "round": r,
                    "group": 0,
                    "lr": 10**x,
                    "status": "completed",
                    "config": json.dumps(cfg),
                    "epoch": e,
                    "val_loss": v,
                    "train_loss": v,
                    "val_error": v,
                    "metric": v,
                }
            )
    results.write_trials(folder, rows)
    index = [{"index": k, "points": 5, "reason": "r", "brackets": {}} for k in range(rounds)]
    meta = {"metric": "val_loss", "mode": "min", "param": "lr", "max_epochs": 6, "rounds": index}
    results.write_json(folder / results.ROUNDS, {**meta, "stop_reason": "round budget spent", "cliff_margin": None})
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep(coarse_data=FRACTION)))
    return folder


def test_the_report_says_round_0_ran_on_the_fraction_and_where_the_pick_was_made(tmp_path):
    from orchestrator import report

    s = report.build(stored_sweep(tmp_path / "two", rounds=2))
    assert s.best_trial["trial_id"] in {"t5", "t6", "t7", "t8", "t9"} and abs(math.log10(s.lr) - -1.5) < 0.05
    assert "data_fraction" not in s.chosen and s.score is not None and s.score.trials[0] not in {"t0", "t1", "t2"}
    assert s.fte == pytest.approx((5 * 6 * FRACTION + 5 * 6) / 6) and s.epochs == 60
    md = (s.folder / "report.md").read_text()
    assert (
        "- Data: round 0 trained on 20% of the training data (zoom.coarse_data: 0.2); the pick is among the "
        "full-data trials" in md
    )
    assert "60 epochs = 6.00 FTE" in md and "FTE counts the data seen" in md
    assert json.loads((s.folder / "best.json").read_text())["fte"] == pytest.approx(6.0)
    one = report.build(stored_sweep(tmp_path / "one", rounds=1))  # max_rounds: 1: the coarse trials are all there is
    assert abs(math.log10(one.lr) - -2.0) < 0.05 and one.fte == pytest.approx(5 * 6 * FRACTION / 6)
    assert (
        "no trial trained on all of it: the pick was measured on 20% of the data"
        in (one.folder / "report.md").read_text()
    )


# ------------------------------------------------------------------ zoom.coarse_rounds and the confirmation
def subset_rules(**kw) -> zoom.Rules:
    base = {"low": -4.0, "high": 0.0, "spacing": 1.0, "max_epochs": 6, "max_rounds": 2, "points_per_round": 3}
    return zoom.Rules(**{**base, "cliff_margin": None, "coarse_data": FRACTION, "coarse_rounds": 2, **kw})


def test_subset_rounds_end_with_one_trial_of_the_pick_on_all_the_data():
    rules = subset_rules()
    rounds = [zoom.coarse_round(rules, 1)]
    obs = [coarse(x) for _, x in rounds[0].points]
    r1 = zoom.next_round(rules, rounds, obs)
    assert isinstance(r1, zoom.Round) and not r1.confirm and rules.data_for(1) == FRACTION
    # round 1 trains on the fraction too: a rate round 0 tried on it is not tried again (the centre, 10^-2)
    assert len(r1.points) == 2 and all(abs(x - -2.0) > 0.05 for _, x in r1.points)
    rounds.append(r1)
    obs += [zoom.Observation(0, x, 1, coarse_valley(x), True, FRACTION) for _, x in r1.points]
    confirm = zoom.next_round(rules, rounds, obs)  # max_rounds 2 spent: one more round, the pick on all the data
    assert isinstance(confirm, zoom.Round) and confirm.confirm and confirm.index == 2
    pick = zoom.choose(obs, margin=None)
    assert confirm.points == ((0, pick.x),) and abs(pick.x - -2.0) < 0.05
    assert confirm.reason == f"round budget spent (2 rounds); {zoom.CONFIRM}"
    rounds.append(confirm)
    obs.append(full(pick.x, round_index=2))
    # then the search stops for good, whatever the rules would still allow
    for r in (rules, subset_rules(max_rounds=9)):
        stop = zoom.next_round(r, rounds, obs)
        assert stop == zoom.Stop("round budget spent (2 rounds); the pick was then trained on all the data (round 2)")
    # the final pick is the confirmation trial's rate, its score that trial's: one point, no fit
    final = zoom.choose(obs, margin=None)
    assert final.x == pick.x and final.value == pytest.approx(sum(full_valley(pick.x)[-3:]) / 3)
    # a rate that diverged on the fraction above it (cliff evidence kept by same_data) does not move it
    diverged = zoom.Observation(0, 0.5, 0, DIVERGED, True, FRACTION)
    assert zoom.choose(obs + [diverged], margin=1.0).x == pick.x


def test_no_confirmation_round_once_a_trial_trained_on_all_the_data_or_without_coarse_data():
    rules = subset_rules(coarse_rounds=1, max_rounds=1)
    rounds = [zoom.coarse_round(rules, 1)]
    obs = [coarse(x) for _, x in rounds[0].points]
    plan = zoom.next_round(rules, rounds, obs)  # coarse_rounds 1, max_rounds 1: round 0 alone, then confirmed
    assert isinstance(plan, zoom.Round) and plan.confirm and len(plan.points) == 1
    assert isinstance(zoom.next_round(rules, rounds, obs + [full(-1.5)]), zoom.Stop)  # one full-data trial ran
    # the rules say every round trains on all the data (a replay that sets Observation.data itself): no confirmation
    assert isinstance(zoom.next_round(replace(rules, coarse_data=1.0), rounds, obs), zoom.Stop)
    with pytest.raises(ValueError, match=r"^coarse_rounds=0: expected >= 1"):
        subset_rules(coarse_rounds=0)
    assert [subset_rules(coarse_rounds=3).data_for(i) for i in range(5)] == [FRACTION] * 3 + [1.0, 1.0]


def test_config_for_gives_the_coarse_rounds_the_fraction_and_the_confirmation_round_all_the_data():
    state = searchstate.make_state(config.parse(sweep(coarse_data=FRACTION, coarse_rounds=3, max_rounds=5)))
    assert [state.config_for(0, -2.0, k).get("data_fraction") for k in range(5)] == [FRACTION] * 3 + [None, None]
    state.rounds.append(zoom.Round(1, ((0, -2.0),), {}, zoom.CONFIRM, confirm=True))
    assert "data_fraction" not in state.config_for(0, -2.0, 1)
    assert state.config_for(0, -2.0, 2)["data_fraction"] == FRACTION


def test_a_search_on_the_subset_hands_out_the_pick_on_all_the_data_last_and_survives_a_pickle():
    import pickle

    data = sweep(coarse_data=FRACTION, coarse_rounds=5, max_rounds=1)
    data["max_epochs"] = 6
    state = searchstate.make_state(config.parse(data))
    ids = []
    while (s := state.next_config(f"t{len(ids)}")).config is not None:
        ids.append(f"t{len(ids)}")
        assert s.config["data_fraction"] == FRACTION and s.config["round"] == 0
    for tid in ids:
        x = state.trials[tid].x
        for e, v in enumerate(coarse_valley(x), 1):
            state.record(tid, {"epoch": e, "val_loss": v})
        state.complete(tid, None, False)
    state = pickle.loads(pickle.dumps(state))
    last = state.next_config("c").config
    assert last is not None and "data_fraction" not in last and last["round"] == 1
    assert state.rounds[-1].confirm and len(state.rounds[-1].points) == 1
    assert math.log10(last["lr"]) == pytest.approx(zoom.choose(state.observations()[:-1], margin=1.0).x, abs=0.01)
    for e, v in enumerate(full_valley(math.log10(last["lr"])), 1):
        state.record("c", {"epoch": e, "val_loss": v})
    state.complete("c", None, False)
    assert state.next_config("d") == Suggestion(finished=True)
    assert state.stop_reason == "round budget spent (1 rounds); the pick was then trained on all the data (round 1)"


def test_coarse_rounds_needs_a_fraction_and_may_exceed_max_rounds():
    assert config.parse(sweep()).zoom.coarse_rounds == 1
    assert config.parse(sweep(coarse_data=0.2, coarse_rounds=9, max_rounds=2)).zoom.coarse_rounds == 9
    with pytest.raises(config.ConfigError) as info:
        config.parse(sweep(coarse_rounds=3), "s.yaml")
    text = str(info.value)
    assert text.startswith("s.yaml: zoom.coarse_rounds=3: expected 1 with zoom.coarse_data 1") and "\n" not in text


def test_after_a_confirmation_the_pick_its_score_and_no_band_come_from_the_one_full_data_trial(tmp_path):
    from orchestrator import report

    s = report.build(stored_sweep(tmp_path / "c", rounds=2, confirm=True))
    assert s.lr == pytest.approx(0.01) and s.best_trial["trial_id"] == "t5" and s.confirmed == 1
    assert s.score is not None and s.score.trials == ("t5",) and not s.score.interpolated
    assert s.score.value == pytest.approx(sum(full_valley(-2.0)[-3:]) / 3)
    assert s.band is None and s.fte == pytest.approx((5 * 6 * FRACTION + 6) / 6)
    best = json.loads((s.folder / "best.json").read_text())
    assert best["val_loss"] == pytest.approx(s.score.value) and best["score"]["trials"] == ["t5"]
    assert best["band"] is None
    md = (s.folder / "report.md").read_text()
    assert (
        "- Data: the rate was searched on 20% of the training data (zoom.coarse_data: 0.2, round 0); its score is "
        "one full-data trial at it (round 1)" in md
    )
    assert "- Band: not measured: one full-data trial" in md and "band lr" not in s.line()
    assert "round 0 on 20% of the data, the pick's score one full-data trial (round 1)" in s.line()


@pytest.mark.slow
def test_a_real_sweep_on_the_subset_ends_with_one_full_data_trial_of_the_pick(local_ray, small_config):
    from orchestrator import results, run_sweep

    data = yaml.safe_load(small_config("subset").read_text())
    data["zoom"] = {"max_rounds": 2, "points_per_round": 2, "coarse_data": 0.5, "coarse_rounds": 2}
    data["asha"] = {"enabled": False}
    s = run_sweep(config.parse(data), quiet=True)
    rows = [r for r in results.read_trials(s.folder) if r["epoch"] is not None]
    configs = {r["trial_id"]: json.loads(r["config"]) for r in rows}
    last = max(configs, key=lambda t: configs[t]["round"])
    assert configs[last]["round"] == 2 and [c["round"] for c in configs.values()].count(2) == 1
    # every trial but the last trained on the fraction; the last, the pick, on all the data
    assert {c.get("data_fraction") for t, c in configs.items() if t != last} == {0.5}
    assert "data_fraction" not in configs[last] and {c["round"] for c in configs.values()} == {0, 1, 2}
    assert s.lr == pytest.approx(configs[last]["lr"]) and s.best_trial["trial_id"] == last and s.band is None
    best = json.loads((s.folder / "best.json").read_text())
    assert best["score"]["trials"] == [last] and best["lr"] == pytest.approx(configs[last]["lr"])
    own = [r["val_loss"] for r in rows if r["trial_id"] == last][-3:]
    assert best["val_loss"] == pytest.approx(sum(own) / len(own))
    seen = sum(1.0 if t == last else 0.5 for t in (r["trial_id"] for r in rows))
    assert s.fte == pytest.approx(seen / 4) and best["fte"] == pytest.approx(seen / 4)
    assert "its score is one full-data trial at it (round 2)" in (s.folder / "report.md").read_text()
    assert best["stop_reason"] == "round budget spent (2 rounds); the pick was then trained on all the data (round 2)"
