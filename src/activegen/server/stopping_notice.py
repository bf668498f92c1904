"""The labeling app's "you can stop here" notice: one stopping criterion on a session.

After every refit, the session's learner predicts a fixed, seeded *stop set* of pool points;
the predictions go to the store (its ``stopping`` meta entry, so a reopened session keeps its
earlier rounds) and the criterion of ``[stopping]`` (:mod:`activegen.stopping`) is replayed over
them. ``/api/state`` reports ``{"criterion", "fired", "round", "n_labels"}``: the session round
(whose fit was on every answer of the earlier rounds) at which it first fired.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from activegen.models.base import Learner
from activegen.server.config import LabelStoppingConfig
from activegen.server.store import LabelStore
from activegen.stopping import Observation, build_criterion

META_KEY = "stopping"


class SessionStopping:
    """Records the stop set's predictions per fitted round and says whether the criterion
    has fired."""

    def __init__(self, settings: LabelStoppingConfig, X_pool: np.ndarray, seed: int,
                 store: LabelStore) -> None:
        self.settings = settings
        n = len(X_pool)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5709]))
        self.stop_idx = np.sort(rng.choice(n, size=min(settings.stop_set, n), replace=False))
        self.X_stop = X_pool[self.stop_idx]
        self.store = store
        stored = store.get_meta(META_KEY)
        payload = json.loads(stored) if stored is not None else {}
        # rows of another stop set (its size changed) are not comparable: start anew
        self.rows: list[dict[str, Any]] = (payload.get("rows", [])
                                           if payload.get("stop_set") == len(self.stop_idx)
                                           else [])

    def observe(self, round_: int, n_labels: int, learner: Learner) -> None:
        """Record the fit of ``round_`` (replacing any earlier record of it or a later round)."""
        self.rows = [r for r in self.rows if r["round"] < round_]
        self.rows.append({
            "round": round_, "n_labels": n_labels,
            "predictions": np.asarray(learner.predict(self.X_stop), np.int64).tolist(),
            "proba": np.asarray(learner.predict_proba(self.X_stop), np.float64).tolist(),
        })
        self.store.set_meta(META_KEY, json.dumps({"stop_set": len(self.stop_idx),
                                                  "rows": self.rows}))

    def state(self) -> dict[str, Any]:
        """The criterion, whether it has fired, and the round and labels at which it first did."""
        criterion = build_criterion(self.settings.criterion, self.settings.params)
        fired: dict[str, Any] | None = None
        for r in self.rows:
            obs = Observation(r["round"], r["n_labels"], np.asarray(r["predictions"]),
                              np.asarray(r["proba"]))
            if criterion.update(obs):
                fired = r
                break
        return {"criterion": self.settings.criterion, "fired": fired is not None,
                "round": None if fired is None else fired["round"],
                "n_labels": None if fired is None else fired["n_labels"]}
