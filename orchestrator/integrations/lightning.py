"""Sweep a ``LightningModule`` on a ``lightning`` Trainer (extra: ``pip install 'sweep-orchestrator[lightning]'``).

In a training function (``train: "module:train"`` in the sweep YAML)::

    import lightning as L
    from orchestrator.integrations import lightning as sweep_lightning

    def train(config, trial):
        module = MyModule(...)                      # logs self.log("val_loss", ...) in validation_step
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
        sweep_lightning.fit(trainer, module, trial, train_dataloaders=..., val_dataloaders=...)

``fit`` hands the Trainer what the sweep controls and runs ``trainer.fit(module, **fit_kwargs)``:

- the module's weights from the trial's last checkpoint (``trial.restore()["model"]``), if any;
- the optimizer: ``module.configure_optimizers`` is replaced (on this instance) by one that returns
  ``trial.optimizer(module.parameters())``, the configured optimizer at the trial's learning rate with its
  decay law; an epoch law is stepped by ``trial.report``, a per-step law by ``trial.step()`` after each
  optimizer step (``trainer.global_step`` moved);
- the epochs: ``max_epochs`` becomes the number the trial has left (``trial.epochs()``);
- a ``SweepCallback``, which at the end of each training epoch checkpoints the module's weights and reports
  the Trainer's ``callback_metrics`` as they are named (``self.log("val_loss", ...)`` reports ``val_loss``;
  the sweep's ``metric:`` must be one of them), numbers only. ASHA stops the trial in ``trial.report``.

The Trainer must validate every epoch (``check_val_every_n_epoch=1``, the default, and validation data);
``fit`` raises ``ValueError`` otherwise, and the callback raises ``RuntimeError`` for an epoch that ran no
validation. The callback subclasses ``lightning.pytorch.Callback`` (the ``lightning`` package, not
``pytorch_lightning``). A resumed trial goes on from the checkpoint's weights, optimizer and decay law;
its batches come in the order its DataLoaders draw anew, not the order the uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.integrations import missing

if TYPE_CHECKING:
    from orchestrator.session import Trial

try:
    import lightning.pytorch as pl
except ImportError:
    raise missing("lightning", "lightning") from None


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """Lightning's logged metrics (0-d tensors or numbers) as floats; anything else left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if hasattr(value, "numel") and value.numel() == 1:
            out[key] = float(value.item())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


class SweepCallback(pl.Callback):
    """At the end of each training epoch (after its validation): ``trial.checkpoint({"model": weights})``
    then ``trial.report(**callback_metrics)``; after each optimizer step, ``trial.step()``."""

    def __init__(self, trial: Trial, epochs: Iterator[int] | None = None) -> None:
        self.trial = trial
        self.epochs = epochs  # fit's trial.epochs(), advanced after each report
        self.validated = False
        self.last_step = 0

    def on_train_start(self, trainer, pl_module):
        self.last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for _ in range(trainer.global_step - self.last_step):
            self.trial.step()
        self.last_step = trainer.global_step

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.validated = True

    def on_train_epoch_end(self, trainer, pl_module):
        if not self.validated:
            raise RuntimeError(
                f"epoch {trainer.current_epoch + 1}: the Lightning Trainer ran no validation; "
                f"expected validation every epoch (val_dataloaders, check_val_every_n_epoch=1)"
            )
        self.validated = False
        self.trial.checkpoint({"model": pl_module.state_dict()})
        self.trial.report(**numbers(trainer.callback_metrics))
        if self.epochs is not None:
            next(self.epochs, None)


def fit(trainer: Any, module: Any, trial: Trial, **fit_kwargs: Any) -> None:
    """Run ``trainer.fit(module, **fit_kwargs)`` as the trial: restore, the trial's optimizer, the epochs
    left, a ``SweepCallback`` (see the module's doc). Raises ``ValueError`` for a Trainer that does not
    validate every epoch."""
    every = trainer.check_val_every_n_epoch
    if every != 1:
        raise ValueError(
            f"Trainer(check_val_every_n_epoch={every}): expected 1 (the sweep takes one report, "
            f"with validation metrics, per epoch)"
        )
    state = trial.restore()
    if state is not None:
        module.load_state_dict(state["model"])
    epochs = trial.epochs()
    first = next(epochs, None)
    if first is None:
        return
    trainer.fit_loop.max_epochs = trial.max_epochs - first

    def configure_optimizers():
        return trial.optimizer(module.parameters())

    module.configure_optimizers = configure_optimizers
    trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, SweepCallback)]
    trainer.callbacks.append(SweepCallback(trial, epochs))
    trainer.fit(module, **fit_kwargs)
