"""`sweep check` and the pre-flight gate in `sweep run`: a broken workload never fans out."""

import pytest

from orchestrator import cli

from .conftest import ROOT


def test_check_passes_on_the_demo_config(capsys):
    assert cli.main(["check", str(ROOT / "examples" / "digits.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") >= 7 and "FAIL" not in out


@pytest.mark.parametrize(
    "workload, check",
    [
        ("tests.broken_workloads:wrong_output_size", "initial_loss"),
        ("tests.broken_workloads:train_val_overlap", "validation_split"),
    ],
)
def test_run_refuses_a_broken_workload_before_fanning_out(tmp_path, capsys, workload, check):
    path = tmp_path / "broken.yaml"
    path.write_text(
        f"name: broken\nworkload: {workload}\nmax_epochs: 2\nstorage: {tmp_path / 'runs'}\n"
        "space: {lr: {log: [1e-3, 1e-1]}}\n"
    )
    assert cli.main(["check", str(path)]) == 3
    assert cli.main(["run", str(path)]) == 3
    err = capsys.readouterr().err
    assert check in err and "nothing was submitted" in err
    assert not (tmp_path / "runs").exists()  # no Ray started, no folder claimed


def test_a_typo_in_space_is_refused_before_the_checks(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text(
        f"name: typo\nworkload: digits_mlp\nmax_epochs: 2\nstorage: {tmp_path / 'runs'}\n"
        "space: {lr: {log: [1e-3, 1e-1]}, optimiser: adam}\n"
    )
    assert cli.main(["check", str(path)]) == 2
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert (
        err
        == [
            f"sweep: error: {path}: space.optimiser: unknown key, neither the trial nor the workload "
            f"digits_mlp reads it; did you mean 'optimizer'? (a plugin declares the keys it reads: "
            f"space_keys = {{...}})"
        ]
        * 2
    )
    assert not (tmp_path / "runs").exists()
