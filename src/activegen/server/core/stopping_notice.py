"""The labeling app's "you can stop here" notice: stopping criteria on a session.

After every refit, the session's learner predicts a fixed, seeded *stop set* of pool points;
the predictions go to the store (its ``stopping`` meta entry, so a reopened session keeps its
earlier rounds) and the criteria of ``[stopping]`` (:mod:`activegen.stopping`; the experiment's
model: ``stop_on`` alone when it is set, else every criterion) are replayed over them.
``/api/state`` reports ``{"criterion", "fired", "round", "n_labels"}``: the first criterion to
fire and the round (whose fit was on every answer of the earlier rounds) at which it did.
A learner without class probabilities gives its predictions only (criteria that read
probabilities are left out for it).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from activegen.experiments.config import StoppingConfig
from activegen.models.base import Learner
from activegen.models.capabilities import Probabilistic, has_capability
from activegen.server.core.schema import STOPPING_KEY
from activegen.server.core.store import LabelStore
from activegen.stopping import Observation, build_criterion


class SessionStopping:
    """Records the stop set's predictions per fitted round and says whether the criterion
    has fired."""

    def __init__(self, settings: StoppingConfig, X_pool: np.ndarray, seed: int,
                 store: LabelStore) -> None:
        self.settings = settings
        n = len(X_pool)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5709]))
        self.stop_idx = np.sort(rng.choice(n, size=min(settings.stop_set, n), replace=False))
        self.X_stop = X_pool[self.stop_idx]
        self.store = store
        stored = store.get_meta(STOPPING_KEY)
        payload = json.loads(stored) if stored is not None else {}
        # rows of another stop set (its size changed) are not comparable: start anew
        self.rows: list[dict[str, Any]] = (payload.get("rows", [])
                                           if payload.get("stop_set") == len(self.stop_idx)
                                           else [])

    def observe(self, round_: int, n_labels: int, learner: Learner) -> None:
        """Record the fit of ``round_`` (replacing any earlier record of it or a later round)."""
        self.rows = [r for r in self.rows if r["round"] < round_]
        proba = (np.asarray(learner.predict_proba(self.X_stop), np.float64).tolist()
                 if has_capability(learner, Probabilistic) else None)
        self.rows.append({
            "round": round_, "n_labels": n_labels,
            "predictions": np.asarray(learner.predict(self.X_stop), np.int64).tolist(),
            "proba": proba,
        })
        self.store.set_meta(STOPPING_KEY, json.dumps({"stop_set": len(self.stop_idx),
                                                  "rows": self.rows}))

    def state(self) -> dict[str, Any]:
        """The first criterion to fire, whether one has, and the round and labels at which."""
        names = ([self.settings.stop_on] if self.settings.stop_on is not None
                 else list(self.settings.criteria))
        criteria = {name: build_criterion(name, self.settings.criteria[name]) for name in names}
        for r in self.rows:
            obs = Observation(r["round"], r["n_labels"], np.asarray(r["predictions"]),
                              None if r["proba"] is None else np.asarray(r["proba"]))
            for name, criterion in list(criteria.items()):
                try:
                    fired = criterion.update(obs)
                except ValueError:
                    if obs.proba is not None:
                        raise
                    del criteria[name]  # it reads probabilities this learner does not give
                    continue
                if fired:
                    return {"criterion": name, "fired": True, "round": r["round"],
                            "n_labels": r["n_labels"]}
        return {"criterion": names[0] if len(names) == 1 else ", ".join(names),
                "fired": False, "round": None, "n_labels": None}
