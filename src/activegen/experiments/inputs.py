"""What a run's learner and strategies see of each example: the images, or the feature
vectors of the config's ``[features]`` source, fitted once on the unlabeled pool.

A source that learns (self-supervised, vae) trains once per pool and settings and is kept in
the artifact cache; within one process the transformed pool and test sets are also kept in
memory, so every run of an experiment reads the same vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activegen._cache import content_key, data_fingerprint
from activegen.data.dataset import Dataset
from activegen.experiments.progress import phase
from activegen.features import source_for
from activegen.features.settings import FeaturesSettings

RunInputs = tuple[np.ndarray, dict[str, np.ndarray]]

_MEMORY: dict[str, RunInputs] = {}


def run_inputs(features: FeaturesSettings, pool: Dataset, tests: dict[str, Dataset],
               cache_dir: Path | None, show_progress: bool = False) -> RunInputs | None:
    """The pool's and the test sets' feature vectors, or ``None`` for ``pixels`` (the
    images themselves)."""
    if features.is_pixels:
        return None
    key = content_key({"features": features.model_dump(), "pool": data_fingerprint(pool.X),
                       "tests": {n: data_fingerprint(t.X) for n, t in sorted(tests.items())}})
    if key not in _MEMORY:
        source = source_for(features, pool.image_shape[2], cache_dir,
                                display="auto" if show_progress else "lines")
        X = pool.to_float()
        if source.needs_fit:
            phase(f"fitting the {features.source} features on the {len(pool)} pool images "
                  f"(once; cached){_time_to_train(features, X)}")
        source.fit(X)
        _MEMORY[key] = (source.transform(X), {name: source.transform(t.to_float())
                                              for name, t in tests.items()})
    return _MEMORY[key]


def _time_to_train(features: FeaturesSettings, X: np.ndarray) -> str:
    """``; training takes about N min on one core`` for a source whose cost is known."""
    if features.source != "self-supervised":
        return ""
    seconds = features.self_supervised.estimated_seconds(len(X), X.shape[1:])
    return (f"; training, if not cached, takes about {max(1, round(seconds / 60))} min on one "
            "CPU core")
