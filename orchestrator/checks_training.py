"""Pre-flight checks that train or differentiate the workload: initial_loss, overfit_small,
regularisation, gradients (run by ``orchestrator.preflight.run_checks``, which also documents the list).

Each ``check_*`` takes the shared probe (``preflight._Probe``) and returns one ``Check``; it runs inside
``preflight._isolated`` (seeded, RNG / dtype / grad mode restored). ``_fit_few`` is the small run on a few
examples; the probe caches its unregularised run for overfit_small and regularisation. Torch only, no Ray.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from orchestrator.checkresult import FAIL, PASS, WARN, Check

if TYPE_CHECKING:
    from orchestrator.preflight import _Probe

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
