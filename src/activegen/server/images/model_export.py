"""Leaving an image-folder session with a model: the current linear model on the folder's
features as a no-pickle file (:mod:`activegen.models.export`), and its predictions for every
image nobody labeled."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from activegen.models.base import Learner
from activegen.models.capabilities import Linear, has_capability
from activegen.models.export import ExportedModel
from activegen.models.features import FeatureExtractor
from activegen.server.config import ImagesConfig
from activegen.server.core.errors import Conflict


class FolderModelExport:
    """The session's :class:`~activegen.server.core.pool.ModelExporter` for an image folder.

    Args:
        images: the ``[images]`` settings (classes, size, channels, features).
        extractor: the fitted feature extractor (its standardisation goes into the file).
        features: the pool's standardised features ``[N, d]``.
        files: each pool image's file.
    """

    def __init__(self, images: ImagesConfig, extractor: FeatureExtractor,
                 features: np.ndarray, files: Sequence[str]) -> None:
        self.images = images
        self.extractor = extractor
        self.features = features
        self.files = list(files)

    def exported(self, learner: Learner, audit: dict[str, Any] | None) -> ExportedModel:
        if not has_capability(learner, Linear):
            raise Conflict(f"learner {type(learner).__name__} is not a linear model "
                           "(no linear_weights); only linear learners export")
        coef, intercept = learner.linear_weights()
        assert self.extractor.mean is not None and self.extractor.scale is not None
        images, extractor = self.images, self.extractor
        encoder = extractor.encoder
        return ExportedModel(np.asarray(coef), np.asarray(intercept), extractor.mean,
                             extractor.scale, list(images.classes), images.size,
                             images.channels, extractor.spec, extractor.id, audit=audit,
                             vae_state=extractor.vae_state() or None,
                             encoder_state=extractor.encoder_state() or None,
                             encoder_settings=None if encoder is None
                             else encoder.config.model_dump(mode="json"))

    def model_file(self, learner: Learner, audit: dict[str, Any] | None) -> bytes:
        return self.exported(learner, audit).to_bytes()

    def predictions_csv(self, learner: Learner, answered: set[int]) -> str:
        """``path,label,confidence`` of every pool image not in ``answered``, least sure
        first."""
        model = self.exported(learner, None)
        rest = np.asarray([i for i in range(len(self.files)) if i not in answered], dtype=int)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "label", "confidence"])
        if len(rest):
            proba = model.proba_from_features(self.features[rest])
            best = proba.argmax(axis=1)
            conf = proba[np.arange(len(rest)), best]
            for k in np.argsort(conf, kind="stable"):
                writer.writerow([self.files[rest[k]], model.classes[best[k]], f"{conf[k]:.6f}"])
        return buffer.getvalue()
