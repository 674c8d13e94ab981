"""Babysitting pre-flight checks: cheap sanity checks on a workload before any sweep fans out.

Pure library: torch only, no Ray. ``run_checks(workload, config, lr_grid)`` builds the workload with
``orchestrator.workloads.build`` (again wherever a check needs a fresh model) and runs one small function
per concern, in the spirit of Karpathy's "recipe for training neural networks" and CS231n's
"babysitting the learning process":

==================  ===========  ==================================================================
check name          module       concern
==================  ===========  ==================================================================
initial_loss        training     first-batch loss of the untrained model is ~ln(C), a uniform guess
overfit_small       training     regularisation off, 16 training examples are driven to a loss near zero
regularisation      training     with the config's dropout / weight decay, that small run ends higher
gradients           training     autograd agrees with central finite differences (float64)
preprocessing       setup        training inputs are centred and scaled per feature
initialisation      setup        Kaiming / Xavier weight scales; activations neither collapse nor explode
validation_split    setup        a non-empty validation set that shares no input row with the training set
hp_dropout          setup        dropout in the usual 0.2-0.5 band (warn only)
hp_batch_size       setup        batch size >= 32 (warn only)
hp_lr_grid          setup        the learning-rate grid spans >= 3 decades (warn only)
batch_fit           preflight    (asked for: ``batch_search``) the largest batch that fits, at the
                                 config's precision
==================  ===========  ==================================================================

"training" is ``orchestrator.checks_training`` (checks that train or differentiate the model), "setup" is
``orchestrator.checks_setup`` (checks that inspect data, initialisation and hyperparameters); the
``Check`` verdict they return is defined in ``orchestrator.checkresult`` and re-exported here. This module
holds the run: the shared probe, the isolation, the order of ``CHECKS``, batch_fit and ``run_checks``.

Every check runs inside :func:`_isolated`: it seeds torch itself and leaves torch's RNG, default dtype
and grad mode as it found them. A check that raises is reported as a failed check (the message says
what raised); a workload that cannot be built at all raises ``WorkloadError`` from ``run_checks``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Collection, Iterator

import torch

from orchestrator.autobatch import NothingFits
from orchestrator.checkresult import FAIL, PASS, WARN, Check
from orchestrator.checks_setup import (
    check_hp_batch_size,
    check_hp_dropout,
    check_hp_lr_grid,
    check_initialisation,
    check_preprocessing,
    check_validation_split,
)
from orchestrator.checks_training import (
    _fit_few,
    _Run,
    check_gradients,
    check_initial_loss,
    check_overfit_small,
    check_regularisation,
)
from orchestrator.memprobe import Search, largest_for
from orchestrator.trialkeys import AUTO
from orchestrator.workloads import Workload, build

__all__ = ["CHECKS", "CHECK_NAMES", "Check", "check_batch_fit", "failed", "format_checks", "run_checks"]


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
