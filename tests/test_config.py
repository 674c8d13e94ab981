"""Config loading: the demo config is valid; every kind of bad input is one line naming file and key."""

import pytest
from pydantic import ValidationError

from orchestrator import config
from orchestrator.config import ConfigError

from .conftest import ROOT

GOOD = {
    "name": "t",
    "workload": "digits_mlp",
    "max_epochs": 3,
    "space": {"lr": {"log": [1e-4, 1e-1], "per_decade": 1}, "optimizer": ["sgd", "adam"], "momentum": 0.9},
}


def test_demo_config_loads_frozen():
    cfg = config.load(ROOT / "examples" / "digits.yaml")
    assert cfg.name == "digits-lr" and cfg.max_epochs == 27 and cfg.grace_period == 9
    assert cfg.zoom_range.values() == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.max_epochs = 5  # frozen


@pytest.mark.parametrize(
    "asha, zoom, epoch",
    [
        ({}, {}, 1),  # max_epochs 3: a third
        ({"enabled": False}, {}, 1),  # ASHA off: still a third, not the last epoch (a barrier)
        ({"grace_period": 2}, {}, 2),  # ASHA's first rung
        ({"enabled": False}, {"decision_epoch": 3}, 3),  # asked for: rounds wait for each other
    ],
)
def test_the_next_round_is_planned_at_asha_first_rung_unless_told(asha, zoom, epoch):
    cfg = config.parse({**GOOD, "asha": asha, "zoom": zoom})
    assert cfg.decision_epoch == epoch
    from orchestrator.searchstate import make_state

    assert make_state(cfg).decision_epoch == epoch


def test_groups_cross_the_other_dimensions():
    cfg = config.parse(GOOD)
    assert cfg.groups() == [{"optimizer": "sgd"}, {"optimizer": "adam"}]
    assert cfg.fixed() == {"momentum": 0.9}


def test_scientific_notation_without_dot_is_a_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "name: t\nworkload: digits_mlp\nmax_epochs: 2\nspace:\n  lr: {log: [1e-5, 1e-2]}\n  weight_decay: 1e-4\n"
    )
    cfg = config.load(p)
    assert cfg.space["weight_decay"] == pytest.approx(1e-4)


def _with(**changes):
    data = {**GOOD, "space": dict(GOOD["space"])}
    for key, value in changes.items():
        target = data
        parts = key.split("__")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return data


@pytest.mark.parametrize(
    "data, key",
    [
        (_with(max_epochs=-1), "max_epochs"),
        (_with(max_epochs="ten"), "max_epochs"),
        (_with(bogus=1), "bogus"),
        (_with(space__lr={"log": [1e-1, 1e-4]}), "space.lr"),
        (_with(space__lr={"log": [0, 1e-1]}), "space.lr"),
        (_with(space__lr={"log": [1e-4, 1e-1], "per_decade": 0}), "space.lr"),
        (_with(space__lr=0.01), "space.lr"),
        (_with(name="../escape"), "name"),
        (_with(name="a/b"), "name"),
        (_with(workload="nope.nothing:here"), "workload"),
        (_with(workload="not_a_builtin"), "workload"),
        (_with(asha={"grace_period": 50}), "grace_period"),
        (_with(resources={"gpu": 1.5}), "resources.gpu"),
        (_with(zoom={"decision_epoch": 4}), "zoom.decision_epoch"),
        (_with(zoom={"points_per_round": 0}), "zoom.points_per_round"),
        ({k: v for k, v in GOOD.items() if k != "space"}, "space"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        config.parse(data, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ")
    assert key in message
    assert "\n" not in message


def test_missing_file_and_yaml_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nspace: {lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: YAML syntax error at line \d+"):
        config.load(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        config.load(bad)


@pytest.mark.parametrize(
    "space, key",
    [
        ({"schedule": "step", "gamma": 0.0}, "space.gamma"),
        ({"schedule": "step", "gamma": 1.5}, "space.gamma"),
        ({"schedule": ["constant", "inverse"], "eps": -0.1}, "space.eps"),
        ({"schedule": "step", "step_size": 0}, "space.step_size"),
        ({"schedule": "bogus_law"}, "schedule"),
        ({"optimizer": "sgdd"}, "space.optimizer"),
    ],
)
def test_bad_schedule_or_optimizer_is_a_config_error(space, key):
    data = {**GOOD, "space": {"lr": GOOD["space"]["lr"], **space}}
    with pytest.raises(ConfigError) as info:
        config.parse(data, "s.yaml")
    assert key in str(info.value) and "\n" not in str(info.value)


def test_schedule_and_optimizer_are_searched_dimensions():
    data = {
        **GOOD,
        "space": {
            "lr": GOOD["space"]["lr"],
            "schedule": ["constant", "inverse"],
            "eps": {"log": [1e-2, 1e-1], "per_decade": 1},
            "optimizer": ["sgd", "adam"],
        },
    }
    cfg = config.parse(data)
    assert len(cfg.groups()) == 2 * 2 * 2


# --- space keys nothing reads (a typo trains silently with the default) -------------------------------
def test_a_space_key_nothing_reads_is_refused_naming_the_nearest_known_key():
    data = {**GOOD, "space": {**GOOD["space"], "optimiser": "adam"}}
    with pytest.raises(ConfigError) as info:
        config.parse(data, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: space.optimiser: unknown key") and "\n" not in message
    assert "did you mean 'optimizer'?" in message and "digits_mlp" in message
    # the keys the trial, the decay laws and the built-in workload read all pass
    config.parse(
        {
            **GOOD,
            "space": {
                **GOOD["space"],
                "width": 32,
                "dropout": 0.1,
                "schedule": "step",
                "gamma": 0.5,
                "warmup": 2,
                "batch_size": 64,
                "weight_decay": 1e-4,
            },
        }
    )


@pytest.fixture()
def plugins(tmp_path, monkeypatch):
    """Three plugin modules: keys declared on the module, on the callable, and not at all."""
    (tmp_path / "declares_module.py").write_text(
        "from orchestrator.workloads.digits import digits_mlp\nspace_keys = {'hidden'}\n"
        "def make(config):\n    return digits_mlp(config)\n"
    )
    (tmp_path / "declares_fn.py").write_text(
        "from orchestrator.workloads.digits import digits_mlp\n"
        "def make(config):\n    return digits_mlp(config)\nmake.space_keys = frozenset({'blocks'})\n"
        "def bad(config):\n    return digits_mlp(config)\nbad.space_keys = 'blocks'\n"
    )
    (tmp_path / "declares_none.py").write_text(
        "from orchestrator.workloads.digits import digits_mlp\ndef make(config):\n    return digits_mlp(config)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize(
    "workload, key, ok",
    [
        ("declares_module:make", "hidden", True),
        ("declares_module:make", "hiden", False),
        ("declares_fn:make", "blocks", True),
        ("declares_fn:make", "hidden", False),
        ("declares_none:make", "anything_at_all", True),  # declares nothing: nothing refused on its account
    ],
)
def test_a_plugin_declares_the_space_keys_it_reads(plugins, workload, key, ok):
    data = {**GOOD, "workload": workload, "space": {**GOOD["space"], key: 1}}
    if ok:
        assert config.parse(data).space[key] == 1
    else:
        with pytest.raises(
            ConfigError,
            match=rf"space\.{key}: unknown key, neither the trial nor the workload "
            rf"{workload} reads it",
        ):
            config.parse(data, "p.yaml")


def test_a_declaration_that_is_not_a_set_of_names_is_refused(plugins):
    with pytest.raises(ConfigError, match=r"p.yaml: the workload declares_fn:bad: space_keys='blocks': expected"):
        config.parse({**GOOD, "workload": "declares_fn:bad"}, "p.yaml")
