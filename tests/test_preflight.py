"""Pre-flight checks: each deliberately broken workload is caught by the right check, and only by it."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest
import torch

from orchestrator.preflight import CHECK_NAMES, Check, failed, format_checks, run_checks

CONFIG = {"width": 64, "depth": 2, "dropout": 0.2, "weight_decay": 1e-4, "batch_size": 32, "lr": 0.01, "seed": 0}
GRID = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
NAMES = [
    "initial_loss",
    "overfit_small",
    "regularisation",
    "gradients",
    "preprocessing",
    "initialisation",
    "validation_split",
    "hp_dropout",
    "hp_batch_size",
    "hp_lr_grid",
]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


@pytest.fixture(scope="module")
def healthy() -> list[Check]:
    return run_checks("digits_mlp", CONFIG, GRID)


def test_healthy_digits_passes_everything(healthy):
    assert [c.name for c in healthy] == NAMES == list(CHECK_NAMES)
    assert all(c.status == "pass" for c in healthy), format_checks(healthy)
    assert failed(healthy) == []


@pytest.mark.parametrize(
    "plugin, expected",
    [
        ("wrong_output_size", {"initial_loss"}),
        ("labels_ignored", {"overfit_small"}),
        ("bad_backward", {"gradients"}),
        # Raw 0..16 pixels also blow the initial loss up (~9 ln C): the first layer is scaled for
        # unit-variance inputs. That is a true finding, not a false alarm, so both are expected.
        ("raw_inputs", {"preprocessing", "initial_loss"}),
        # An all-zero network cannot learn at all (every weight gradient is exactly 0): overfit_small
        # failing too is a true finding. See broken_workloads.zero_init.
        ("zero_init", {"initialisation", "overfit_small"}),
        ("train_val_overlap", {"validation_split"}),
    ],
)
def test_broken_workload_is_caught_by_the_right_check(plugin, expected):
    checks = run_checks(f"tests.broken_workloads:{plugin}", CONFIG, GRID)
    assert {c.name for c in failed(checks)} == expected, format_checks(checks)
    # Warnings, if any, are only the documented knock-on: regularisation is inconclusive when the
    # model cannot overfit without it either.
    warned = {c.name for c in checks if c.status == "warn"}
    assert warned <= ({"regularisation"} if "overfit_small" in expected else set()), format_checks(checks)


def test_hyperparameter_sanity_warns_and_never_fails():
    config = {**CONFIG, "dropout": 0.7, "batch_size": 8}
    checks = by_name(run_checks("digits_mlp", config, [1e-3, 3e-3]))
    assert failed(list(checks.values())) == []
    for name in ("hp_dropout", "hp_batch_size", "hp_lr_grid"):
        assert checks[name].status == "warn", checks[name]
    assert checks["hp_dropout"].measured == "dropout=0.7"
    assert checks["hp_batch_size"].measured == "batch_size=8"
    assert checks["hp_lr_grid"].measured.startswith("0.48 decades")


@pytest.mark.parametrize(
    "config, grid, name, status",
    [
        ({"dropout": 0.0}, None, "hp_dropout", "pass"),  # no dropout: nothing to judge
        ({"dropout": 0.5}, None, "hp_dropout", "pass"),
        ({"dropout": 0.1}, None, "hp_dropout", "warn"),
        ({"batch_size": 32}, None, "hp_batch_size", "pass"),
        ({}, None, "hp_lr_grid", "pass"),  # no grid given
        ({}, [1e-4, 1e-1], "hp_lr_grid", "pass"),  # exactly 3 decades
        ({}, [1e-4, 9e-2], "hp_lr_grid", "warn"),
        ({"dropout": 0.0, "weight_decay": 0.0}, None, "regularisation", "pass"),  # n/a
        ({"dropout": 0.3, "weight_decay": 0.0}, None, "regularisation", "pass"),  # dropout alone
        ({"dropout": 0.0, "weight_decay": 1e-3}, None, "regularisation", "pass"),  # weight decay alone
    ],
)
def test_single_check_outcomes(config, grid, name, status):
    (check,) = run_checks("digits_mlp", {**CONFIG, **config}, grid, only=[name])
    assert (check.name, check.status) == (name, status), check


def test_regression_workload_skips_initial_loss(monkeypatch):
    import tests.broken_workloads as bw

    def regression(config):
        work = bw._digits(config, n_out=1)
        work.loss = lambda out, y: torch.nn.functional.mse_loss(out.squeeze(-1), y.float())
        work.num_classes = None
        return work

    monkeypatch.setattr(bw, "regression", regression, raising=False)
    checks = run_checks("tests.broken_workloads:regression", {**CONFIG, "dropout": 0.0})
    assert failed(checks) == [], format_checks(checks)
    assert by_name(checks)["initial_loss"].measured.startswith("n/a")


def test_a_crashing_check_is_reported_as_failed_not_raised(monkeypatch):
    import tests.broken_workloads as bw

    def three_outputs(config):  # CrossEntropy with targets >= 3 raises inside the loss
        return bw._digits(config, n_out=3)

    monkeypatch.setattr(bw, "three_outputs", three_outputs, raising=False)
    checks = by_name(
        run_checks("tests.broken_workloads:three_outputs", CONFIG, only=["initial_loss", "validation_split"])
    )
    assert checks["initial_loss"].status == "fail"
    assert checks["initial_loss"].measured.startswith("raised IndexError")
    assert checks["validation_split"].status == "pass"


def bare_linear(config: dict):
    """Plugin: multinomial logistic regression on digits, the model a bare ``nn.Linear``."""
    from orchestrator.workloads import Workload
    from orchestrator.workloads.digits import digits_arrays

    x_tr, y_tr, x_va, y_va = digits_arrays()
    data = torch.utils.data.TensorDataset
    return Workload(
        model=torch.nn.Linear(64, 10),
        train=data(x_tr, y_tr),
        val=data(x_va, y_va),
        loss=torch.nn.CrossEntropyLoss(),
        num_classes=10,
    )


def test_a_bare_linear_model_passes_with_its_one_layer_named_exempt():
    checks = by_name(run_checks("tests.test_preflight:bare_linear", {}))
    assert failed(list(checks.values())) == [], format_checks(list(checks.values()))
    init = checks["initialisation"]
    assert init.measured == "n/a (1 Linear/Conv layer, none before a known activation)", init
    assert "output layer" in init.advice


def test_only_runs_the_named_checks_in_canonical_order():
    checks = run_checks("digits_mlp", CONFIG, only={"hp_lr_grid", "initial_loss"})
    assert [c.name for c in checks] == ["initial_loss", "hp_lr_grid"]


def test_no_global_state_leaks():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dtype, threads, grad = torch.get_default_dtype(), torch.get_num_threads(), torch.is_grad_enabled()
    with torch.no_grad():
        run_checks("digits_mlp", CONFIG)
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected)  # the global RNG stream is untouched
    assert (torch.get_default_dtype(), torch.get_num_threads(), torch.is_grad_enabled()) == (dtype, threads, grad)


def test_deterministic(healthy):
    assert run_checks("digits_mlp", CONFIG, GRID) == healthy


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"workload": ""}, "workload"),
        ({"config": [("width", 64)]}, "config"),
        ({"lr_grid": []}, "lr_grid"),
        ({"lr_grid": [0.1, -1.0]}, "lr_grid"),
        ({"config": {**CONFIG, "dropout": 1.0}}, "dropout"),
        ({"config": {**CONFIG, "weight_decay": -1e-4}}, "weight_decay"),
        ({"config": {**CONFIG, "batch_size": 0}}, "batch_size"),
        ({"config": {**CONFIG, "seed": "zero"}}, "seed"),
        ({"lr_grid": ["1e-3"]}, "lr_grid"),
        ({"only": ["overfit"]}, "only"),
        ({"only": "gradients"}, "only"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_key(kwargs, key):
    arguments = {"workload": "digits_mlp", "config": CONFIG, "lr_grid": None, **kwargs}
    with pytest.raises(ValueError, match=key):
        run_checks(**arguments)


def test_unknown_workload_raises_workload_error():
    from orchestrator.workloads import WorkloadError

    with pytest.raises(WorkloadError):
        run_checks("no_such_workload", CONFIG)


def test_check_contract_and_formatting(healthy):
    check = healthy[0]
    assert dataclasses.is_dataclass(check)
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.status = "fail"  # type: ignore[misc]
    with pytest.raises(ValueError, match="status"):
        Check("x", "ok", "1", "none")
    assert pickle.loads(pickle.dumps(healthy)) == healthy  # crosses process boundaries (Ray, CLI)
    text = format_checks(healthy + [Check("demo", "fail", "42", "do something")])
    lines = text.splitlines()
    assert len(lines) == len(healthy) + 1
    assert lines[-1].startswith("FAIL") and "demo" in lines[-1] and "42" in lines[-1]
    assert lines[-1].endswith("do something")
    assert format_checks([]) == ""


def test_initial_loss_is_measured_against_ln_c_within_the_documented_band(healthy):
    """check_initial_loss's docstring: an untrained classifier scores ~ln(C); healthy is 0.75-1.75 ln(C)."""
    check = by_name(healthy)["initial_loss"]
    loss, rest = check.measured.split(" vs ")
    assert rest == f"ln(10)={math.log(10):.3f}"  # digits: 10 classes
    assert 0.75 * math.log(10) <= float(loss) <= 1.75 * math.log(10), check
    assert check.status == "pass"
