"""``vae`` and ``backbone:<path>`` as feature sources: the extractors of
:mod:`activegen.models.features`, wrapped (not copied), so that every spec an image session
accepts today is reachable through :func:`activegen.features.make_source`.

Those extractors read ``uint8 [N, H, W, C]`` images; the sources read the model scale
``float32 [N, C, H, W]`` in ``[0, 1]`` and convert back exactly (``round(x·255)``) for images
that came from uint8 pixels, as every activegen dataset does. Their standardisation is not
applied here: a learner fits its own on the pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activegen.features._progress import ProgressCallback
from activegen.features.base import FeatureSource
from activegen.models.features import VAE_SETTINGS, FeatureExtractor


def to_uint8_images(X: np.ndarray) -> np.ndarray:
    """``float32 [N, C, H, W]`` in ``[0, 1]`` → ``uint8 [N, H, W, C]`` (exact for images that
    were ``uint8 / 255``)."""
    return np.rint(np.clip(X, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)


class ExtractorSource(FeatureSource):
    """A :class:`~activegen.models.features.FeatureExtractor` spec as a feature source.

    Args:
        spec: ``"vae"`` or ``"backbone:<path>"``.
        channels: the images' channel count (1 or 3).
        cache_dir: where the ``vae`` extractor caches its VAE.
        seed: seeds the VAE's training.
        batch_size: images per forward pass.
        on_progress, display: the VAE's training progress
            (:class:`~activegen.features._progress.EpochProgress`).
    """

    kind: ClassVar[str] = "extractor"

    def __init__(self, spec: str, channels: int, cache_dir: Path | None = None, seed: int = 0,
                 batch_size: int = 256, on_progress: ProgressCallback | None = None,
                 display: str = "auto") -> None:
        self.extractor = FeatureExtractor(spec, channels, batch_size=batch_size,
                                          cache_dir=cache_dir, seed=seed,
                                          on_progress=on_progress, display=display)
        self.needs_fit = self.extractor.kind == "vae"  # type: ignore[misc]
        super().__init__(batch_size)
        self.spec = spec

    def _fit(self, X_pool: np.ndarray) -> None:
        if self.extractor.kind == "vae":
            self.extractor.fit(to_uint8_images(X_pool))

    def _features(self, X: np.ndarray) -> np.ndarray:
        return self.extractor.raw(to_uint8_images(X))

    @property
    def dim(self) -> int:
        return VAE_SETTINGS.latent_dim if self.extractor.kind == "vae" else 512

    def settings(self) -> dict[str, Any]:
        return {"kind": self.extractor.kind, "spec": self.spec, "id": self.extractor.id}

    @property
    def id(self) -> str:
        return self.extractor.id  # what today's model files record
