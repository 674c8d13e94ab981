"""The training-function contract: ``train(config: dict, trial: Trial) -> None`` runs one trial.

The sweep owns what it searches and schedules: the learning rate, the optimizer, the decay law, the epochs,
early stopping (ASHA) and checkpoints. The function owns the model, the data and the loop. ``Trial`` is the
function's one handle on the sweep (docs/training-api.md)::

    def train(config, trial):
        model = make_model(config).to(trial.device)
        optimizer = trial.optimizer(model.parameters())   # configured optimizer at trial.lr, decay law attached
        saved = trial.restore()                           # the state of the last checkpoint, or None
        if saved:
            model.load_state_dict(saved["model"])
        for epoch in trial.epochs():                      # the epochs left to run
            ...                                           # optimizer.step(); trial.step()
            trial.checkpoint({"model": model.state_dict()})
            trial.report(val_loss=val_loss, accuracy=acc) # once per epoch; ASHA may stop the trial here

Contract (each breach ends the trial as errored with one ``TrainingError`` line naming the function, the
key and what was expected): one ``report`` per epoch, each holding the sweep's metric as a number; at least
one report; at most ``max_epochs``; a resumed trial calls ``restore()`` before its first report;
``checkpoint`` takes a dict of tensors and plain data whose keys are not the trial's own (``TRIAL_STATE``).
A non-finite metric ends the trial as diverged (``report`` does not return; the runtime ends the trial), as
does ``report(diverged=True, ...)``. An exception from the function errors the trial (Tune retries it up to
``max_failures``), its message prefixed with the function's name.

Plain torch, no Ray: ``run`` drives a function with a ``Sink`` (``orchestrator.trial.train_trial`` passes
one that calls ``tune.report``).
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

import schedules
from orchestrator.optimizers import make_optimizer

TrainFunction = Callable[[dict, "Trial"], Any]
Sink = Callable[[dict, dict | None], None]  # (metrics of one epoch, state to checkpoint or None)

TRIAL_STATE = ("optimizer", "schedule", "epoch", "history")  # the checkpoint keys the trial writes itself
TRIAL_METRICS = ("epoch", "lr_epoch", "device", "diverged", "epoch_seconds", "ended_at")  # set by report()
TUNE_RESERVED = (
    "done",
    "training_iteration",
    "trial_id",
    "config",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "checkpoint_dir_name",
    "should_checkpoint",
)
PLAIN_LEAVES = (torch.Tensor, bool, int, float, str, bytes, type(None), torch.dtype, torch.Size, torch.device)


class TrainingError(RuntimeError):
    """A training function broke the ``Trial`` contract, or raised: one line naming the function, the key
    and what was expected. The trial ends as errored; the sweep goes on."""


class _Diverged(BaseException):
    """Raised by ``Trial.report`` once the metric is not finite: ends the function wherever it is (a
    BaseException, so a user's ``except Exception`` does not swallow it); ``run`` catches it."""


def _number(value: Any) -> Any:
    """A 0-d tensor or numpy scalar as a Python number (Tune refuses tensors); anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


class Parallel:
    """How a trial's training is spread over processes; this null object is one process (rank 0 of 1).

    A data-parallel trial (``orchestrator.distributed``) passes one whose ``model`` wraps the model for
    gradient averaging (DDP) and whose ``shard`` keeps this rank's equal share of a training set; the
    built-in loop calls both, a training function may. Only rank 0's reports and checkpoints reach the sweep."""

    rank: int = 0
    world_size: int = 1

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train (forward and backward) in place of ``model``; its state stays ``model``'s."""
        return model

    def shard(self, dataset):
        """This rank's part of the training set ``dataset``."""
        return dataset


class Trial:
    """One trial's handle on the sweep, passed to ``train(config, trial)``.

    ``config``: the trial's searched and fixed values (private ``_`` keys left out). ``function``: how
    messages name the function (``train='pkg.mod:fn'``). ``sink(metrics, state_or_None)`` receives each
    report. ``state``: a checkpoint to resume from (its ``epoch`` epochs are done). ``metric``/``mode``: the
    sweep's metric and direction (default: the ``_metric``/``_mode`` keys of ``config``, else val_loss/min).
    ``parallel``: how training is spread over processes (``Parallel``: one process).
    """

    def __init__(
        self,
        config: dict,
        *,
        function: str = "train",
        sink: Sink | None = None,
        state: dict | None = None,
        device: torch.device | None = None,
        metric: str | None = None,
        mode: str | None = None,
        parallel: Parallel | None = None,
    ) -> None:
        self.config: dict = {k: v for k, v in config.items() if not str(k).startswith("_")}
        self.function = function
        self.metric: str = metric or str(config.get("_metric", "val_loss"))
        self.mode: str = mode or str(config.get("_mode", "min"))
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode={self.mode!r}: expected 'min' or 'max'")
        self.device: torch.device = device or torch.device("cpu")
        self.parallel: Parallel = parallel or Parallel()
        self.max_epochs: int = int(config["max_epochs"])
        self.seed: int = int(config.get("seed", 0)) + int(config.get("seed_offset", 0))
        self.history: list[dict] = []  # the metrics reported in this run (not those before the checkpoint)
        self.steps = 0  # trial.step() calls in this run
        self._sink = sink
        self._state = state or None
        self._start = int(state["epoch"]) if state else 0
        self._epoch = self._start  # the epoch the next report closes (0-based)
        self._past = list(state.get("history", [])) if state else []
        self._optimizer: torch.optim.Optimizer | None = None
        self._stepper: schedules.Stepper | None = None
        self._pending: dict | None = None
        self._restored = self._state is None or not self._user_state(self._state)
        self._t0 = time.perf_counter()

    # --- what the sweep hands the function -----------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate this trial tries (the base of the decay law)."""
        return float(self.config["lr"])

    @property
    def epoch(self) -> int:
        """The 0-based index of the epoch the next ``report`` closes."""
        return self._epoch

    def optimizer(self, params) -> torch.optim.Optimizer:
        """The configured optimizer (``optimizer``, ``momentum``, ``weight_decay``) over ``params`` at
        ``lr``, with the configured decay law attached; restored from the checkpoint when resuming. Once per
        trial."""
        if self._optimizer is not None:
            raise TrainingError(
                f"{self.function}: trial.optimizer() called twice; expected one optimizer per "
                f"trial (put every parameter group in the one call)"
            )
        optimizer = make_optimizer(self.config, params)
        stepper = schedules.attach(optimizer, schedules.law_from_config(self.config))
        if self._state and "optimizer" in self._state:
            optimizer.load_state_dict(self._state["optimizer"])
            stepper.load_state_dict(self._state["schedule"])
        self._optimizer, self._stepper = optimizer, stepper
        return optimizer

    def epochs(self) -> Iterator[int]:
        """The 0-based indices of the epochs left to run (after a checkpoint: from where it stopped). Each
        must end with one ``report``."""
        while self._epoch < self.max_epochs:
            epoch = self._epoch
            self._t0 = time.perf_counter()
            yield epoch
            if self._epoch == epoch:
                raise TrainingError(
                    f"{self.function}: epoch {epoch + 1} of {self.max_epochs} ended without "
                    f"trial.report(); expected trial.report({self.metric}=...) once per epoch"
                )
            if self._epoch > epoch + 1:
                raise TrainingError(
                    f"{self.function}: trial.report() called {self._epoch - epoch} times in epoch "
                    f"{epoch + 1}; expected once per epoch of trial.epochs()"
                )

    def step(self) -> None:
        """Call after each ``optimizer.step()``. Steps a decay law defined per optimizer step; every law in
        ``schedules.LAWS`` is per epoch (stepped by ``report``), so today this counts steps (``steps``)."""
        self.steps += 1

    def checkpoint(self, state: dict) -> None:
        """Save ``state`` (tensors, dicts, lists, numbers, strings: loaded back with ``weights_only``) with
        the next ``report`` when that epoch is due (every ``checkpoint_every`` epochs and the last; never
        when it is 0), together with the optimizer and decay-law state the trial owns. Tensors are saved as
        they are at that report."""
        if not isinstance(state, dict):
            raise TrainingError(f"{self.function}: trial.checkpoint({type(state).__name__}); expected a dict")
        taken = sorted(set(state) & set(TRIAL_STATE))
        if taken:
            raise TrainingError(
                f"{self.function}: trial.checkpoint(state): key {taken[0]!r} is the trial's own "
                f"(it saves {', '.join(TRIAL_STATE)} itself); expected other keys"
            )
        _check_plain(state, "state", self.function)
        self._pending = state

    def restore(self) -> dict | None:
        """The dict given to ``checkpoint`` in the last checkpoint, or None when the trial starts fresh."""
        self._restored = True
        if self._state is None:
            return None
        return self._user_state(self._state)

    def report(self, **metrics: Any) -> None:
        """Close one epoch with its metrics; they must hold the sweep's metric as a number. Steps an
        epoch-based decay law (plateau watches ``val_loss`` when reported, else the metric), sends the
        metrics (and a due checkpoint) to the sweep, where ASHA may stop the trial. A non-finite metric, or
        ``diverged=True``, ends the trial as diverged: the metric is recorded as the worst value (inf under
        ``mode: min``, -inf under ``max``) and this call does not return."""
        fn, key = self.function, self.metric
        if self._epoch >= self.max_epochs:
            raise TrainingError(
                f"{fn}: trial.report() after the last epoch; expected at most max_epochs="
                f"{self.max_epochs} reports (loop over trial.epochs())"
            )
        if not self._restored:
            raise TrainingError(
                f"{fn}: the trial resumed from a checkpoint at epoch {self._start} but never called "
                f"trial.restore(); expected the function to load its state before training on"
            )
        reserved = sorted(set(metrics) & (set(TRIAL_METRICS) - {"diverged"} | set(TUNE_RESERVED)))
        if reserved:
            raise TrainingError(
                f"{fn}: trial.report({reserved[0]}=...): {reserved[0]!r} is set by the sweep; "
                f"expected your own metrics, such as {key}=..."
            )
        explicit = bool(metrics.pop("diverged", False))
        values = {k: _number(v) for k, v in metrics.items()}
        if key not in values:
            near = difflib.get_close_matches(key, list(values), n=1)
            given = ", ".join(f"{k}=..." for k in values) or "no metrics"
            hint = f" (is {near[0]!r} it?)" if near else ""
            raise TrainingError(
                f"{fn}: trial.report({given}) has no {key!r}{hint}; expected the sweep's metric "
                f"in every report: trial.report({key}=<number>)"
            )
        value = values[key]
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TrainingError(f"{fn}: trial.report({key}={type(value).__name__}); expected a number")
        value = float(value)
        diverged = explicit or not math.isfinite(value)
        if not math.isfinite(value):
            if not explicit:
                print(
                    f"[sweep] {fn}: trial.report({key}={value}) in epoch {self._epoch + 1}: expected a finite "
                    f"number; the trial ends as diverged",
                    file=sys.stderr,
                    flush=True,
                )
            values[key] = math.inf if self.mode == "min" else -math.inf
        lr_now = self._stepper.lr if self._stepper is not None else self.lr
        out = {
            "epoch": self._epoch + 1,
            "lr_epoch": lr_now,
            "device": str(self.device),
            "diverged": diverged,
            "epoch_seconds": time.perf_counter() - self._t0,
            "ended_at": time.time(),
            **values,
        }
        if not diverged and self._stepper is not None:
            watched = values.get("val_loss", value if self.mode == "min" else -value)
            self._stepper.step(float(watched))
        self.history.append(out)
        save = None
        every = int(self.config.get("checkpoint_every", 0) or 0)
        done = self._epoch + 1
        if self._pending is not None and every and not diverged and (done % every == 0 or done == self.max_epochs):
            save = dict(self._pending)
            if self._optimizer is not None and self._stepper is not None:
                save.update(optimizer=self._optimizer.state_dict(), schedule=self._stepper.state_dict())
            save.update(epoch=done, history=self._past + self.history)  # the results so far, for the driver
        self._pending = None
        self._epoch = done
        if self._sink is not None:
            self._sink(out, save)
        self._t0 = time.perf_counter()
        if diverged:
            raise _Diverged

    # --- plumbing ------------------------------------------------------------------------------------
    @staticmethod
    def _user_state(state: dict) -> dict:
        return {k: v for k, v in state.items() if k not in TRIAL_STATE}


def _check_plain(value: Any, where: str, function: str) -> None:
    """Raise ``TrainingError`` naming the first part of ``value`` that ``torch.load(weights_only=True)``
    would refuse."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TrainingError(
                    f"{function}: trial.checkpoint: {where} has a key of type {type(k).__name__}; "
                    f"expected str or int keys"
                )
            _check_plain(v, f"{where}[{k!r}]", function)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]", function)
    elif not isinstance(value, PLAIN_LEAVES):
        raise TrainingError(
            f"{function}: trial.checkpoint: {where} is a {type(value).__name__}; expected "
            f"tensors, dicts, lists, numbers and strings (checkpoints load with weights_only)"
        )


def run(fn: TrainFunction, trial: Trial, *, wrap_errors: bool = True) -> list[dict]:
    """Call ``fn(trial.config, trial)``; return the metrics it reported in this run. A diverged report ends
    it quietly; a function that returns without reporting while epochs were left raises ``TrainingError``;
    any other exception is re-raised as ``TrainingError`` naming the function (``wrap_errors``) or as it is."""
    try:
        fn(dict(trial.config), trial)
    except _Diverged:
        return trial.history
    except (TrainingError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not wrap_errors:
            raise
        text = " ".join(str(exc).split())[:500]
        raise TrainingError(f"{trial.function} raised {type(exc).__name__} in epoch {trial.epoch + 1}: {text}") from exc
    if not trial.history and trial.epoch < trial.max_epochs:
        raise TrainingError(
            f"{trial.function} returned without calling trial.report(); expected "
            f"trial.report({trial.metric}=...) once per epoch, max_epochs={trial.max_epochs}"
        )
    return trial.history
