"""Semi-supervised learner variants on one cached encoder's pool features (pool only).

    python learner_check.py DATASET SETTINGS_JSON
"""

import json
import sys
from pathlib import Path

import numpy as np
from common import labeled_set, splits

from activegen.features.self_supervised import SelfSupervisedSettings, SelfSupervisedSource
from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe

name, spec = sys.argv[1], sys.argv[2]
Xp, yp, _, _ = splits(name)
source = SelfSupervisedSource(SelfSupervisedSettings(**json.loads(spec)),
                              cache_dir=Path("/tmp/activegen-tune"), threads=1, display="none")
source.fit(Xp)
F = source.transform(Xp)


def self_train(F_labeled: np.ndarray, y_labeled: np.ndarray, rounds: int = 5) -> LinearProbe:
    """The probe, refitted each round with the pool points it is most sure of added
    (round r: the most confident r/(rounds+1) of the pool) under their predicted labels."""
    probe = LinearProbe(10)
    probe.prepare(F)
    probe.fit(F_labeled, y_labeled)
    for r in range(rounds):
        proba = probe.predict_proba(F)
        confidence = proba.max(1)
        keep = confidence >= np.quantile(confidence, 1 - (r + 1) / (rounds + 1))
        probe = LinearProbe(10)
        probe.prepare(F)
        probe.fit(np.concatenate([F_labeled, F[keep]]),
                  np.concatenate([y_labeled, proba.argmax(1)[keep]]))
    return probe


variants = {
    "probe C=1": lambda: LinearProbe(10, C=1.0),
    "LS default": lambda: LabelSpreadingLearner(10),
    "LS alpha.2": lambda: LabelSpreadingLearner(10, alpha=0.2),
    "LS k5": lambda: LabelSpreadingLearner(10, n_neighbors=5),
    "LS C.1": lambda: LabelSpreadingLearner(10, C=0.1),
    "LS C10": lambda: LabelSpreadingLearner(10, C=10.0),
    "LS conf.5": lambda: LabelSpreadingLearner(10, min_confidence=0.5),
}
for n in (20, 100):
    results: dict[str, list[float]] = {}
    for seed in range(3):
        idx = labeled_set(n, len(F), seed)
        rest = np.setdiff1d(np.arange(len(F)), idx)
        for key, make in variants.items():
            learner = make()
            learner.prepare(F)
            learner.fit(F[idx], yp[idx])
            results.setdefault(key, []).append(learner.score(F[rest], yp[rest]))
        results.setdefault("self-train", []).append(
            self_train(F[idx], yp[idx]).score(F[rest], yp[rest]))
    print(n, "  ".join(f"{k}={100 * np.mean(v):.1f}" for k, v in results.items()), flush=True)
