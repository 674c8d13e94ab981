"""Learning-rate decay laws: small, frozen, picklable dataclasses (Ray pickles what it ships; no lambdas here).

A law is a callable ``law(t) -> factor``: the learning rate used during epoch ``t`` (``t = 0`` is the first
epoch) is ``base_lr * law(t)``. ``Constant`` is the null law. ``Warmup`` wraps any law instead of subclassing it.
Each law also knows which ``torch.optim.lr_scheduler`` drives it (``scheduler``), its ``formula`` and whether
it satisfies the Robbins–Monro conditions (``robbins_monro``).

A trial config crosses many laws, so ``law_from_config`` reads flat keys named exactly like the dataclass
fields (``step_size``, ``gamma``, ``eps``, ``patience``, ``factor``, ``t_max``, ``eta_min``, ``warmup``) and
ignores the keys of the laws it did not pick.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ExponentialLR, LambdaLR, ReduceLROnPlateau, StepLR


def _check(
    law: object,
    key: str,
    kind: type,
    lo: float | None = None,
    hi: float | None = None,
    open_lo: bool = False,
    open_hi: bool = False,
) -> None:
    """Validate field ``key`` of a frozen ``law`` and store it as a plain ``int``/``float`` (numpy scalars from a
    search space become picklable, ``weights_only``-loadable primitives). Raises ``ValueError`` naming key, value
    and expectation."""
    value = getattr(law, key)
    if lo is not None and hi is not None:
        expected = f"{lo} {'<' if open_lo else '<='} {key} {'<' if open_hi else '<='} {hi}"
    elif lo is not None:
        expected = f"{key} {'>' if open_lo else '>='} {lo}"
    else:
        expected = f"a finite number {key}"
    if kind is int:
        expected = f"an integer {expected}"
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (kind is float or float(value).is_integer())
    )
    if ok:
        x = float(value)
        ok = (lo is None or (x > lo if open_lo else x >= lo)) and (hi is None or (x < hi if open_hi else x <= hi))
    if not ok:
        raise ValueError(f"{key}={value!r}: expected {expected}")
    object.__setattr__(law, key, kind(value))


class Law:
    """The contract every decay law follows (one shallow base, no fields).

    ``__call__(t)`` is the factor on the base learning rate during epoch ``t``; ``formula`` is its text;
    ``robbins_monro()`` says whether sum eta_t diverges and sum eta_t^2 converges, with the reason;
    ``scheduler(optimizer)`` builds the torch scheduler that realises the law (``LambdaLR`` over the law
    itself unless torch has a dedicated one).
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every law is a frozen dataclass

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def robbins_monro(self) -> tuple[bool, str]:
        raise NotImplementedError

    def scheduler(self, optimizer: Optimizer) -> Any:
        # The law is a callable object, so LambdaLR stores its fields (not None) in state_dict.
        return LambdaLR(optimizer, lr_lambda=self)


@dataclasses.dataclass(frozen=True)
class Constant(Law):
    """The null law: the base learning rate throughout."""

    name: ClassVar[str] = "constant"
    formula: ClassVar[str] = "eta_t = eta_0"

    def __call__(self, epoch: int) -> float:
        return 1.0

    def robbins_monro(self) -> tuple[bool, str]:
        return False, "sum eta_t diverges but so does sum eta_t^2 = sum eta_0^2: the gradient noise never averages out."


@dataclasses.dataclass(frozen=True)
class Step(Law):
    """Multiply by ``gamma`` every ``step_size`` epochs (torch's ``StepLR``)."""

    step_size: int = 10
    gamma: float = 0.1

    name: ClassVar[str] = "step"
    formula: ClassVar[str] = "eta_t = eta_0 * gamma^floor(t / step_size)"

    def __post_init__(self) -> None:
        _check(self, "step_size", int, lo=1)
        _check(self, "gamma", float, lo=0, hi=1, open_lo=True)

    def __call__(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)

    def robbins_monro(self) -> tuple[bool, str]:
        if self.gamma == 1:
            return False, "gamma=1 is the constant law: sum eta_t^2 diverges."
        return False, (
            "geometric decay: sum eta_t = eta_0 * step_size / (1 - gamma) is finite, "
            "so the search may stop short of the optimum."
        )

    def scheduler(self, optimizer: Optimizer) -> StepLR:
        return StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)


@dataclasses.dataclass(frozen=True)
class Plateau(Law):
    """Multiply by ``factor`` once the validation loss has not improved for more than ``patience`` epochs
    (torch's ``ReduceLROnPlateau``, mode "min", relative threshold 1e-4, no cooldown, no floor).

    The curve depends on the losses; ``__call__`` gives the closed form when the loss never improves on its
    first value (the first loss always improves on +inf): one reduction every ``patience + 1`` epochs after
    the first.
    """

    patience: int = 10
    factor: float = 0.1

    name: ClassVar[str] = "plateau"
    formula: ClassVar[str] = (
        "eta_t = eta_0 * factor^k_t, k_t = reductions so far (one per patience+1 epochs "
        "without improvement; never improving: k_t = floor(max(t-1, 0) / (patience+1)))"
    )

    def __post_init__(self) -> None:
        _check(self, "patience", int, lo=0)
        _check(self, "factor", float, lo=0, hi=1, open_lo=True, open_hi=True)

    def __call__(self, epoch: int) -> float:
        return self.factor ** (max(epoch - 1, 0) // (self.patience + 1))

    def robbins_monro(self) -> tuple[bool, str]:
        return False, (
            "depends on the data: reductions happen only when the validation loss stalls, so the "
            "decay ranges from none (sum eta_t^2 diverges, like constant) to geometric "
            "(sum eta_t finite, like step); neither condition is guaranteed."
        )

    def scheduler(self, optimizer: Optimizer) -> ReduceLROnPlateau:
        # eps=0: torch's default eps=1e-8 would silently stop reducing tiny learning rates, breaking the closed form.
        return ReduceLROnPlateau(optimizer, mode="min", factor=self.factor, patience=self.patience, eps=0.0)


@dataclasses.dataclass(frozen=True)
class Inverse(Law):
    """Harmonic decay ``1 / (1 + eps * t)``: the textbook Robbins–Monro schedule."""

    eps: float = 0.1

    name: ClassVar[str] = "inverse"
    formula: ClassVar[str] = "eta_t = eta_0 / (1 + eps * t)"

    def __post_init__(self) -> None:
        _check(self, "eps", float, lo=0)

    def __call__(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.eps * epoch)

    def robbins_monro(self) -> tuple[bool, str]:
        if self.eps == 0:
            return False, "eps=0 is the constant law: sum eta_t^2 diverges."
        return True, (
            "sum 1/(1 + eps t) diverges like ln(t)/eps while sum 1/(1 + eps t)^2 converges: both conditions hold."
        )


@dataclasses.dataclass(frozen=True)
class Exponential(Law):
    """``exp(-eps * t)`` (torch's ``ExponentialLR`` with ``gamma = exp(-eps)``)."""

    eps: float = 0.05

    name: ClassVar[str] = "exponential"
    formula: ClassVar[str] = "eta_t = eta_0 * exp(-eps * t)"

    def __post_init__(self) -> None:
        _check(self, "eps", float, lo=0)

    def __call__(self, epoch: int) -> float:
        return math.exp(-self.eps * epoch)

    def robbins_monro(self) -> tuple[bool, str]:
        if self.eps == 0:
            return False, "eps=0 is the constant law: sum eta_t^2 diverges."
        return False, (
            "geometric decay: sum eta_t = eta_0 / (1 - exp(-eps)) is finite, "
            "so the search may stop short of the optimum."
        )

    def scheduler(self, optimizer: Optimizer) -> ExponentialLR:
        return ExponentialLR(optimizer, gamma=math.exp(-self.eps))


@dataclasses.dataclass(frozen=True)
class Cosine(Law):
    """Half a cosine from 1 down to ``eta_min`` over ``t_max`` epochs, then ``eta_min`` for good.

    Driven by ``LambdaLR`` over this closed form rather than ``CosineAnnealingLR``, which is recursive and
    climbs back up after ``t_max``.
    """

    t_max: int = 100
    eta_min: float = 0.0

    name: ClassVar[str] = "cosine"
    formula: ClassVar[str] = "eta_t = eta_0 * (eta_min + (1 - eta_min) * (1 + cos(pi * min(t, t_max) / t_max)) / 2)"

    def __post_init__(self) -> None:
        _check(self, "t_max", int, lo=1)
        _check(self, "eta_min", float, lo=0, hi=1)

    def __call__(self, epoch: int) -> float:
        t = min(epoch, self.t_max)
        return self.eta_min + (1.0 - self.eta_min) * (1.0 + math.cos(math.pi * t / self.t_max)) / 2.0

    def robbins_monro(self) -> tuple[bool, str]:
        if self.eta_min > 0:
            return False, (
                "after t_max it holds eta_min * eta_0 for good and behaves like the constant law: sum eta_t^2 diverges."
            )
        return False, "it reaches 0 at t_max and stays there: sum eta_t is finite, so the search may stop short."


@dataclasses.dataclass(frozen=True)
class Warmup(Law):
    """Linear warm-up over the first ``warmup`` epochs, then the wrapped ``law`` restarted from its epoch 0.

    ``(t + 1) / (warmup + 1)`` during warm-up, so no epoch is spent at a zero learning rate.
    """

    law: Law = dataclasses.field(default_factory=Constant)
    warmup: int = 5

    name: ClassVar[str] = "warmup"
    formula: ClassVar[str] = "eta_t = eta_0 * (t + 1) / (warmup + 1) for t < warmup, then the wrapped law at t - warmup"

    def __post_init__(self) -> None:
        if not isinstance(self.law, Law) or isinstance(self.law, Warmup):
            raise ValueError(f"law={self.law!r}: expected a decay law that is not itself a Warmup")
        _check(self, "warmup", int, lo=0)

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        return self.law(epoch - self.warmup)

    def robbins_monro(self) -> tuple[bool, str]:
        holds, reason = self.law.robbins_monro()
        return holds, f"inherits the wrapped {self.law.name} law's verdict (finitely many terms change): {reason}"

    def scheduler(self, optimizer: Optimizer) -> Any:
        raise TypeError("Warmup is driven by schedules.attach(), which sequences a ramp and the wrapped law")


LAWS: dict[str, type[Law]] = {cls.name: cls for cls in (Constant, Step, Plateau, Inverse, Exponential, Cosine)}


def _law_class(name: Any) -> type[Law]:
    if not isinstance(name, str) or name not in LAWS:
        raise ValueError(f"schedule={name!r}: expected one of {', '.join(LAWS)}")
    return LAWS[name]


def law_params(name: str) -> dict[str, Any]:
    """The parameters of law ``name`` and their defaults, e.g. ``{"step_size": 10, "gamma": 0.1}``."""
    return {f.name: f.default for f in dataclasses.fields(_law_class(name))}


def law_from_config(config: dict[str, Any]) -> Law:
    """The law a trial config asks for: ``schedule`` (default "constant") plus that law's flat parameter keys;
    other laws' keys are ignored. ``warmup > 0`` wraps the chosen law in ``Warmup``."""
    cls = _law_class(config.get("schedule", "constant"))
    law = cls(**{f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config})
    warmup = config.get("warmup", 0)
    return law if warmup == 0 else Warmup(law=law, warmup=warmup)


def law_config(law: Law) -> dict[str, Any]:
    """The flat config that ``law_from_config`` turns back into ``law`` (plain ints and floats only)."""
    if isinstance(law, Warmup):
        return {**law_config(law.law), "warmup": law.warmup}
    return {"schedule": law.name, **{f.name: getattr(law, f.name) for f in dataclasses.fields(law)}}
