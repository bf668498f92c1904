"""The contract every feature source keeps: learn from the unlabeled pool once, then map
images to feature vectors in bounded memory, and say exactly what it is (for cache keys and
model files).

Images come in the one model scale of activegen, ``float32 [N, C, H, W]`` in ``[0, 1]``
(:meth:`activegen.data.Dataset.to_float`); features go out as ``float32 [N, d]``, unstandardised
(a learner fits its own standardisation on the pool, and an exported model carries it).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from activegen._cache import content_key
from activegen.errors import DataError

#: Images per forward pass in :meth:`FeatureSource.transform` unless a source says otherwise.
TRANSFORM_BATCH = 512


def check_images(X: np.ndarray, what: str = "feature source") -> np.ndarray:
    """``X`` as contiguous ``float32 [N, C, H, W]``; a :class:`DataError` naming the shape
    otherwise (uint8 ``[N, H, W, C]`` images are the usual mistake: say so)."""
    X = np.asarray(X)
    if X.ndim != 4:
        raise DataError(f"{what}: images must be float32 [N, C, H, W] in [0, 1], got shape "
                        f"{X.shape}")
    if X.dtype == np.uint8:
        raise DataError(f"{what}: got uint8 images; pass Dataset.to_float() (float32 "
                        "[N, C, H, W] in [0, 1])")
    return np.ascontiguousarray(X, dtype=np.float32)


class NotFittedFeaturesError(DataError):
    """A source that learns from the pool was asked for features before :meth:`fit`."""


class FeatureSource(ABC):
    """Images → feature vectors.

    Subclasses set :attr:`kind`, implement :meth:`_features` (one batch) and :attr:`dim`, and
    override :meth:`fit` when they learn from the pool. ``fit`` is called once per pool; it is
    cheap to call again with the same pool (trained artefacts are cached by content).
    """

    kind: ClassVar[str] = "source"
    #: whether :meth:`fit` must run before :meth:`transform`
    needs_fit: ClassVar[bool] = False

    def __init__(self, batch_size: int = TRANSFORM_BATCH) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.fitted = not self.needs_fit
        self.image_shape: tuple[int, int, int] | None = None

    def fit(self, X_pool: np.ndarray) -> None:
        """Learn what the source needs from the unlabeled pool ``float32 [N, C, H, W]``."""
        X_pool = check_images(X_pool, self.kind)
        if len(X_pool) == 0:
            raise DataError(f"{self.kind}: the pool is empty")
        self.image_shape = tuple(X_pool.shape[1:])  # type: ignore[assignment]
        self._fit(X_pool)
        self.fitted = True

    def _fit(self, X_pool: np.ndarray) -> None:
        """What :meth:`fit` learns (nothing by default)."""
        return None

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features ``float32 [N, dim]`` of ``X``, computed :attr:`batch_size` images at a time
        so that memory stays bounded whatever ``N``."""
        X = check_images(X, self.kind)
        if not self.fitted:
            raise NotFittedFeaturesError(f"{self.kind}: call fit(pool) before transform")
        if self.image_shape is None:  # a source that learns nothing takes the first shape
            self.image_shape = tuple(X.shape[1:])  # type: ignore[assignment]
        elif tuple(X.shape[1:]) != self.image_shape:
            raise DataError(f"{self.kind}: fitted on images {self.image_shape} [C, H, W], got "
                            f"{tuple(X.shape[1:])}")
        out = np.empty((len(X), self.dim), dtype=np.float32)
        for start in range(0, len(X), self.batch_size):
            out[start:start + self.batch_size] = self._features(X[start:start + self.batch_size])
        return out

    @abstractmethod
    def _features(self, X: np.ndarray) -> np.ndarray:
        """Features of one batch (at most :attr:`batch_size` images)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """The feature dimension ``d`` (known after :meth:`fit` for sources that learn)."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-able description of everything that decides the features (settings, the
        weights' SHA-256): what a cache key or a model file records."""

    @property
    def id(self) -> str:
        """A short stable name of exactly these features: ``<kind>:<key of settings()>``."""
        return f"{self.kind}:{content_key(self.settings())}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({json.dumps(self.settings(), sort_keys=True)[:200]})"
