"""Drive a law with torch's schedulers behind one uniform ``step(val_loss)`` per epoch.

The lr used during epoch t is ``base_lr * law(t)``; after ``step()`` has been called t+1 times the optimizer holds
``base_lr * law(t + 1)``. ``Warmup`` is sequenced: a ``LambdaLR`` ramp for the first ``warmup`` steps, then the
wrapped law's own scheduler (which multiplies the lr the ramp left at ``base_lr``, or, for ``LambdaLR``, reads
``base_lr`` from the optimizer's ``initial_lr``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from schedules.laws import Law, Warmup, law_config


@dataclasses.dataclass(frozen=True)
class _Ramp:
    """The warm-up part of ``Warmup`` as a ``LambdaLR`` factor: (t+1)/(warmup+1), then 1."""

    warmup: int

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / (self.warmup + 1))


class Stepper:
    """Steps ``law`` on ``optimizer`` once per epoch; the caller never needs to know which law reads the metric."""

    def __init__(self, optimizer: Optimizer, law: Law) -> None:
        if not isinstance(law, Law):
            raise ValueError(f"law={law!r}: expected a decay law from schedules.LAWS (or Warmup around one)")
        self.optimizer = optimizer
        self.law = law
        self.epoch = 0
        self._warmup = law.warmup if isinstance(law, Warmup) else 0
        # The wrapped law's scheduler first, the ramp second: the ramp's initial step must have the last word.
        self._main = (law.law if isinstance(law, Warmup) else law).scheduler(optimizer)
        self._ramp = LambdaLR(optimizer, lr_lambda=_Ramp(self._warmup)) if self._warmup else None

    def step(self, val_loss: float) -> None:
        """Call once per epoch, after validation. Laws that ignore the metric ignore ``val_loss``."""
        if self.epoch < self._warmup:
            assert self._ramp is not None  # made when warmup > 0
            self._ramp.step()
        elif isinstance(self._main, ReduceLROnPlateau):
            self._main.step(val_loss)
        else:
            self._main.step()
        self.epoch += 1

    @property
    def lr(self) -> float:
        """The current learning rate of param group 0."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """Plain data (ints, floats, lists, dicts): picklable and loadable by ``torch.load(weights_only=True)``."""
        return {
            "law": law_config(self.law),
            "epoch": self.epoch,
            "main": self._main.state_dict(),
            "ramp": self._ramp.state_dict() if self._ramp is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the curve saved in ``state`` (which must come from the same law); also sets the optimizer's
        learning rates, so restoring the optimizer's own state first is not required."""
        if state["law"] != law_config(self.law):
            raise ValueError(
                f"state['law']={state['law']!r}: expected the state of this stepper's law {law_config(self.law)!r}"
            )
        self.epoch = state["epoch"]
        self._main.load_state_dict(dict(state["main"]))
        if self._ramp is not None:
            self._ramp.load_state_dict(dict(state["ramp"]))
        current = self._ramp if self._ramp is not None and self.epoch <= self._warmup else self._main
        for group, lr in zip(self.optimizer.param_groups, current.get_last_lr()):
            group["lr"] = lr


def attach(optimizer: Optimizer, law: Law) -> Stepper:
    """Put ``law`` on ``optimizer``: the lr becomes ``base_lr * law(0)`` now; call ``.step(val_loss)`` per epoch."""
    return Stepper(optimizer, law)
