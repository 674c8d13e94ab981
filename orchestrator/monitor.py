"""The old home of the watchers, kept so that old import paths and the callbacks pickled in a sweep
folder made before the split (``tuner.pkl`` names ``orchestrator.monitor.TrialBoard``) still load.

New code imports from the modules themselves: ``progress`` (the tally, no Ray), ``board`` (the Tune
callbacks), ``tbserver`` (``sweep tensorboard``).
"""

from __future__ import annotations

from orchestrator.board import (  # noqa: F401
    SWEEP_RUN,
    Progress,
    SweepBoard,
    TrialBoard,
    callbacks,
    session_end_summary,
    session_start_summary,
)
from orchestrator.progress import Tally, TrialInfo  # noqa: F401
from orchestrator.tbnames import hparams_of  # noqa: F401
from orchestrator.tbserver import TensorBoardError, TensorBoardServer, cmd_tensorboard, launch, register  # noqa: F401
