"""What `sweep` refuses, each in one line: alias bombs, oversized spaces, unsafe names, symlinked folders,
edited resumes, full disks, damaged result files. Real files, real YAML, a real tmpfs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from orchestrator import cli, config, folder as folders, resume, storage, tuning
from orchestrator.config import ConfigError

GOOD = {
    "name": "t",
    "workload": "digits_mlp",
    "max_epochs": 3,
    "space": {"lr": {"log": [1e-4, 1e-1], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9},
}


def _bomb(levels: int) -> str:
    """Nested aliases: each level is a list of 9 aliases of the level below, so the last one expands to
    9**levels strings (levels=9: 387 million, from under 500 bytes)."""
    items = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "name: x\nworkload: digits_mlp\nspace: {lr: {log: [1e-3, 1e-1]}}\nmax_epochs: [" + ", ".join(items) + "]\n"


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
    path.write_text(
        "name: t\nworkload: digits_mlp\nmax_epochs: &e 3\nasha: {grace_period: *e}\n"
        "space: {lr: {log: [1e-3, 1e-1]}, width: &w [16, 32], depth: *w}\n"
    )
    cfg = config.load(path)
    assert cfg.asha.grace_period == 3 and len(cfg.groups()) == 4


@pytest.mark.parametrize(
    "key, value",
    [
        ("max_epochs", "x" * 1_000_000),  # a long string echoed as "got ..."
        ("max_epochs", [[list(range(50))] * 50] * 3),  # a nested value echoed as "got ..."
        ("name", "n" * 1_000_000),  # the name's own check repeats it
        ("workload", "nope." + "w" * 1_000_000 + ":f"),  # the workload loader's message repeats it
        ("space", {"lr": {"log": [1e-3, 1e-1]}, "optimizer": "o" * 1_000_000}),
    ],
)
def test_every_config_error_is_bounded(key, value):
    with pytest.raises(ConfigError) as info:
        config.parse({**GOOD, key: value}, "big.yaml")
    message = str(info.value)
    assert message.startswith("big.yaml: ") and "\n" not in message
    assert len(message) <= 1000, len(message)


# --- names and sizes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["digits\n", "dig\nits", "digits\r", "tab\there", "nul\x00", "bell\x07", "esc\x1b[31m"]
)
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
    keys = ("width", "depth", "seed", "batch_size", "dropout")  # keys the trial or workload reads
    space = {"lr": {"log": [1e-4, 1e-1]}, **{k: list(range(1, 11)) for k in keys}}  # 100,000 groups
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
        config.parse(
            {**GOOD, "space": space, "max_trials_per_round": 500, "zoom": {"groups": 100, "points_per_round": 10}},
            "z.yaml",
        )


def test_the_cap_counts_exactly():
    # 4 lr values x 10 widths = 40 trials in round 0: a cap of 40 admits it, 39 refuses it
    space = {"lr": {"log": [1e-4, 1e-1]}, "width": list(range(10))}
    assert config.parse({**GOOD, "space": space, "max_trials_per_round": 40})
    with pytest.raises(ConfigError, match="40 trials"):
        config.parse({**GOOD, "space": space, "max_trials_per_round": 39})


# --- sweep folders: symbolic links, full disks -------------------------------------------------------
def _config_file(tmp_path, storage, name="t", **extra) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "name": name, "storage": str(storage), **extra}))
    return path


def test_a_symlinked_sweep_folder_is_refused_for_a_new_run(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "t").symlink_to(elsewhere)
    cfg = _config_file(tmp_path, tmp_path / "runs")
    assert cli.main(["run", str(cfg), "--no-check"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a symbolic link" in err and str(elsewhere) in err
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(storage.StorageError, match="symbolic link"):
        folders.claim_folder(tmp_path / "runs" / "t", "x")  # the claim itself checks too (a link made later)
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_sweep_folder_is_refused_on_resume(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sweep.yaml").write_text("# planted\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "t").symlink_to(elsewhere)
    cfg = config.load(_config_file(tmp_path, tmp_path / "runs"))
    with pytest.raises(storage.StorageError, match="is a symbolic link"):
        tuning.run(cfg, tuning.RunOptions(resume=True, quiet=True))  # refused before Tune or Ray is asked anything
    assert [p.name for p in elsewhere.iterdir()] == ["sweep.yaml"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 2 MB tmpfs mounted for the test (root only), unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk, leave: int = 0) -> None:
    """Fill the disk, then free ``leave`` bytes (tmpfs counts whole 4 KiB pages)."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:
        os.truncate(disk / "filler", max(0, os.path.getsize(disk / "filler") - leave))
    except OSError:
        pass
    assert shutil.disk_usage(disk).free == leave


def test_a_claim_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, capsys):
    _fill(tiny_disk)
    cfg = _config_file(tmp_path, tiny_disk / "runs")
    folder = tiny_disk / "runs" / "t"
    with pytest.raises(storage.StorageError) as info:
        folders.claim_folder(folder, cfg.read_text())
    message = str(info.value)
    assert "\n" not in message and str(folder) in message and "No space left on device" in message
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]  # no runs/t/sweep.yaml keeps the name
    # the same through `sweep run` (Ray is never started: the claim fails first), then with space again
    (tiny_disk / "filler").unlink()
    folders.claim_folder(folder, "first")  # the name was never taken
    assert (folder / "sweep.yaml").read_text() == "first"


def test_a_failed_preflight_write_undoes_the_claim(tiny_disk, tmp_path):
    _fill(tiny_disk, leave=4096)  # room for sweep.yaml, none for preflight.json
    cfg = config.load(_config_file(tmp_path, tiny_disk / "runs"))
    checks = [types.SimpleNamespace(name="big", status="pass", measured="", advice="x" * 20000)]
    with pytest.raises(storage.StorageError) as info:
        options = tuning.RunOptions(config_text="name: t\n", checks=checks, quiet=True)
        tuning.run(cfg, options)  # fails before Tune starts
    message = str(info.value)
    assert "preflight.json" in message and "No space left on device" in message and "\n" not in message
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_cli_run_on_a_full_disk_exits_2_in_one_line(tiny_disk, tmp_path, capsys, local_ray):
    _fill(tiny_disk)
    cfg = _config_file(tmp_path, tiny_disk / "runs")
    assert cli.main(["run", str(cfg), "--no-check", "--quiet"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


# --- damaged result files: `sweep report` says what is wrong in one line -----------------------------
def _retype(column, typ, convert):
    def mutate(folder):
        table = pq.read_table(folder / "trials.parquet")
        values = [None if v is None else convert(v) for v in table.column(column).to_pylist()]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, type=typ))
        pq.write_table(table, folder / "trials.parquet")

    return mutate


def _write(name, content):
    def mutate(folder):
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    return mutate


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (_retype("val_loss", pa.string(), str), "column val_loss holds string, expected double"),
        (_retype("lr", pa.string(), str), "column lr holds string, expected double"),
        (_retype("round", pa.float64(), float), "column round holds double, expected int32"),
        (_retype("group", pa.string(), str), "column group holds string, expected int32"),
        (_retype("trial_id", pa.int64(), len), "column trial_id holds int64, expected string"),
        (_retype("epoch_seconds", pa.string(), str), "column epoch_seconds holds string"),
        (_retype("trial_id", pa.string(), lambda v: None), "column trial_id has"),
        (_retype("config", pa.string(), lambda v: "[1]"), "config is not a JSON object"),
        (_retype("config", pa.int64(), lambda v: 3), "column config holds int64"),
        (_write("rounds.json", b"\xff\xfe\x00"), "rounds.json: corrupt JSON"),
        (_write("rounds.json", "{bad"), "rounds.json: corrupt JSON"),
        (_write("rounds.json", "[1, 2]"), "rounds.json: expected a JSON object, got list"),
        (_write("rounds.json", '{"rounds": "abc"}'), "rounds.json: rounds: unexpected value 'abc'"),
        (_write("rounds.json", '{"rounds": [1]}'), "rounds.json: rounds[0]: expected an object"),
        (_write("rounds.json", '{"max_epochs": "x"}'), "rounds.json: max_epochs"),
        (_write("rounds.json", '{"metric": 3}'), "rounds.json: metric"),
        (_write("rounds.json", '{"groups": "abc"}'), "rounds.json: groups"),
        (_write("rounds.json", '{"cliff_margin": "abc"}'), "rounds.json: cliff_margin"),
        (_write("rounds.json", '{"rounds": [{"brackets": {"0": "ab"}}]}'), "rounds[0].brackets['0']"),
        (_write("preflight.json", '{"a": 1}'), "preflight.json: expected a list of checks"),
        (_write("preflight.json", "[1, 2]"), "preflight.json: [0]: expected a check"),
    ],
)
def test_a_damaged_result_file_is_one_line_exit_2(tmp_path, capsys, mutate, expected):
    from .test_report import make_sweep

    folder = make_sweep(tmp_path / "s")
    mutate(folder)
    assert cli.main(["report", str(folder)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sweep: error: ") and err.count("\n") == 1 and len(err) < 600, err
    assert expected in err


def test_a_malformed_best_json_is_rebuilt_and_integers_of_another_width_are_read(tmp_path, capsys):
    from .test_report import make_sweep

    folder = make_sweep(tmp_path / "s")
    want = cli.main(["report", str(folder)]), json.loads((folder / "best.json").read_text())
    (folder / "best.json").write_text("{bad")  # an output of the report, never read: rebuilt
    _retype("epoch", pa.int64(), int)(folder)  # int64 for int32: lossless, read as the schema says
    assert (cli.main(["report", str(folder)]), json.loads((folder / "best.json").read_text())) == want


# --- resuming with an edited config ------------------------------------------------------------------
RESUMED = {
    "name": "edited",
    "workload": "digits_mlp",
    "max_epochs": 2,
    "space": {"lr": {"log": [1e-3, 1e-1], "per_decade": 1}, "optimizer": "sgd", "momentum": 0.9, "width": 16},
    "asha": {"enabled": False},
    "zoom": {"max_rounds": 1},
}


def _edited(tmp_path, name: str, **changes) -> Path:
    data = json.loads(json.dumps({**RESUMED, "storage": str(tmp_path / "runs")}))
    for key, value in changes.items():
        target = data
        parts = key.split("__")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_resume_with_an_edited_config_is_refused_naming_each_key(local_ray, tmp_path, capsys):
    from orchestrator import run_sweep

    first = _edited(tmp_path, "first")
    run_sweep(config.load(first), quiet=True, config_text=first.read_text())
    folder = tmp_path / "runs" / "edited"
    before = _snapshot(folder)

    # what the issue saw: max_epochs, the lr range and the optimizer changed, --resume exited 0
    edited = _edited(
        tmp_path, "edited", max_epochs=3, space__lr={"log": [1e-4, 1e-1], "per_decade": 1}, space__optimizer="adam"
    )
    assert cli.main(["run", str(edited), "--resume", "--quiet"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweep: error: cannot resume"), err
    for change in (
        "max_epochs: 2 -> 3",
        "space.lr.log: [0.001, 0.1] -> [0.0001, 0.1]",
        "space.optimizer: 'sgd' -> 'adam'",
    ):
        assert change in err, err
    assert "width" not in err and "zoom" not in err.split("(")[0]  # only what changed is named
    assert _snapshot(folder) == before  # nothing in the folder was touched

    # a key added to the space, or the seed or the metric: the same
    for name, changes, key in [
        ("added", {"space__dropout": 0.1}, "space.dropout: (absent) -> 0.1"),
        ("seed", {"seed": 1}, "seed: 0 -> 1"),
        ("asha", {"asha__enabled": True}, "asha.enabled: False -> True"),
    ]:
        assert cli.main(["run", str(_edited(tmp_path, name, **changes)), "--resume", "--quiet"]) == 2
        assert key in capsys.readouterr().err
    assert _snapshot(folder) == before

    # more rounds for a search that had ended: refused too (Tune would not plan them), saying why
    assert cli.main(["run", str(_edited(tmp_path, "more", zoom__max_rounds=2)), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "zoom.max_rounds 1 -> 2" in err and "had already ended" in err
    assert _snapshot(folder) == before

    # resources may change: allowed, printed and recorded in resume.log
    assert cli.main(["run", str(_edited(tmp_path, "cpus", resources__cpu=0.5)), "--resume"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "[sweep] resumed with resources.cpu 1.0 -> 0.5" in out
    assert "resumed with resources.cpu 1.0 -> 0.5" in (folder / "resume.log").read_text()
    assert _snapshot(folder)["trials.parquet"] == before["trials.parquet"]


def test_resume_changes_tells_what_extends_from_what_alters():
    stored = config.parse({**GOOD, "zoom": {"budget_fte": 10}})
    grown = config.parse({**GOOD, "zoom": {"max_rounds": 5, "budget_fte": 20}, "resources": {"cpu": 2}})
    assert resume.resume_changes(stored, grown) == (
        [],
        {"resources.cpu": (1.0, 2.0), "zoom.budget_fte": (10.0, 20.0), "zoom.max_rounds": (2, 5)},
    )
    refused, allowed = resume.resume_changes(grown, stored)  # fewer rounds, a smaller budget: refused
    assert refused == ["zoom.budget_fte: 20.0 -> 10.0", "zoom.max_rounds: 5 -> 2"]
    assert allowed == {"resources.cpu": (2.0, 1.0)}
    unlimited = config.parse(GOOD)  # budget_fte null: no limit, so lifting a budget extends, adding one not
    assert resume.resume_changes(stored, unlimited) == ([], {"zoom.budget_fte": (10.0, None)})
    assert resume.resume_changes(unlimited, stored)[0] == ["zoom.budget_fte: None -> 10.0"]
    # name and storage say where the sweep is, not what it trains
    assert resume.resume_changes(
        stored, config.parse({**GOOD, "zoom": {"budget_fte": 10}, "name": "u", "storage": "/elsewhere"})
    ) == ([], {})
    # the Python API stores its config as YAML: read back, it is the same config
    assert resume.resume_changes(stored, config.loads(config.dump(stored))) == ([], {})


# more rounds on --resume of an interrupted sweep (allowed, then run): test_resilience's Ctrl-C test
