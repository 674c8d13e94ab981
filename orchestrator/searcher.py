"""ZoomSearcher: the Ray Tune Searcher hooks of a sweep, forwarded to ``state.SweepState`` (the
bookkeeping, no Ray), which plans rounds of grids by the pure rules in ``zoom.py``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from ray.tune.search import Searcher

from orchestrator import zoom

# re-exported: old import paths, and searcher states pickled before the split name these here
from orchestrator.state import Suggestion, SweepState, TrialRecord  # noqa: F401


class ZoomSearcher(Searcher):
    """Coarse-then-fine over one log-scaled parameter, crossed with the other grid dimensions."""

    def __init__(self, state: SweepState, on_round: Callable[[zoom.Round | zoom.Stop], None] | None = None):
        super().__init__(metric=state.metric, mode="min")
        self.state = state
        self.on_round = on_round

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # Tune passes its metric/mode
        return True

    def suggest(self, trial_id: str):
        n_rounds, had_reason = len(self.state.rounds), self.state.stop_reason
        suggestion = self.state.next_config(trial_id)
        if self.on_round and len(self.state.rounds) > n_rounds:
            self.on_round(self.state.rounds[-1])
        if self.on_round and self.state.stop_reason and not had_reason:
            self.on_round(zoom.Stop(self.state.stop_reason))
        return Searcher.FINISHED if suggestion.finished else suggestion.config  # None: Tune asks again later

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.state.record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.state.complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.state = pickle.load(f)
