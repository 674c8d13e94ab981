"""Pre-flight checks that inspect the workload's setup without training it: preprocessing,
initialisation, validation_split and the hyperparameter rules of thumb hp_dropout, hp_batch_size,
hp_lr_grid (run by ``orchestrator.preflight.run_checks``, which also documents the list).

Each ``check_*`` takes the shared probe (``preflight._Probe``) and returns one ``Check``; it runs inside
``preflight._isolated``. Torch only, no Ray.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sized
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from orchestrator.checkresult import FAIL, PASS, WARN, Check
from orchestrator.checks_training import INITIAL_LOSS_BATCH, _regularisation

if TYPE_CHECKING:
    from orchestrator.preflight import _Probe

PREPROC_SAMPLES = 4096
ACTIVATION_BAND = (0.1, 10.0)

RELU_LIKE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Hardswish,
)
SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign, nn.Hardsigmoid)
TRANSPARENT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def _training_inputs(dataset) -> torch.Tensor:
    """Up to ``PREPROC_SAMPLES`` training inputs as a float64 (samples, features) matrix."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(dataset) <= PREPROC_SAMPLES:
        x = tensors[0]
    else:
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:PREPROC_SAMPLES]
        x = torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in idx])
    return x.reshape(len(x), -1).double()


def check_preprocessing(probe: _Probe) -> Check:
    """Per-feature mean ~0 and standard deviation ~1 on the training set; constant features are ignored.

    Pass: every |mean| <= 0.5 and every std in [0.5, 2]. Fail: some |mean| > 3 or some std outside
    [0.1, 10] (off by an order of magnitude: raw pixel values, unscaled physical units). Warn between
    (e.g. images normalised with one global mean and std, which leaves per-pixel means around +-1).
    """
    name = "preprocessing"
    x = _training_inputs(probe.base.train)
    if not x.is_floating_point() or x.shape[1] == 0:
        return Check(name, PASS, "n/a (non-float inputs)", "inputs are indices (e.g. tokens), not features")
    mean, std = x.mean(0), x.std(0, unbiased=False)
    varying = std > 1e-8 * (1.0 + mean.abs())
    if not bool(varying.any()):
        return Check(name, FAIL, "every feature is constant", "the inputs carry no information")
    mean, std = mean[varying], std[varying]
    worst_mean, low, high = float(mean.abs().max()), float(std.min()), float(std.max())
    measured = f"max|mean|={worst_mean:.2g}, std in [{low:.2g}, {high:.2g}] over {int(varying.sum())} features"
    advice = "standardise inputs with training-set statistics ((x - mean) / std)"
    if worst_mean > 3 or low < 0.1 or high > 10:
        return Check(name, FAIL, measured, advice)
    if worst_mean > 0.5 or low < 0.5 or high > 2:
        return Check(name, WARN, measured, advice + " per feature")
    return Check(name, PASS, measured, "inputs are standardised")


def _expected_std(layer: nn.Module, follower: nn.Module | None) -> tuple[str, float] | None:
    """The init law and weight std a layer should have given the module after it, or None if any goes."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(cast(torch.Tensor, layer.weight))
    kind = type(follower).__name__.lower() if follower is not None else ""
    if isinstance(follower, nn.LeakyReLU):
        return "kaiming", nn.init.calculate_gain("leaky_relu", follower.negative_slope) / math.sqrt(fan_in)
    if isinstance(follower, RELU_LIKE) or any(s in kind for s in ("relu", "gelu", "silu", "elu")):
        return "kaiming", math.sqrt(2.0 / fan_in)
    if isinstance(follower, SATURATING) or any(s in kind for s in ("tanh", "sigmoid")):
        return "xavier", math.sqrt(2.0 / (fan_in + fan_out))
    return None  # output layer, normalisation next, or an activation we don't know: no law to hold it to


def _weight_scales(model: nn.Module) -> list[tuple[str, str, float]]:
    """(layer, law, measured std / expected std) for every Linear/Conv followed by a known activation."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    ratios = []
    for i, (layer_name, layer) in enumerate(leaves):
        if not isinstance(layer, WEIGHTED):
            continue
        follower = next((m for _, m in leaves[i + 1 :] if not isinstance(m, TRANSPARENT)), None)
        if isinstance(follower, NORMS):
            continue
        expected = _expected_std(layer, follower)
        if expected is not None:
            law, std = expected
            ratios.append((layer_name, law, float(layer.weight.detach().double().std()) / std))
    return ratios


def _activation_spread(model: nn.Module, x: torch.Tensor) -> tuple[float, list[tuple[str, float]]]:
    """std of the input and of each hidden leaf module's output on one batch (forward hooks)."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out, n=n: seen.append((n, out)))
        for n, m in model.named_modules()
        if not list(m.children()) and not isinstance(m, TRANSPARENT)
    ]
    try:
        with torch.no_grad():
            output = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    spreads = [
        (n, float(out.double().std()))
        for n, out in seen
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out is not output
    ]
    return float(x.double().std()), spreads


def check_initialisation(probe: _Probe) -> Check:
    """Kaiming-scaled weights before ReLU-like units, Xavier before tanh/sigmoid; stable activations.

    Weights: measured std / expected std in [0.5, 2] passes, in [0.2, 5] warns (PyTorch's default
    Linear init is 0.41x Kaiming: it trains, but deep ReLU stacks shrink), outside fails (zero init).
    Activations: each hidden module's output std within 0.1x-10x of the input's std on one batch (eval
    mode), otherwise the signal collapses or explodes with depth: fail. The output layer is exempt from
    both (zero-initialising the last layer is a legitimate choice).
    """
    name = "initialisation"
    model = copy.deepcopy(probe.base.model).eval()
    x, _ = probe.sample(probe.base.train, INITIAL_LOSS_BATCH)
    ratios = _weight_scales(model)
    x_std, spreads = _activation_spread(model, x) if x.is_floating_point() else (1.0, [])
    rel = [(n, s / x_std) for n, s in spreads] if x_std > 0 else []
    parts = []
    if ratios:
        lo, hi = min(r for _, _, r in ratios), max(r for _, _, r in ratios)
        parts.append(f"weight std/law in [{lo:.2g}, {hi:.2g}] over {len(ratios)} layers")
    if rel:
        parts.append(f"activation std/input in [{min(r for _, r in rel):.2g}, {max(r for _, r in rel):.2g}]")
    layers = sum(isinstance(m, WEIGHTED) for m in model.modules())
    if not parts:  # e.g. a bare nn.Linear: its one layer is the output layer
        return Check(
            name,
            PASS,
            f"n/a ({layers} Linear/Conv layer{'s' if layers != 1 else ''}, none before a known activation)"
            if layers
            else "n/a (no Linear/Conv layers or activations found)",
            "nothing to hold to an init law (an output layer may be initialised freely)",
        )
    measured = "; ".join(parts)
    bad_weights = [f"{n or 'model'}.weight ({law}, {r:.2g}x)" for n, law, r in ratios if not 0.2 <= r <= 5]
    bad_acts = [
        f"{n or 'model'} output ({r:.2g}x input)" for n, r in rel if not ACTIVATION_BAND[0] <= r <= ACTIVATION_BAND[1]
    ]
    if bad_weights or bad_acts:
        return Check(
            name,
            FAIL,
            measured,
            "re-initialise (nn.init.kaiming_normal_ before ReLU, "
            "xavier_normal_ before tanh/sigmoid): " + ", ".join(bad_weights + bad_acts),
        )
    if any(not 0.5 <= r <= 2 for _, _, r in ratios):
        return Check(
            name,
            WARN,
            measured,
            "weights are off their init law by more than 2x: use nn.init.kaiming_normal_ / xavier_normal_ explicitly",
        )
    return Check(name, PASS, measured, "weights and activations are well scaled")


def _row_hashes(dataset) -> set[bytes]:
    """A 128-bit digest of every input row; floats as float64, so a dtype change hides no duplicate."""
    tensors = getattr(dataset, "tensors", None)
    rows = tensors[0] if tensors is not None else (torch.as_tensor(dataset[i][0]) for i in range(len(dataset)))
    return {
        hashlib.blake2b(
            (r.double() if r.is_floating_point() else r).contiguous().numpy().tobytes(), digest_size=16
        ).digest()
        for r in rows
    }


def check_validation_split(probe: _Probe) -> Check:
    """A non-empty validation set that shares no input row (byte-identical) with the training set."""
    name = "validation_split"
    train, val = cast(Sized, probe.base.train), cast(Sized, probe.base.val)  # map-style datasets have a length
    if len(val) == 0:
        return Check(name, FAIL, "0 validation examples", "hold out a validation set (e.g. 20%)")
    shared = _row_hashes(train) & _row_hashes(val)
    measured = f"{len(train)} train / {len(val)} val, {len(shared)} shared input rows"
    if shared:
        return Check(
            name,
            FAIL,
            measured,
            "validation rows also appear in training: split before "
            "augmenting/deduplicate, or the validation loss is optimistic",
        )
    return Check(name, PASS, measured, "separate validation set")


def check_hp_dropout(probe: _Probe) -> Check:
    name = "hp_dropout"
    dropout, _ = _regularisation(probe.config)
    if dropout == 0:
        return Check(name, PASS, "n/a (no dropout)", "no dropout configured")
    if not 0.2 <= dropout <= 0.5:
        return Check(
            name,
            WARN,
            f"dropout={dropout:g}",
            "common practice is 0.2-0.5 (0.5 for hidden "
            "layers, Srivastava et al. 2014); outside it, expect under- or no regularisation",
        )
    return Check(name, PASS, f"dropout={dropout:g}", "within 0.2-0.5")


def check_hp_batch_size(probe: _Probe) -> Check:
    name = "hp_batch_size"
    if "batch_size" not in probe.config:
        return Check(name, PASS, "n/a (no batch_size)", "no batch size configured")
    batch = int(probe.config["batch_size"])
    if batch < 32:
        return Check(
            name,
            WARN,
            f"batch_size={batch}",
            "under 32: noisy gradients and poor hardware use; prefer 32-256 unless memory forces less",
        )
    return Check(name, PASS, f"batch_size={batch}", ">= 32")


def check_hp_lr_grid(probe: _Probe) -> Check:
    name = "hp_lr_grid"
    if not probe.lr_grid:
        return Check(name, PASS, "n/a (no grid given)", "no learning-rate grid to inspect")
    decades = math.log10(max(probe.lr_grid) / min(probe.lr_grid))
    measured = f"{decades:.2g} decades ({min(probe.lr_grid):g}..{max(probe.lr_grid):g})"
    if decades < 3:
        return Check(
            name,
            WARN,
            measured,
            "a coarse search should span several decades (e.g. 1e-6..1e-1, one point per decade) before zooming in",
        )
    return Check(name, PASS, measured, "spans several decades")
