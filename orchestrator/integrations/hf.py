"""Sweep a Hugging Face ``transformers.Trainer`` (extra: ``pip install 'sweep-orchestrator[hf]'``).

In a training function (``train: "module:train"`` in the sweep YAML)::

    from orchestrator.integrations import hf

    def train(config, trial):
        model = BertForSequenceClassification(BertConfig(...))
        args = TrainingArguments(output_dir="hf", eval_strategy="epoch", save_strategy="no", report_to="none")
        hf.fit(Trainer(model=model, args=args, train_dataset=..., eval_dataset=...), trial)

``fit`` hands the Trainer what the sweep controls and runs it:

- the model's weights from the trial's last checkpoint (``trial.restore()["model"]``), if any;
- the optimizer, ``trial.optimizer(model.parameters())``: the configured optimizer at the trial's learning
  rate with its decay law (the Trainer's own ``learning_rate``, ``optim`` and ``lr_scheduler_type`` are not
  used), and as the Trainer's scheduler a ``TrialSchedule`` that steps a per-step law once per optimizer step
  (``trial.step()``); an epoch law is stepped by ``trial.report``;
- ``num_train_epochs``: the epochs the trial has left (``trial.epochs()``: all of them, or those after the
  checkpoint it resumes from);
- a ``SweepCallback``, which at each epoch's evaluation checkpoints the model's weights and reports the
  evaluation's metrics, renamed ``eval_X`` -> ``val_X`` (``eval_loss`` -> ``val_loss``, ``eval_accuracy``
  -> ``val_accuracy``; the timing keys ``eval_runtime``, ``eval_samples_per_second``,
  ``eval_steps_per_second`` are left out), with ``train_loss``: the Trainer's mean training loss logged in
  that epoch (``logging_strategy="epoch"``), when it logged one. ASHA stops the trial in ``trial.report``.

The Trainer must evaluate once per epoch (``eval_strategy="epoch"``) and must not cap its steps
(``max_steps``); ``fit`` raises ``ValueError`` otherwise. The sweep keeps the checkpoints: set
``save_strategy="no"`` unless you want the Trainer's own as well. A resumed trial goes on from the
checkpoint's weights, optimizer and decay law; its batches come in the order the Trainer draws anew
(``args.seed``), not the order the uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.integrations import missing

if TYPE_CHECKING:
    from orchestrator.session import Trial

try:
    import transformers
except ImportError:
    raise missing("transformers", "hf") from None

TIMING_KEYS = frozenset({"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})


def val_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The Trainer's evaluation metrics as the sweep reports them: ``eval_X`` -> ``val_X``, other keys as
    they are; timing keys, the Trainer's ``epoch`` and values that are not numbers left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in TIMING_KEYS or key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out["val_" + key[len("eval_") :] if key.startswith("eval_") else key] = float(value)
    return out


class TrialSchedule:
    """What the Trainer takes as its learning-rate scheduler: ``step()`` (called by the Trainer after each
    optimizer step it did not skip) steps the trial's per-step law (``trial.step()``, a no-op for an epoch
    law); ``get_last_lr()`` reads the optimizer's rates for the Trainer's logs. Its state is the trial's:
    ``state_dict()`` is empty, as the sweep's checkpoints carry the schedule."""

    def __init__(self, trial: Trial, optimizer: Any) -> None:
        self.trial = trial
        self.optimizer = optimizer

    def step(self) -> None:
        self.trial.step()

    def get_last_lr(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def optimizers(trial: Trial, model: Any) -> tuple[Any, TrialSchedule]:
    """``Trainer(optimizers=...)``: the trial's optimizer over ``model``'s parameters and its schedule."""
    optimizer = trial.optimizer(model.parameters())
    return optimizer, TrialSchedule(trial, optimizer)


class SweepCallback(transformers.TrainerCallback):
    """Forwards each evaluation during ``Trainer.train()`` to the trial: ``trial.checkpoint({"model":
    weights})`` then ``trial.report(**val_metrics(metrics), train_loss=...)``. An evaluation outside
    training (``trainer.evaluate()`` after it) reports nothing."""

    def __init__(self, trial: Trial, epochs: Iterator[int] | None = None) -> None:
        self.trial = trial
        self.epochs = epochs  # fit's trial.epochs(), advanced after each report
        self.training = False
        self.train_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.training, self.train_loss = True, None

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and isinstance(logs.get("loss"), (int, float)):
            self.train_loss = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not self.training:
            return
        reported = val_metrics(metrics or {})
        if self.train_loss is not None:
            reported.setdefault("train_loss", self.train_loss)
            self.train_loss = None  # one epoch's loss is reported with that epoch only
        if model is not None:
            self.trial.checkpoint({"model": model.state_dict()})
        self.trial.report(**reported)
        if self.epochs is not None:
            next(self.epochs, None)


def fit(trainer: Any, trial: Trial) -> None:
    """Run ``trainer`` (a ``transformers.Trainer``) as the trial: restore, optimizer and schedule, the epochs
    left, a ``SweepCallback`` (see the module's doc). Raises ``ValueError`` for a Trainer that does not
    evaluate each epoch or that caps its steps."""
    args = trainer.args
    if args.eval_strategy != "epoch":
        shown = getattr(args.eval_strategy, "value", args.eval_strategy)  # IntervalStrategy is a str enum
        raise ValueError(
            f"TrainingArguments.eval_strategy={shown!r}: expected 'epoch' (the sweep takes one report per epoch)"
        )
    if args.max_steps is not None and args.max_steps > 0:
        raise ValueError(
            f"TrainingArguments.max_steps={args.max_steps}: expected -1 (the sweep sets the "
            f"epochs: max_epochs in the sweep YAML)"
        )
    state = trial.restore()
    if state is not None:
        trainer.model.load_state_dict(state["model"])
    epochs = trial.epochs()
    first = next(epochs, None)
    if first is None:
        return
    args.num_train_epochs = trial.max_epochs - first
    trainer.optimizer, trainer.lr_scheduler = optimizers(trial, trainer.model)
    for callback in [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SweepCallback)]:
        trainer.remove_callback(callback)
    trainer.add_callback(SweepCallback(trial, epochs))
    trainer.train()
