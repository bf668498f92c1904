"""What a labeling session labels: its pool, what the learner sees of it, and what else the
pool's source offers.

Every session is the same session; only its :class:`SessionPool` differs. A dataset's pool
(:func:`dataset_pool`) is its images, seen by the learner as they are, with held-out test
sets for the learning curve. An unlabeled folder's pool (:mod:`activegen.server.images`) is
the folder's readable images seen through features, with each image's file, an audit sample,
labels already known, and a linear model to export. The web app adds the routes of what a
session offers (an audit, a model export) from these typed fields, never from the session's
class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from activegen.data.dataset import Dataset
from activegen.features.settings import FeaturesSettings
from activegen.models.base import Learner
from activegen.server.core.audit import AuditImages
from activegen.server.core.preparation import FeaturePreparation, PreparedFeatures, Progress


class ModelExporter(Protocol):
    """Turns the session's current learner into files to leave with."""

    def model_file(self, learner: Learner, audit: dict[str, Any] | None) -> bytes:
        """The learner as a self-contained model file.

        Raises:
            Conflict: the learner cannot be exported (not a linear model).
        """
        ...

    def predictions_csv(self, learner: Learner, answered: set[int]) -> str:
        """``path,label,confidence`` of every pool image not in ``answered``, least sure first.

        Raises:
            Conflict: as :meth:`model_file`.
        """
        ...


@dataclass(frozen=True)
class SessionPool:
    """The pool of one session and what its source offers.

    Attributes:
        images: the images a person sees (``uint8``) and the class names; the session replaces
            its labels with zeros, so nothing can read them.
        inputs: what the learner and the strategies see of each image, ``float32`` rows (the
            images in the model scale, or feature rows ``[N, d]``).
        test_sets: named held-out ``(X, y)`` in the inputs' scale, for the learning curve.
        files: each pool image's file, relative to its folder (None: no files).
        picture: the PNG shown for pool image ``i`` (None: its ``images`` array as a PNG).
        known: ``(pool_index, label)`` pairs known before the session, imported when it opens.
        audit: an audit sample, never in the pool (None: no audit).
        exporter: the model export (None: nothing to export).
        info: shown as is in the session's state (skipped files, the feature extractor).
        layout: what the store keeps of the pool's source so that a reopened session finds
            each image again (an image folder's files, in pool order; None: a dataset, whose
            order never changes).
        preparing: features still to be learned on the pool (None: ``inputs`` are final);
            until they are ready ``inputs`` are the pixels, the first batch is labeled on
            them, and the session starts the preparation and swaps its results in.
    """

    images: Dataset
    inputs: np.ndarray
    test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    files: Sequence[str] | None = None
    picture: Callable[[int], bytes] | None = None
    known: Sequence[tuple[int, int]] = ()
    audit: AuditImages | None = None
    exporter: ModelExporter | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    layout: Mapping[str, Any] | None = None
    preparing: FeaturePreparation | None = None


def dataset_pool(pool: Dataset, test_sets: Mapping[str, Dataset],
                 features: FeaturesSettings | None = None, cache_dir: Path | None = None,
                 seed: int = 0) -> SessionPool:
    """The session pool of a dataset: its images as the learner's inputs, its test sets.

    With ``features`` other than pixels the learner reads the pool and the test sets through
    that source (:func:`activegen.features.source_for`), fitted on the pool's images in the
    background (:class:`FeaturePreparation`): the session opens on the pixels at once.
    """
    tests = {name: (ds.to_float(), ds.y) for name, ds in test_sets.items()}
    if features is None or features.is_pixels:
        return SessionPool(images=pool, inputs=pool.to_float(), test_sets=tests)

    def prepare(progress: Progress) -> PreparedFeatures:
        from activegen.features import source_for

        source = source_for(features, pool.image_shape[2], cache_dir, seed=seed,
                            on_progress=progress, display="none")
        X = pool.to_float()
        if source.needs_fit:
            source.fit(X)
        return PreparedFeatures(
            inputs=source.transform(X).astype(np.float32),
            test_sets={name: (source.transform(X_test).astype(np.float32), y)
                       for name, (X_test, y) in tests.items()},
            info={"features": features.source})

    settings = features.self_supervised
    height, width, channels = pool.image_shape
    trains = features.source == "self-supervised"
    preparing = FeaturePreparation(
        features.source, settings.epochs if trains else 0, prepare,
        settings.estimated_seconds(len(pool), (channels, height, width)) if trains else None)
    return SessionPool(images=pool, inputs=pool.to_float(), test_sets=tests,
                       info={"features": "pixels (until the "
                             f"{features.source} features are ready)"},
                       preparing=preparing)
