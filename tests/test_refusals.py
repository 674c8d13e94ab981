"""What `sweep` refuses, each in one line: alias bombs, oversized spaces, unsafe names, symlinked folders,
edited resumes, full disks, damaged result files. Real files, real YAML, a real tmpfs."""
from __future__ import annotations

import time

import pytest
import yaml

from orchestrator import cli, config
from orchestrator.config import ConfigError

GOOD = {
    "name": "t", "workload": "digits_mlp", "max_epochs": 3,
    "space": {"lr": {"log": [1e-4, 1e-1], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9},
}


def _bomb(levels: int) -> str:
    """Nested aliases: each level is a list of 9 aliases of the level below, so the last one expands to
    9**levels strings (levels=9: 387 million, from under 500 bytes)."""
    items = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return ("name: x\nworkload: digits_mlp\nspace: {lr: {log: [1e-3, 1e-1]}}\n"
            "max_epochs: [" + ", ".join(items) + "]\n")


# --- YAML alias bombs and the size of error messages ------------------------------------------------
@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused_in_one_short_line_at_once(tmp_path, levels, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels))
    assert len(path.read_bytes()) < 500
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        config.load(path)
    took = time.perf_counter() - start
    assert took < 1.0, f"{took:.2f} s"
    assert len(str(info.value)) < 300, str(info.value)[:300]
    assert cli.main(["check", str(path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400, err[:400]
    assert "more than 10000 values once its aliases" in err and str(path) in err


def test_a_recursive_alias_is_refused_in_one_line(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: &a [x, *a]\nworkload: digits_mlp\nmax_epochs: 3\nspace: {lr: {log: [1e-3, 1e-1]}}\n")
    with pytest.raises(ConfigError, match="contains itself"):
        config.load(path)


def test_many_aliases_of_a_small_value_below_the_cap_still_load(tmp_path):
    # aliases are fine as such: a document that expands to a few hundred nodes is an ordinary config
    path = tmp_path / "ok.yaml"
    path.write_text("name: t\nworkload: digits_mlp\nmax_epochs: &e 3\nasha: {grace_period: *e}\n"
                    "space: {lr: {log: [1e-3, 1e-1]}, optimizer: &o [sgd, adam], also: *o}\n")
    cfg = config.load(path)
    assert cfg.asha.grace_period == 3 and len(cfg.groups()) == 4


@pytest.mark.parametrize("key, value", [
    ("max_epochs", "x" * 1_000_000),                        # a long string echoed as "got ..."
    ("max_epochs", [[list(range(50))] * 50] * 3),           # a nested value echoed as "got ..."
    ("name", "n" * 1_000_000),                               # the name's own check repeats it
    ("workload", "nope." + "w" * 1_000_000 + ":f"),         # the workload loader's message repeats it
    ("space", {"lr": {"log": [1e-3, 1e-1]}, "optimizer": "o" * 1_000_000}),
])
def test_every_config_error_is_bounded(key, value):
    with pytest.raises(ConfigError) as info:
        config.parse({**GOOD, key: value}, "big.yaml")
    message = str(info.value)
    assert message.startswith("big.yaml: ") and "\n" not in message
    assert len(message) <= 1000, len(message)


# --- names and sizes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["digits\n", "dig\nits", "digits\r", "tab\there", "nul\x00", "bell\x07", "esc\x1b[31m"])
def test_a_name_with_a_control_character_is_refused(name):
    with pytest.raises(ConfigError) as info:
        config.parse({**GOOD, "name": name}, "c.yaml")
    assert str(info.value).startswith("c.yaml: name") and "\n" not in str(info.value)


def test_a_name_with_a_trailing_newline_in_yaml_is_refused_and_creates_nothing(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "name": "digits\n", "storage": str(tmp_path / "runs")}))
    assert cli.main(["run", str(path), "--no-check"]) == cli.EXIT_BAD_INPUT
    assert "name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_space_over_the_cap_is_refused_saying_how_to_raise_it():
    space = {"lr": {"log": [1e-4, 1e-1]}, **{k: list(range(10)) for k in "abcde"}}  # 100,000 groups
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        config.parse({**GOOD, "space": space}, "big.yaml")
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "400000 trials" in message and "100000 groups" in message
    assert "max_trials_per_round=1000" in message and "raise max_trials_per_round" in message
    # raised as told, the same space is accepted (counted, not built: groups() is only built on demand)
    cfg = config.parse({**GOOD, "space": space, "max_trials_per_round": 400_000}, "big.yaml")
    assert cfg.max_trials_per_round == 400_000


def test_refinement_rounds_count_against_the_cap_too():
    space = {"lr": {"log": [1e-4, 1e-1]}, "width": list(range(100))}
    with pytest.raises(ConfigError, match=r"zoom: a refinement round would hold up to 1100 trials"):
        config.parse({**GOOD, "space": space, "max_trials_per_round": 500,
                      "zoom": {"groups": 100, "points_per_round": 10}}, "z.yaml")


def test_the_cap_counts_exactly():
    # 4 lr values x 10 widths = 40 trials in round 0: a cap of 40 admits it, 39 refuses it
    space = {"lr": {"log": [1e-4, 1e-1]}, "width": list(range(10))}
    assert config.parse({**GOOD, "space": space, "max_trials_per_round": 40})
    with pytest.raises(ConfigError, match="40 trials"):
        config.parse({**GOOD, "space": space, "max_trials_per_round": 39})
