"""Feature quality of one cached encoder on the pool only: a probe on half the pool's labels,
10-NN, the probe's C and label-spreading settings at 100 labels.

    python probe_check.py DATASET SETTINGS_JSON
"""

import json
import sys
from pathlib import Path

import numpy as np
from common import labeled_set, splits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from activegen.features.self_supervised import SelfSupervisedSettings, SelfSupervisedSource
from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe

name, spec = sys.argv[1], sys.argv[2]
Xp, yp, _, _ = splits(name)
source = SelfSupervisedSource(SelfSupervisedSettings(**json.loads(spec)),
                              cache_dir=Path("/tmp/activegen-tune"), threads=1, display="none")
source.fit(Xp)
F = source.transform(Xp)
half = len(F) // 2
Z = (F - F.mean(0)) / F.std(0)
full = LogisticRegression(C=1.0, max_iter=2000).fit(Z[:half], yp[:half])
Fn = F / np.linalg.norm(F, axis=1, keepdims=True)
knn = KNeighborsClassifier(10).fit(Fn[:half], yp[:half])
print(f"full-label probe (half/half) {full.score(Z[half:], yp[half:]):.3f}  "
      f"10-NN cosine {knn.score(Fn[half:], yp[half:]):.3f}")


def pool_scores(make) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    scores, spread = [], []
    for seed in range(3):
        idx = labeled_set(100, len(F), seed)
        rest = np.setdiff1d(np.arange(len(F)), idx)
        learner = make()
        learner.prepare(F)
        learner.fit(F[idx], yp[idx])
        scores.append(learner.score(F[rest], yp[rest]))
        labels = getattr(learner, "pool_labels_", None)
        spread.append(np.mean(labels[rest] == yp[rest]) if labels is not None else np.nan)
    return float(np.mean(scores)), float(np.mean(spread))


for C in (0.01, 0.1, 1.0, 10.0):
    print(f"probe C={C}: {pool_scores(lambda C=C: LinearProbe(10, C=C))[0]:.3f}")
for kw in ({}, {"standardise_graph": True}, {"alpha": 0.99}, {"n_neighbors": 20},
           {"alpha": 0.5}):
    distilled, transductive = pool_scores(lambda kw=kw: LabelSpreadingLearner(10, **kw))
    print(f"spread {kw}: distilled {distilled:.3f} transductive {transductive:.3f}")
