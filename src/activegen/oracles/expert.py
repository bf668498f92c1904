"""Oracles for synthesized queries when no person is at hand: an expert model, and noise.

The expert oracle stands in for the paper's human labelers: a strong classifier trained on
labeled data of the domain (by default an RBF SVM on the pool with its true labels; the pool
is never a test set, so no test image ever informs a label). Like the paper's labelers, who
skipped generated images they could not tell, it abstains (``-1``) when its confidence is
below ``threshold``. Whether an abstention costs budget is the loop's
``abstain_costs_budget`` setting.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from activegen._cache import ArtifactCache, content_key, data_fingerprint
from activegen._settings import BuildContext, Settings, resolve
from activegen.data.dataset import Dataset
from activegen.oracles.base import ABSTAIN, ORACLES, Oracle, OracleError
from activegen.strategies.base import Query

#: Bump when the expert's model or features change (invalidates cached experts).
EXPERT_VERSION = 1

_MEMORY: dict[str, Any] = {}


def _fit_expert(X: np.ndarray, y: np.ndarray, C: float) -> Any:
    from sklearn.svm import SVC

    # SVC's built-in Platt scaling; scikit-learn 1.9 deprecates the flag (to be removed in
    # 1.11) in favour of CalibratedClassifierCV, which calibrates slightly differently: kept
    # so that the documented runs reproduce exactly.
    model = SVC(kernel="rbf", C=C, gamma="scale", probability=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(X.reshape(len(X), -1), y)




def load_or_fit_expert(pool: Dataset, C: float, cache_dir: Path | None) -> Any:
    """The expert SVC for ``pool`` (fitted once, cached by the pool's pixels and labels in
    the one artifact cache, :mod:`activegen._cache`, and in memory)."""
    key = content_key({"data": data_fingerprint(pool.X), "labels": data_fingerprint(pool.y),
                       "C": C, "version": EXPERT_VERSION})
    if key in _MEMORY:
        return _MEMORY[key]
    X = pool.to_float()
    if cache_dir is None:
        model = _fit_expert(X, pool.y, C)
    else:
        def build(folder: Path) -> Any:
            fitted = _fit_expert(X, pool.y, C)
            (folder / "model.pkl").write_bytes(pickle.dumps(fitted))
            return fitted

        def load(entry: Path) -> Any:
            # Our own cache file, written above; its SHA-256 is checked before it is read.
            return pickle.loads((entry / "model.pkl").read_bytes())

        cache = ArtifactCache(Path(cache_dir), "experts", what="expert", main_file="model.pkl")
        model = cache.load_or_build(key, build, load)[0]
    _MEMORY[key] = model
    return model


class ExpertSettings(Settings):
    """The expert's model and when it abstains."""

    threshold: float = Field(0.8, ge=0, le=1, description=(
        "abstain when the expert's largest class probability is below it"))
    C: float = Field(10.0, gt=0, description="the RBF SVM's C")
    pool_queries: Literal["truth", "expert"] = Field("truth", description=(
        "how pool queries are answered: truth (the pool's labels, as a person labeling a real "
        "image) or expert (the same model as synthesized queries, abstentions included)"))


class ExpertOracle(Oracle):
    """An expert classifier of the domain that abstains when unsure: an RBF SVM trained on the
    pool's images and true labels (cached)."""

    name: ClassVar[str] = "expert"
    Settings = ExpertSettings

    def __init__(self, pool: Dataset, cache_dir: Path | None = None,
                 settings: ExpertSettings | None = None, **values: Any) -> None:
        self.settings = resolve(ExpertSettings, settings, values, "oracle 'expert'")
        self.pool = pool
        self.threshold = self.settings.threshold
        self.pool_queries = self.settings.pool_queries
        self.model = load_or_fit_expert(pool, self.settings.C, cache_dir)
        self._X_pool: np.ndarray | None = None

    def proba(self, X: np.ndarray) -> np.ndarray:
        """The expert's class probabilities ``[N, K]`` of images in ``[0, 1]``."""
        X = np.asarray(X, dtype=np.float32)
        expected = self.pool.X.shape[1:]
        if X.ndim != 4 or X.shape[2:] != expected[:2] or X.shape[1] != expected[2]:
            raise OracleError(f"the expert labels images of {expected} (H, W, C) as "
                              f"[N, C, H, W], got {X.shape}")
        if X.size and (X.min() < 0.0 or X.max() > 1.0):
            raise OracleError("the expert labels images in [0, 1] (the model scale); got "
                              f"values in [{X.min():.3g}, {X.max():.3g}]")
        proba = np.zeros((len(X), self.pool.n_classes))
        proba[:, self.model.classes_] = self.model.predict_proba(X.reshape(len(X), -1))
        return proba

    def label(self, query: Query) -> np.ndarray:
        if query.is_synthesized:
            assert query.samples is not None
            return self._label_images(query.samples)
        idx = np.asarray(query.indices, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.pool)):
            raise OracleError(f"query indices outside the pool of {len(self.pool)}")
        if self.pool_queries == "truth":
            return self.pool.y[idx].copy()
        if self._X_pool is None:
            self._X_pool = self.pool.to_float()
        return self._label_images(self._X_pool[idx])

    @classmethod
    def _build(cls, settings: Settings, context: BuildContext) -> Self:
        assert isinstance(settings, ExpertSettings)
        return cls(context.pool, context.cache_dir, settings)

    def _label_images(self, X: np.ndarray) -> np.ndarray:
        proba = self.proba(X)
        labels = proba.argmax(axis=1).astype(np.int64)
        labels[proba.max(axis=1) < self.threshold] = ABSTAIN
        return labels


class NoisySettings(Settings):
    """Which oracle to wrap, and how often its labels flip."""

    base: str = Field("expert", description="the wrapped oracle's registered name")
    base_params: dict[str, Any] = Field(default_factory=dict,
                                        description="the wrapped oracle's settings")
    flip_rate: float = Field(0.1, ge=0, le=1, description="probability of a flipped label")

    @model_validator(mode="after")
    def _valid_base(self) -> NoisySettings:
        if self.base == "noisy":
            raise ValueError("a noisy oracle cannot wrap another noisy oracle")
        ORACLES.validate(self.base, self.base_params)
        return self


class NoisyOracle(Oracle):
    """Wraps another oracle and flips each of its labels to a random other class with
    probability ``flip_rate`` (seeded; abstentions stay abstentions)."""

    name: ClassVar[str] = "noisy"
    Settings = NoisySettings

    def __init__(self, base: Oracle, n_classes: int, seed: int = 0,
                 flip_rate: float = 0.1) -> None:
        self.base = base
        self.n_classes = n_classes
        self.flip_rate = flip_rate
        self.rng = np.random.default_rng([seed, 0x7015E])

    @classmethod
    def _build(cls, settings: Settings, context: BuildContext) -> Self:
        assert isinstance(settings, NoisySettings)
        base = ORACLES.build(settings.base, settings.base_params, context)
        return cls(base, context.n_classes, context.seed, settings.flip_rate)

    def label(self, query: Query) -> np.ndarray:
        labels = np.asarray(self.base.label(query), dtype=np.int64).copy()
        flip = (self.rng.random(len(labels)) < self.flip_rate) & (labels != ABSTAIN)
        shift = self.rng.integers(1, self.n_classes, size=len(labels))
        labels[flip] = (labels[flip] + shift[flip]) % self.n_classes
        return labels
