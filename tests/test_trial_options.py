"""The built-in loop's options (amp, grad_clip, grad_accum) and the workloads shared through Ray's object
store: real torch on small data, a real local Ray for the sharing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from orchestrator import session, workloads
from orchestrator.config import ConfigError, loads
from orchestrator.sharing import share_workloads, shared_workload
from orchestrator.trial import data_subset, train_trial, train_workload, trainable
from orchestrator.trialkeys import Amp, loop_options

space_keys = frozenset({"n"})


def linear(config: dict) -> workloads.Workload:
    """A linear regression on a fixed random set (the weights, too, are fixed by the seed)."""
    g = torch.Generator().manual_seed(1)
    n = int(config.get("n", 16))
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    torch.manual_seed(0)
    return workloads.Workload(
        model=nn.Linear(3, 1),
        train=torch.utils.data.TensorDataset(x, y),
        val=torch.utils.data.TensorDataset(x[:4], y[:4]),
        loss=nn.MSELoss(),
    )


linear.space_keys = space_keys  # type: ignore[attr-defined]
WORKLOAD = "tests.test_trial_options:linear"


def train(**keys) -> tuple[session.Trial, list[dict], dict]:
    """One epoch of the built-in loop on ``linear``; the trial, its reports and the final model state."""
    config = {
        "workload": WORKLOAD,
        "lr": 0.1,
        "optimizer": "sgd",
        "momentum": 0.0,
        "max_epochs": 1,
        "checkpoint_every": 1,
        **keys,
    }
    saved: dict = {}
    trial = session.Trial(config, sink=lambda metrics, state: saved.update(state or {}))
    history = session.run(train_workload, trial, wrap_errors=False)
    return trial, history, saved["model"]


def test_accumulating_two_batches_is_one_step_on_both():
    _, _, one = train(batch_size=16)
    trial, _, two = train(batch_size=8, grad_accum=2)
    assert trial.steps == 1  # 16 samples, batches of 8, a window of 2: one optimizer step
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)
    _, _, plain = train(batch_size=8)  # two steps differ: the equality above is not trivial
    assert not torch.allclose(plain["weight"], one["weight"], atol=1e-4)
    trial, _, _ = train(batch_size=4, n=20, grad_accum=2)  # 5 batches: windows 2, 2 and a last one of 1
    assert trial.steps == 3


def test_a_data_fraction_trains_on_the_same_subset_in_every_trial():
    trial, _, part = train(batch_size=4, n=20, data_fraction=0.4)
    assert trial.steps == 2  # 8 of 20 samples, batches of 4
    trial, _, whole = train(batch_size=4, n=20)
    assert trial.steps == 5
    x, y = linear({"n": 20}).train.tensors
    sub = data_subset(torch.utils.data.TensorDataset(x, y), 0.4)
    assert len(sub) == 8 and all(any(torch.equal(r, t) for t in x) for r in sub.tensors[0])
    torch.manual_seed(7)  # another trial's seed: the same samples
    assert torch.equal(data_subset(torch.utils.data.TensorDataset(x, y), 0.4).tensors[0], sub.tensors[0])
    assert not torch.allclose(part["weight"], whole["weight"], atol=1e-4)
    assert data_subset(linear({}).train, 1.0) is not None and len(data_subset(list(range(10)), 0.25)) == 2


def test_clipping_bounds_the_norm_the_optimizer_sees():
    norms: list[float] = []

    class Watched(session.Trial):
        def optimizer(self, params):
            opt = super().optimizer(params)
            params = [p for group in opt.param_groups for p in group["params"]]
            opt.register_step_pre_hook(
                lambda *_: norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
            )
            return opt

    config = {"workload": WORKLOAD, "lr": 0.1, "optimizer": "sgd", "max_epochs": 2, "batch_size": 4}
    session.run(train_workload, Watched({**config, "grad_clip": 0.05}), wrap_errors=False)
    assert len(norms) == 8 and max(norms) <= 0.05 * (1 + 1e-5)
    clipped = list(norms)
    norms.clear()
    session.run(train_workload, Watched(config), wrap_errors=False)
    assert max(norms) > 0.05 and len(clipped) == len(norms)  # without the clip the bound is broken


def test_bf16_autocast_on_the_cpu_reports_finite_losses():
    seen: list[torch.dtype] = []
    wl = workloads.build("digits_cnn", {"channels": 4})
    wl.model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    config = {
        "workload": "digits_cnn",
        "lr": 0.05,
        "optimizer": "momentum",
        "max_epochs": 1,
        "amp": "bf16",
        "channels": 4,
    }
    history = session.run(lambda c, t: train_workload(c, t, wl), session.Trial(config), wrap_errors=False)
    assert len(history) == 1 and not history[-1]["diverged"]
    assert all(math.isfinite(h[k]) for h in history for k in ("train_loss", "val_loss"))
    assert history[-1]["val_error"] < 0.5
    assert torch.bfloat16 in seen  # the convolution ran in bf16


def test_fp16_without_cuda_and_bad_values_are_refused():
    with pytest.raises(ValueError, match=r"amp=fp16: expected a CUDA device, the trial has cpu"):
        train(amp="fp16")
    assert loop_options({"amp": False}).amp is Amp.OFF  # YAML reads `amp: off` as false
    for key, value in (
        ("amp", "fp8"),
        ("grad_accum", 0),
        ("grad_clip", -1.0),
        ("num_workers", 1.5),
        ("data_fraction", 0),
        ("data_fraction", 1.5),
    ):
        with pytest.raises(ValueError, match=rf"^{key}="):
            loop_options({key: value})
    text = "name: x\nworkload: digits_mlp\nmax_epochs: 2\nspace: {lr: {log: [1e-3, 1e-1]}, grad_accum: [1, 0]}\n"
    with pytest.raises(ConfigError, match=r"space.grad_accum: grad_accum=0: expected an integer >= 1"):
        loads(text)


def test_shared_workloads_hold_the_tensors_a_trial_would_build(local_ray):
    configs = [{"workload": WORKLOAD, "max_epochs": 1, "n": n} for n in (16, 24)]
    shared = share_workloads(configs, "lr")
    assert shared is not None and len(shared.refs) == 2
    for config in configs:
        trial_config = {**config, "lr": 0.3, "round": 1, "group": 0, "seed_offset": 7, "_cpus": 1}
        got = shared_workload(shared, trial_config)
        built = workloads.build(WORKLOAD, config)
        assert got is not None
        for a, b in zip(got.train.tensors + got.val.tensors, built.train.tensors + built.val.tensors, strict=True):
            assert torch.equal(a, b)
        assert all(
            torch.equal(p, q)
            for p, q in zip(got.model.state_dict().values(), built.model.state_dict().values(), strict=True)
        )
    assert shared_workload(shared, {**configs[0], "n": 32}) is None  # a config not built: the trial builds it
    assert share_workloads(configs, "n") is None  # the factory reads the zoomed key: nothing shared
    cfg = loads(f"name: x\nworkload: '{WORKLOAD}'\nmax_epochs: 1\nspace: {{lr: {{log: [1e-3, 1e-1]}}, n: [8, 12]}}\n")
    assert trainable(cfg) is not train_trial  # the sweep's trainable carries the shared workloads
