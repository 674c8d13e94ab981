"""Trial checkpoints on storage: the state file of one checkpoint folder (``CHECKPOINT_FILE``), loaded as
plain tensors and data only (``load_state``; ``CheckpointError`` otherwise), the newest sibling standing in for
a folder Tune already deleted (``mend_checkpoint``), and the per-epoch results a checkpoint holds
(``checkpoint_history``, for the driver)."""

from __future__ import annotations

import glob
import os
import pickle
import re
import shutil
import sys

import torch

from orchestrator.errors import CheckpointError

CHECKPOINT_FILE = "state.pt"


def load_state(directory: str) -> dict | None:
    """The state saved in one checkpoint folder; when that folder holds none (Tune may point at a
    checkpoint it already deleted), the newest sibling ``checkpoint_*`` that holds one, else None (the
    trial starts over). Raises ``CheckpointError`` for a file that is not plain tensors and data.
    Why: docs/decisions.md, "Resume from the newest sibling checkpoint"."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(path):
        sibling = _newest_sibling_state(directory)
        if sibling is None:
            return None
        path = sibling
    return _load_plain(path)


def _load_plain(path: str) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, so a ``state.pt`` planted in
    the storage cannot run code here (a full unpickle would call whatever its ``__reduce__`` names).
    Raises ``CheckpointError`` for anything else; the trial errors (Tune retries it, then records it as
    errored with this message) instead of starting over, so tampered storage is seen, not hidden."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)|Unsupported operand \S+", str(exc))
        what = found.group(1) or found.group(0) if found else "objects that are not tensors or plain data"
        raise CheckpointError(
            f"{path}: checkpoint refused: it holds {what} (only tensors, dicts, lists, "
            f"numbers and strings are loaded; whoever can write the storage must be trusted "
            f"to restore from it)"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: checkpoint refused: expected a dict of tensors and plain data, found {type(state).__name__}"
        )
    return state


def _newest_sibling_state(directory: str) -> str | None:
    """The state file of the newest ``checkpoint_*`` folder beside ``directory`` (Tune numbers them with
    zero padding, so names sort by age); None if none holds one."""
    parent = os.path.dirname(os.path.normpath(directory))
    states = sorted(glob.glob(os.path.join(glob.escape(parent), "checkpoint_*", CHECKPOINT_FILE)))
    return states[-1] if states else None


def mend_checkpoint(checkpoint) -> str | None:
    """When ``checkpoint`` (a Tune checkpoint on local storage) has no state, copy the newest sibling
    ``checkpoint_*`` that holds one into it, so that Tune can restore the trial from there. Returns the
    folder copied, or None when nothing was missing (or it is not local, or no sibling holds a state).
    Why: docs/decisions.md, "Resume from the newest sibling checkpoint"."""
    from orchestrator import atomicfs

    if checkpoint is None or not atomicfs.is_local(checkpoint.filesystem):
        return None
    target = checkpoint.path
    if os.path.exists(os.path.join(target, CHECKPOINT_FILE)):
        return None
    state = _newest_sibling_state(target)
    if state is None:
        return None
    source = os.path.dirname(state)
    shutil.copytree(source, target, dirs_exist_ok=True)
    return source


def checkpoint_history(checkpoint) -> list[dict]:
    """The per-epoch results saved in a trial checkpoint (none if it has no checkpoint)."""
    if checkpoint is None:
        return []
    with checkpoint.as_directory() as d:
        try:
            state = load_state(d)
        except CheckpointError as exc:  # the driver lists no epochs from it; the trial itself errors on it
            print(f"[sweep] warning: {exc}", file=sys.stderr, flush=True)
            return []
    return list(state.get("history", [])) if state else []
