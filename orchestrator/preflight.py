"""Babysitting pre-flight checks: cheap sanity checks on a workload before any sweep fans out.

Pure library: torch only, no Ray. ``run_checks(workload, config, lr_grid)`` builds the workload with
``orchestrator.workloads.build`` (again wherever a check needs a fresh model) and runs one small function
per concern, in the spirit of Karpathy's "recipe for training neural networks" and CS231n's
"babysitting the learning process":

==================  ==========================================================================
check name          concern
==================  ==========================================================================
initial_loss        first-batch loss of the untrained model is ~ln(C), a uniform guess
overfit_small       regularisation off, 16 training examples are driven to a loss near zero
regularisation      with the config's dropout / weight decay, that small run ends higher
gradients           autograd agrees with central finite differences (float64)
preprocessing       training inputs are centred and scaled per feature
initialisation      Kaiming / Xavier weight scales; activations neither collapse nor explode
validation_split    a non-empty validation set that shares no input row with the training set
hp_dropout          dropout in the usual 0.2-0.5 band (warn only)
hp_batch_size       batch size >= 32 (warn only)
hp_lr_grid          the learning-rate grid spans >= 3 decades (warn only)
batch_fit           (asked for: ``batch_search``) the largest batch that fits, at the config's precision
==================  ==========================================================================

Every check runs inside :func:`_isolated`: it seeds torch itself and leaves torch's RNG, default dtype
and grad mode as it found them. A check that raises is reported as a failed check (the message says
what raised); a workload that cannot be built at all raises ``WorkloadError`` from ``run_checks``.

One module for one concern: ten checks of 10-50 lines each, over one shared probe, isolation and
``Check`` contract; the checks are read and extended as one list, so the length is theirs, not a second
concern's.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import math
from collections.abc import Callable, Collection, Iterator, Sized
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from orchestrator.autobatch import NothingFits
from orchestrator.memprobe import Search, largest_for
from orchestrator.trialkeys import AUTO
from orchestrator.workloads import Workload, build

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)

# Sizes and budgets, chosen so that the whole suite runs in about a second on 2 CPU cores for digits_mlp.
INITIAL_LOSS_BATCH = 256  # a larger batch than a trial's: the estimate of the mean loss is then tight
INITIAL_LOSS_BAND = (0.75, 1.75)  # as multiples of ln(C); see check_initial_loss
OVERFIT_SAMPLES = 16
OVERFIT_STEPS = 300
OVERFIT_LR = 1e-2
OVERFIT_ABS = 0.05  # "near zero": below 0.05 ...
OVERFIT_REL = 0.05  # ... or below 5% of the initial loss (for regression losses with arbitrary units)
FINAL_WINDOW = 10  # a run's final loss is the mean over its last 10 steps (Adam is a little noisy near 0)
GRAD_BATCH = 8
GRAD_COORDS = 200
GRAD_EPS = (1e-6, 1e-7)  # the second only for coordinates that straddle a ReLU kink at the first
GRAD_RTOL = 1e-4
GRAD_ATOL = 1e-9  # plus round-off: float64 central differences carry ~1e-16 * |loss| / eps
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


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``status`` is "pass", "warn" or "fail"; ``measured`` is the number, as text."""

    name: str
    status: str
    measured: str
    advice: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Check.status={self.status!r}: expected one of {STATUSES}")


def failed(checks: list[Check]) -> list[Check]:
    """The checks whose status is "fail"."""
    return [c for c in checks if c.status == FAIL]


def format_checks(checks: list[Check]) -> str:
    """One aligned line per check: status, name, measured, advice."""
    if not checks:
        return ""
    width = max(len(c.name) for c in checks)
    mwidth = max(len(c.measured) for c in checks)
    return "\n".join(f"{c.status.upper():<4}  {c.name:<{width}}  {c.measured:<{mwidth}}  {c.advice}" for c in checks)


# --------------------------------------------------------------------------------------------- plumbing


class _Probe:
    """The workload under test: builds it (fresh, with overrides) and caches what several checks share."""

    def __init__(self, workload: str, config: dict, lr_grid: list[float] | None) -> None:
        self.workload = workload
        self.config = dict(config)
        self.lr_grid = lr_grid
        self.seed = int(config.get("seed", 0))
        with _isolated(0):
            self.base = self.fresh()  # built once up front: a broken name fails here, not inside a check

    def fresh(self, **overrides) -> Workload:
        return build(self.workload, {**self.config, **overrides})

    def sample(self, dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` examples drawn without replacement with a generator seeded by the config's seed."""
        n = min(n, len(dataset))
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))[:n]
        x, y = torch.utils.data.default_collate([dataset[int(i)] for i in idx])
        return x, y

    @functools.cached_property
    def unregularised_run(self) -> _Run:
        """The small run with dropout 0 and weight decay 0, shared by overfit_small and regularisation."""
        return _fit_few(self, dropout=0.0, weight_decay=0.0)


@contextlib.contextmanager
def _isolated(seed: int) -> Iterator[None]:
    """Seed torch for one check and restore its RNG, default dtype and grad mode afterwards."""
    dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)


@dataclass(frozen=True)
class _Run:
    losses: list[float]  # the data loss at every step, in training mode (dropout active when configured)
    penalty: float  # weight_decay / 2 * ||params||^2 after the last step: the L2 term Adam minimised too

    @property
    def objective(self) -> float:
        """The regularised objective the run ends at: final data loss + weight-decay penalty."""
        return _final(self.losses) + self.penalty


def _fit_few(probe: _Probe, dropout: float, weight_decay: float) -> _Run:
    """Adam on ``OVERFIT_SAMPLES`` training examples for ``OVERFIT_STEPS`` steps, no evaluation."""
    work = probe.fresh(dropout=dropout, weight_decay=weight_decay)
    torch.manual_seed(probe.seed)
    x, y = probe.sample(work.train, OVERFIT_SAMPLES)
    model = work.model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=OVERFIT_LR, weight_decay=weight_decay)
    losses = []
    for _ in range(OVERFIT_STEPS):
        optimiser.zero_grad(set_to_none=True)
        loss = work.loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        penalty = 0.5 * weight_decay * float(sum((p.double() ** 2).sum() for p in params))
    return _Run(losses, penalty)


def _final(losses: list[float]) -> float:
    return sum(losses[-FINAL_WINDOW:]) / len(losses[-FINAL_WINDOW:])


def _regularisation(config: dict) -> tuple[float, float]:
    return float(config.get("dropout", 0.0) or 0.0), float(config.get("weight_decay", 0.0) or 0.0)


# ------------------------------------------------------------------------------------------------ checks


def check_initial_loss(probe: _Probe) -> Check:
    """An untrained classifier should guess uniformly: cross-entropy ~ ln(C) on the first batch.

    Band: 0.75 ln(C) to 1.75 ln(C), asymmetric on purpose. Below: an untrained model cannot beat a
    uniform guess by much, so a loss well under ln(C) means the labels leak into the inputs or the loss
    is not a mean cross-entropy. Above: logits with spread s add about s^2/2 nats to ln(C), and a
    Xavier-initialised output layer on a Kaiming ReLU stack gives s ~ 1.3, i.e. +0.8 nats. Measured on
    the built-in digits_mlp over 240 initialisations (widths 16-256, depths 0-4): median 1.26 ln(C),
    99th percentile ~1.5 ln(C). A symmetric 25% band would fail half of those healthy models. The bugs
    this check is for are off by a factor: 100 outputs for 10 classes (~2.2 ln(C)), raw 0-255 or
    0-16 inputs (~9 ln(C)), a loss summed instead of averaged (batch x ln(C)).
    """
    name = "initial_loss"
    classes = probe.base.num_classes
    if classes is None:
        return Check(name, PASS, "n/a (regression)", "no chance-level loss to compare against")
    work = probe.base
    x, y = probe.sample(work.train, INITIAL_LOSS_BATCH)
    model = copy.deepcopy(work.model).eval()
    with torch.no_grad():
        loss = float(work.loss(model(x), y))
    expected = math.log(classes)
    measured = f"{loss:.3f} vs ln({classes})={expected:.3f}"
    low, high = INITIAL_LOSS_BAND
    if not (math.isfinite(loss) and low * expected <= loss <= high * expected):
        return Check(
            name,
            FAIL,
            measured,
            f"expected {low:g}-{high:g} x ln(C): check the number of outputs, the loss (mean, "
            "over logits), input scaling and the output layer's init",
        )
    return Check(name, PASS, measured, "chance-level loss at initialisation")


def check_overfit_small(probe: _Probe) -> Check:
    """With regularisation off, a model must be able to memorise a handful of training examples."""
    name = "overfit_small"
    losses = probe.unregularised_run.losses
    first, last = losses[0], _final(losses)
    measured = f"{first:.3g} -> {last:.3g} in {OVERFIT_STEPS} steps on {OVERFIT_SAMPLES} examples"
    if _overfits(losses):
        return Check(name, PASS, measured, "memorises a handful of examples")
    return Check(
        name,
        FAIL,
        measured,
        f"expected < {OVERFIT_ABS} or < {OVERFIT_REL:.0%} of the initial loss (Adam, lr "
        f"{OVERFIT_LR}, no regularisation): check that the loss uses the labels, that "
        "gradients reach every layer, and the model's capacity",
    )


def _overfits(losses: list[float]) -> bool:
    last = _final(losses)
    return math.isfinite(last) and (last < OVERFIT_ABS or last < OVERFIT_REL * losses[0])


def check_regularisation(probe: _Probe) -> Check:
    """The same small run with the config's dropout / weight decay must end at a higher objective.

    The objective is what the optimiser minimises: the data loss in training mode (so under dropout)
    plus weight_decay/2 * ||w||^2 (Adam's coupled L2). Its minimum can only rise when a non-negative
    penalty is added, whereas the bare data loss of two runs that both memorise 16 examples is a
    comparison of round-off (~1e-5) that goes either way. With dropout alone the check says whether the
    workload honours the config's dropout: if it ignores it, both runs are identical and it fails.
    Configs with neither dropout nor weight_decay pass as n/a.
    """
    name = "regularisation"
    dropout, weight_decay = _regularisation(probe.config)
    if dropout == 0 and weight_decay == 0:
        return Check(name, PASS, "n/a (no dropout or weight_decay configured)", "nothing to compare")
    off = probe.unregularised_run
    on = _fit_few(probe, dropout=dropout, weight_decay=weight_decay)
    measured = (
        f"objective {on.objective:.3g} on vs {off.objective:.3g} off "
        f"(dropout={dropout:g}, weight_decay={weight_decay:g})"
    )
    if not _overfits(off.losses):
        return Check(
            name,
            WARN,
            measured,
            "inconclusive: the model does not overfit without regularisation either (see overfit_small)",
        )
    if on.objective > off.objective:
        return Check(name, PASS, measured, "regularisation raises the training objective")
    return Check(
        name,
        FAIL,
        measured,
        "regularisation has no effect: check that the workload honours "
        "the config's dropout (and that nothing else regularises when it is 0)",
    )


def _central_difference(loss_fn: Callable[[], torch.Tensor], view: torch.Tensor, j: int, eps: float) -> float:
    saved = float(view[j])
    view[j] = saved + eps
    plus = float(loss_fn())
    view[j] = saved - eps
    minus = float(loss_fn())
    view[j] = saved
    return (plus - minus) / (2 * eps)


def check_gradients(probe: _Probe) -> Check:
    """Autograd against central finite differences, in float64, on a sample of parameter coordinates.

    A coordinate agrees when |autograd - numeric| <= atol + rtol * max(|autograd|, |numeric|), with
    rtol 1e-4 and atol covering float64 round-off (~1e-16 |loss| / eps). ReLU kinks: one pre-activation
    within ~eps of 0 anywhere downstream makes the difference quotient straddle the kink for every
    coordinate upstream of it (seen on 2 of 200 coordinates of a 128x3 MLP); a coordinate that
    disagrees at eps 1e-6 is retried at 1e-7, where a kink is 10x less likely to be straddled, while a
    wrong backward disagrees at every eps.
    """
    name = "gradients"
    work = probe.base
    model = copy.deepcopy(work.model).double().eval()  # eval: dropout would make the loss random
    x, y = probe.sample(work.train, GRAD_BATCH)
    x = x.double() if x.is_floating_point() else x
    y = y.double() if y.is_floating_point() else y

    def loss_fn() -> torch.Tensor:
        return work.loss(model(x), y)

    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    round_off = 64 * torch.finfo(torch.float64).eps * abs(float(loss.detach()))
    analytic = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    sizes = [p.numel() for p in params]
    generator = torch.Generator().manual_seed(probe.seed)
    coords = torch.randperm(sum(sizes), generator=generator)[:GRAD_COORDS].tolist()
    offsets = torch.tensor([0] + sizes).cumsum(0).tolist()
    worst, bad, retried = 0.0, 0, 0
    with torch.no_grad():
        for flat in coords:
            k = next(i for i in range(len(params)) if offsets[i] <= flat < offsets[i + 1])
            view, j, auto = params[k].view(-1), flat - offsets[k], float(analytic[flat])
            for attempt, eps in enumerate(GRAD_EPS):
                numeric = _central_difference(loss_fn, view, j, eps)
                error, scale = abs(numeric - auto), max(abs(numeric), abs(auto))
                if error <= GRAD_ATOL + round_off / eps + GRAD_RTOL * scale:
                    retried += attempt > 0
                    break
            else:
                bad += 1
            if scale > GRAD_ATOL + round_off / eps:
                worst = max(worst, error / scale)
    measured = f"max rel err {worst:.1e}, {bad}/{len(coords)} coords off" + (
        f" ({retried} kinks retried)" if retried else ""
    )
    if bad:
        return Check(
            name,
            FAIL,
            measured,
            f"autograd disagrees with finite differences beyond "
            f"{GRAD_RTOL:g} relative: check custom autograd Functions / backward hooks",
        )
    return Check(name, PASS, measured, "autograd matches finite differences")


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


CHECKS: tuple[Callable[[_Probe], Check], ...] = (
    check_initial_loss,
    check_overfit_small,
    check_regularisation,
    check_gradients,
    check_preprocessing,
    check_initialisation,
    check_validation_split,
    check_hp_dropout,
    check_hp_batch_size,
    check_hp_lr_grid,
)
CHECK_NAMES: tuple[str, ...] = tuple(c.__name__.removeprefix("check_") for c in CHECKS)


def check_batch_fit(workload: str, config: dict, search: Search, device: torch.device) -> tuple[Check, int | None]:
    """batch_fit: the largest batch of ``workload`` that fits on ``device`` at the config's precision
    (``memprobe.largest_for``: doubling, then bisecting on out-of-memory; on a CPU only with the memory
    stand-in), and that batch (None when not searched). A configured batch over it warns; none fitting fails."""
    name, configured = "batch_fit", config.get("batch_size")
    if not search.bounded_on(device):
        return Check(
            name,
            PASS,
            f"n/a ({device.type}: no GPU here, no memory stand-in)",
            "on a GPU this finds the largest batch that fits; autobatch.memory_limit_mb sets a stand-in",
        ), None
    try:
        sized = largest_for([{**config, "workload": workload}], device, search)
    except NothingFits as exc:
        return Check(name, FAIL, str(exc), "a smaller model or autobatch.start, or more memory"), None
    except Exception as exc:  # a workload that breaks in a step: a finding, as for the other checks
        message = " ".join(str(exc).split())[:160]
        return Check(
            name, FAIL, f"raised {type(exc).__name__}: {message}", "fix the workload so that this check can run"
        ), None
    measured = f"largest {sized.text()}"
    if configured == AUTO:
        return Check(
            name, PASS, measured, "batch_size: auto: the sweep finds it again where its trials run"
        ), sized.batch
    if isinstance(configured, int) and configured > sized.batch:
        return Check(name, WARN, measured, f"batch_size={configured} will not fit: expect out-of-memory"), sized.batch
    return Check(name, PASS, measured, "batch_size: auto would use it"), sized.batch


def _run_one(check: Callable[[_Probe], Check], probe: _Probe) -> Check:
    name = check.__name__.removeprefix("check_")
    try:
        with _isolated(probe.seed):
            return check(probe)
    except Exception as exc:  # a broken workload may crash a check; that is a finding, not a crash
        message = " ".join(str(exc).split())[:160]
        return Check(
            name, FAIL, f"raised {type(exc).__name__}: {message}", "fix the workload so that this check can run"
        )


def run_checks(
    workload: str,
    config: dict,
    lr_grid: list[float] | None = None,
    *,
    only: Collection[str] | None = None,
    batch_search: Search | None = None,
) -> list[Check]:
    """Run the pre-flight checks on ``workload`` built with ``config``; one Check per concern, in order.

    ``lr_grid`` is the sweep's coarse learning-rate grid (for hp_lr_grid); ``only`` restricts the run to
    some of ``CHECK_NAMES``; ``batch_search``: also batch_fit (last; ``check_batch_fit`` on this machine's
    GPU, else its CPU), whose batch the other checks use for ``batch_size: auto`` (without it they run with
    no batch size). Raises ``ValueError`` on bad arguments and ``orchestrator.workloads.WorkloadError`` when
    the workload cannot be built.
    """
    if not isinstance(workload, str) or not workload:
        raise ValueError(f"workload={workload!r}: expected a built-in name or 'package.module:callable'")
    if not isinstance(config, dict):
        raise ValueError(f"config={config!r}: expected a dict of trial hyperparameters")
    if lr_grid is not None:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in lr_grid):
            raise ValueError(f"lr_grid={lr_grid!r}: expected a list of numbers")
        lr_grid = [float(v) for v in lr_grid]
        if not lr_grid or any(not (math.isfinite(v) and v > 0) for v in lr_grid):
            raise ValueError(f"lr_grid={lr_grid!r}: expected a non-empty list of positive learning rates")
    for key in ("dropout", "weight_decay"):
        value = config.get(key, 0.0)
        if not isinstance(value, (int, float)) or not 0 <= value or (key == "dropout" and value >= 1):
            raise ValueError(
                f"config[{key!r}]={value!r}: expected a number, 0 <= {key}" + (" < 1" if key == "dropout" else "")
            )
    if not isinstance(config.get("seed", 0), int):
        raise ValueError(f"config['seed']={config['seed']!r}: expected an int")
    if (
        "batch_size" in config
        and config["batch_size"] != AUTO
        and (not isinstance(config["batch_size"], int) or config["batch_size"] < 1)
    ):
        raise ValueError(f"config['batch_size']={config['batch_size']!r}: expected a positive int or 'auto'")
    selected = CHECKS
    if only is not None:
        unknown = sorted(set(only) - set(CHECK_NAMES)) if not isinstance(only, str) else [only]
        if unknown:
            raise ValueError(
                f"only={only!r}: unknown check(s) {unknown}, expected a collection of {', '.join(CHECK_NAMES)}"
            )
        selected = tuple(c for c, n in zip(CHECKS, CHECK_NAMES) if n in set(only))
    threads = torch.get_num_threads()
    # one intra-op thread for the tiny probes, restored on exit (why: docs/decisions.md)
    torch.set_num_threads(1)
    try:
        fit: list[Check] = []
        if batch_search is not None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            with _isolated(int(config.get("seed", 0))):
                check, batch = check_batch_fit(workload, config, batch_search, device)
            fit.append(check)
            if config.get("batch_size") == AUTO and batch is not None:
                config = {**config, "batch_size": batch}
        if config.get("batch_size") == AUTO:
            config = {k: v for k, v in config.items() if k != "batch_size"}
        probe = _Probe(workload, config, lr_grid)
        return [_run_one(check, probe) for check in selected] + fit
    finally:
        torch.set_num_threads(threads)
