"""Decay laws: one contract over every registered law (and a warm-up-wrapped one), checked against closed forms
with a real torch optimizer, as PyTorch's own test_lrscheduler.py does. Pure torch, no Ray."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch

from schedules import (
    LAWS,
    Constant,
    Cosine,
    Exponential,
    Inverse,
    Plateau,
    Step,
    Warmup,
    attach,
    describe_laws,
    law_config,
    law_from_config,
    law_params,
    plot_laws,
)

# Built from the registry: a new law is under contract without a new test.
CASES = (
    [cls() for cls in LAWS.values()]
    + [Warmup(law=cls(), warmup=3) for cls in LAWS.values()]
    + [
        Step(step_size=3, gamma=0.5),
        Step(gamma=1.0),
        Inverse(eps=1.0),
        Exponential(eps=0.0),
        Cosine(t_max=20, eta_min=0.1),
        Plateau(patience=2, factor=0.5),
        Plateau(patience=0),
    ]  # lr falls below 1e-8 within 30 epochs: catches torch's eps floor
)
BASE_LRS = (0.1, 0.05)  # two param groups: each must follow its own base lr
# Improves every 6 epochs, stalls in between: exercises plateau state; never improving after each drop.
LOSSES = [1.0 / (1 + t // 6) for t in range(60)]


def _warmup(law) -> int:
    return law.warmup if isinstance(law, Warmup) else 0


def _optimizer() -> torch.optim.Optimizer:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return torch.optim.SGD([{"params": [model.weight], "lr": BASE_LRS[0]}, {"params": [model.bias], "lr": BASE_LRS[1]}])


def _train_one_epoch(opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    params = [p for g in opt.param_groups for p in g["params"]]
    sum((p**2).sum() for p in params).backward()
    opt.step()


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


@pytest.mark.parametrize("law", CASES, ids=repr)
def test_factor_is_one_at_first_epoch_after_warmup(law):
    assert law(_warmup(law)) == 1.0
    assert all(0 < law(t) <= 1 for t in range(_warmup(law)))


@pytest.mark.filterwarnings("error")  # no torch warnings about step order from our sequencing
@pytest.mark.parametrize("law", CASES, ids=repr)
def test_torch_optimizer_follows_closed_form(law):
    opt = _optimizer()
    stepper = attach(opt, law)
    for t in range(30):
        expected = [base * law(t) for base in BASE_LRS]
        assert _lrs(opt) == pytest.approx(expected, rel=1e-9, abs=0), f"epoch {t}"
        assert stepper.lr == _lrs(opt)[0]
        _train_one_epoch(opt)
        stepper.step(1.0)  # a loss that never improves: plateau's closed form


@pytest.mark.parametrize("law", CASES, ids=repr)
def test_law_and_stepper_state_pickle(law):
    again = pickle.loads(pickle.dumps(law))
    assert again == law and [again(t) for t in range(40)] == [law(t) for t in range(40)]

    opt = _optimizer()
    stepper = attach(opt, law)
    for t in range(7):
        _train_one_epoch(opt)
        stepper.step(LOSSES[t])
    state = stepper.state_dict()
    assert pickle.loads(pickle.dumps(state)) == state
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)  # plain data: a checkpoint loads without trusting pickled classes


# Cut well past any warm-up, and inside the warm-up for the wrapped laws.
CUTS = [(law, 13) for law in CASES] + [(law, 2) for law in CASES if isinstance(law, Warmup)]


@pytest.mark.parametrize("law, cut", CUTS, ids=repr)
def test_state_dict_round_trip_continues_the_curve(law, cut):
    opt = _optimizer()
    stepper = attach(opt, law)
    for t in range(cut):
        _train_one_epoch(opt)
        stepper.step(LOSSES[t])
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "stepper": stepper.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    restored_opt = _optimizer()
    restored_opt.load_state_dict(saved["opt"])
    restored = attach(restored_opt, law)
    restored.load_state_dict(saved["stepper"])
    # Restoring the stepper alone (fresh optimizer) lands on the same curve too.
    bare_opt = _optimizer()
    bare = attach(bare_opt, law)
    bare.load_state_dict(saved["stepper"])

    for t in range(cut, 30):
        assert _lrs(restored_opt) == _lrs(opt) == _lrs(bare_opt), f"epoch {t}"
        for o, s in ((opt, stepper), (restored_opt, restored), (bare_opt, bare)):
            _train_one_epoch(o)
            s.step(LOSSES[t])


def test_state_of_another_law_is_refused():
    stepper = attach(_optimizer(), Step())
    other = attach(_optimizer(), Step(gamma=0.5)).state_dict()
    with pytest.raises(ValueError, match="state\\['law'\\]"):
        stepper.load_state_dict(other)


def _diverges(terms: list[float]) -> bool:
    """Numeric divergence test for a series with non-negative, eventually monotone terms: sum over the decade
    [10^4, 10^5) against the decade before. A divergent series keeps adding at least about as much per decade
    (constant: x10, harmonic: x1); a convergent one's decade sums shrink (1/t^2: x0.1, geometric: to 0).
    Threshold 0.5 separates t^-p at p ~ 1.3."""
    earlier, later = math.fsum(terms[1_000:10_000]), math.fsum(terms[10_000:100_000])
    return later > 0 and later >= 0.5 * earlier


@pytest.mark.parametrize("law", CASES, ids=repr)
def test_robbins_monro_verdict_matches_numeric_sums(law):
    eta = [law(t) for t in range(100_000)]
    numeric = _diverges(eta) and not _diverges([x * x for x in eta])
    holds, reason = law.robbins_monro()
    assert holds == numeric
    assert isinstance(reason, str) and reason.endswith(".")


def test_robbins_monro_verdicts_as_documented():
    assert not Constant().robbins_monro()[0]
    assert not Step().robbins_monro()[0]
    assert not Exponential().robbins_monro()[0]
    assert Inverse().robbins_monro()[0]
    assert "constant" in Cosine(eta_min=0.1).robbins_monro()[1]
    assert "depends on the data" in Plateau().robbins_monro()[1]
    assert Warmup(law=Inverse()).robbins_monro()[0]


# Plateau with a scripted loss, lrs worked out by hand (torch: reduce when bad epochs > patience, rel threshold 1e-4).
SCRIPT = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.7]
#         best  best  bad1  bad2  bad3->x.5 best bad1 bad2 bad3->x.5 bad1 best
SCRIPT_LRS = [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]  # lr during epoch 0..11


def _drive(law, losses):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    stepper = attach(opt, law)
    lrs = [stepper.lr]
    for loss in losses:
        _train_one_epoch(opt)
        stepper.step(loss)
        lrs.append(stepper.lr)
    return lrs


def test_plateau_scripted_losses():
    assert _drive(Plateau(patience=2, factor=0.5), SCRIPT) == pytest.approx(SCRIPT_LRS)


def test_warmup_plateau_ignores_warmup_losses():
    # Very low losses during warm-up would make every later loss "bad" if the plateau saw them.
    lrs = _drive(Warmup(law=Plateau(patience=2, factor=0.5), warmup=2), [0.01, 0.01] + SCRIPT)
    assert lrs == pytest.approx([1 / 3, 2 / 3] + SCRIPT_LRS)


def test_step_and_cosine_by_hand():
    assert [Step(step_size=2, gamma=0.5)(t) for t in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    cos = Cosine(t_max=4, eta_min=0.2)
    assert [cos(t) for t in (0, 2, 4, 9)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert [Warmup(law=Constant(), warmup=3)(t) for t in range(5)] == [0.25, 0.5, 0.75, 1, 1]


BAD = [
    (Step, {"gamma": 0}, "gamma"),
    (Step, {"gamma": 1.5}, "gamma"),
    (Step, {"gamma": -0.1}, "gamma"),
    (Step, {"step_size": 0}, "step_size"),
    (Step, {"step_size": 2.5}, "step_size"),
    (Step, {"gamma": "0.1"}, "gamma"),
    (Step, {"gamma": True}, "gamma"),
    (Inverse, {"eps": -0.1}, "eps"),
    (Inverse, {"eps": math.nan}, "eps"),
    (Exponential, {"eps": -1.0}, "eps"),
    (Plateau, {"patience": -1}, "patience"),
    (Plateau, {"factor": 1.0}, "factor"),
    (Plateau, {"factor": 0.0}, "factor"),
    (Cosine, {"t_max": 0}, "t_max"),
    (Cosine, {"eta_min": 1.5}, "eta_min"),
    (Warmup, {"warmup": -1}, "warmup"),
    (Warmup, {"law": "step"}, "law"),
]


@pytest.mark.parametrize("cls, kwargs, key", BAD, ids=lambda x: repr(x))
def test_bad_values_raise_value_error_naming_the_key(cls, kwargs, key):
    value = kwargs[key]
    with pytest.raises(ValueError, match=f"^{key}={repr(value)[:3]}.*expected"):
        cls(**kwargs)
    if key != "law":
        with pytest.raises(ValueError, match=f"^{key}="):
            law_from_config({"schedule": cls.name if cls is not Warmup else "constant", **kwargs})


def test_error_message_is_exact():
    with pytest.raises(ValueError) as err:
        Step(gamma=1.5)
    assert str(err.value) == "gamma=1.5: expected 0 < gamma <= 1"
    with pytest.raises(ValueError) as err:
        law_from_config({"schedule": "foo"})
    assert str(err.value) == "schedule='foo': expected one of constant, step, plateau, inverse, exponential, cosine"
    with pytest.raises(ValueError, match="schedule='foo'"):
        law_params("foo")


def test_law_from_config():
    assert law_from_config({}) == Constant()
    assert law_from_config({"lr": 0.1}) == Constant()
    # Keys of other laws are ignored: a config crosses many laws.
    crossing = {"schedule": "step", "gamma": 0.5, "eps": 3.0, "patience": -7, "t_max": 0, "step_size": 4.0}
    law = law_from_config(crossing)
    assert law == Step(step_size=4, gamma=0.5) and type(law.step_size) is int
    assert law_from_config({"schedule": "inverse", "eps": 0.5, "warmup": 0}) == Inverse(eps=0.5)
    assert law_from_config({"schedule": "plateau", "warmup": 4}) == Warmup(law=Plateau(), warmup=4)


@pytest.mark.parametrize("law", CASES, ids=repr)
def test_law_config_round_trip(law):
    assert law_from_config(law_config(law)) == law


def test_law_params_are_the_defaults():
    assert law_params("step") == {"step_size": 10, "gamma": 0.1}
    assert law_params("constant") == {}
    for name, cls in LAWS.items():
        assert law_from_config({"schedule": name, **law_params(name)}) == cls()


def test_describe_and_plot(tmp_path):
    text = describe_laws()
    for name, cls in LAWS.items():
        assert name in text and cls.formula in text
    assert "warmup" in text
    path = plot_laws(tmp_path / "laws.png", epochs=30)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
