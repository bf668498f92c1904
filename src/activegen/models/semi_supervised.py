"""Learners on frozen feature vectors that use the unlabeled pool: label spreading distilled
into a linear model, and the plain linear probe it is measured against.

Both read examples as feature vectors: ``[N, d]`` rows from any :mod:`activegen.features`
source, or images ``[N, C, H, W]`` read as their flattened pixels (the ``pixels`` reference).
The pool's features reach them once, before their fits, through :meth:`prepare` (the
``PoolPrepared`` capability).

- :class:`LinearProbe`: multinomial logistic regression on features standardised with the
  pool's statistics: the reference every semi-supervised learner must beat.
- :class:`LabelSpreadingLearner`: label spreading (Zhou et al. 2004; scikit-learn's
  ``LabelSpreading``, ``kernel="knn"``) over a k-nearest-neighbour graph of the labeled points
  and the pool, then a logistic regression fitted on every pool point with the label spreading
  gave it, weighted by its confidence (the labeled points with weight 1). Label spreading alone
  predicts only for points in its graph; the distilled model predicts for any point, is linear
  on the features, and so exports into activegen's ``.npz`` model file as it is
  (:meth:`LinearProbe.linear_model`).

Both models are ``w·x + b`` on the raw features (the standardisation folded in), so query
synthesis and the linear strategies see an ordinary linear learner.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from activegen._cache import content_key, data_fingerprint
from activegen._settings import Settings
from activegen.errors import ActivegenError, DataError
from activegen.models.capabilities import FitContext
from activegen.models.linear import _LinearLearner


@dataclass(frozen=True)
class LinearModel:
    """A linear model on standardised features, as an ``.npz`` model file holds it:
    margins ``((x - feature_mean) / feature_scale) @ coef.T + intercept``.

    ``coef`` is ``[K', d]`` with ``K' = 1`` for two classes (the margin of class 1), else
    ``K' = K``; classes the labels never showed have a zero row and a very low intercept.
    """

    coef: np.ndarray
    intercept: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Margins of raw features ``[N, d]``: ``[N]`` for two classes, else ``[N, K]``."""
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        margins = z @ self.coef.T + self.intercept
        return margins[:, 0] if self.coef.shape[0] == 1 else margins


def _flat_features(X: np.ndarray, what: str) -> np.ndarray:
    """``X`` as rows ``[N, d]``: feature vectors as they are, images as their pixels."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim < 2 or len(X) == 0:
        raise DataError(f"{what} takes examples [N, d] or images [N, C, H, W], got shape "
                        f"{X.shape}")
    return X.reshape(len(X), -1)


def _standardisation(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = F.mean(axis=0, dtype=np.float64)
    std = F.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 1e-6, std, 1.0)


class ProbeSettings(Settings):
    """The linear probe's logistic regression."""

    C: float = Field(1.0, gt=0, description=(
        "inverse L2 strength (1 beat 0.1 and 0.01 and matched 10 at 20 and 100 mnist10k labels "
        "on self-supervised features; research/features/)"))
    max_iter: int = Field(1000, ge=1, description="lbfgs iterations")


class LinearProbe(_LinearLearner):
    """Multinomial logistic regression on standardised frozen features (the reference every
    semi-supervised learner must beat).

    With :meth:`prepare`, the standardisation is the pool's; without, the labeled points'.
    ``seed`` is kept for the learner contract (the solver is deterministic).
    """

    name: ClassVar[str] = "linear-probe"
    Settings: ClassVar[type[Settings]] = ProbeSettings
    settings: ProbeSettings

    def __init__(self, n_classes: int, seed: int = 0, settings: Any = None,
                 **values: Any) -> None:
        super().__init__(n_classes, seed, settings, **values)
        self.pool_features: np.ndarray | None = None
        self.feature_mean: np.ndarray | None = None
        self.feature_scale: np.ndarray | None = None
        self._std_coef: np.ndarray | None = None
        self._std_intercept: np.ndarray | None = None

    def prepare(self, pool_images: np.ndarray, cache_dir: Path | None = None) -> None:
        """Take the pool's features ``[N, d]`` (or ``[N, d, 1, 1]``): their standardisation,
        and the points a semi-supervised learner spreads labels over. ``cache_dir`` is
        unused: the features are what a feature source cached."""
        pool = _flat_features(pool_images, f"{self.name}.prepare")
        if len(pool) == 0:
            raise DataError(f"{self.name}: the pool is empty")
        self.pool_features = pool
        self.feature_mean, self.feature_scale = _standardisation(pool)

    def _standardised(self, F: np.ndarray) -> np.ndarray:
        assert self.feature_mean is not None and self.feature_scale is not None
        return (F - self.feature_mean) / self.feature_scale

    def _check_dim(self, F: np.ndarray) -> None:
        if self.pool_features is not None and F.shape[1] != self.pool_features.shape[1]:
            raise DataError(f"{self.name}: features have {F.shape[1]} dimensions, the pool's "
                            f"{self.pool_features.shape[1]}")

    def _logistic(self, Z: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.settings.C, max_iter=self.settings.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Z, y, sample_weight=weight)
        return model.coef_, model.intercept_, model.classes_

    def _set_standardised(self, coef: np.ndarray, intercept: np.ndarray,
                          classes: np.ndarray) -> None:
        """Keep the standardised-space model and set the raw-feature hyperplanes from it."""
        assert self.feature_mean is not None and self.feature_scale is not None
        self._set_weights(coef, intercept, classes)  # completes absent classes, two-class case
        std_coef, std_b = self.coef_, self.intercept_
        self._std_coef, self._std_intercept = std_coef, std_b
        raw_coef = std_coef / self.feature_scale
        self._set_weights(raw_coef, std_b - raw_coef @ self.feature_mean,
                          np.arange(std_coef.shape[0] if std_coef.shape[0] > 1 else 2))

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        F = _flat_features(X, self.name)
        self._check_dim(F)
        if self.pool_features is None:
            self.feature_mean, self.feature_scale = _standardisation(F)
        self._set_standardised(*self._logistic(self._standardised(F), y))

    def linear_model(self) -> LinearModel:
        """The fitted model as arrays on standardised features (what an ``.npz`` holds)."""
        self._check_fitted()
        if self._std_coef is None:
            raise ActivegenError(f"{self.name}: only one class was labeled; nothing to export")
        assert self.feature_mean is not None and self.feature_scale is not None
        return LinearModel(self._std_coef.copy(), self._std_intercept.copy(),
                           self.feature_mean.astype(np.float32),
                           self.feature_scale.astype(np.float32))


#: the pools' spreading graphs (:meth:`LabelSpreadingLearner._pool_graph`), per pool and k
_GRAPHS: dict[str, Any] = {}


def _row_keys(F: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(F, dtype=np.float32)]


class SpreadingSettings(ProbeSettings):
    """Label spreading's graph and the distilled logistic regression (``C``, ``max_iter``)."""

    n_neighbors: int = Field(10, ge=1, description="neighbours per point in the graph")
    alpha: float = Field(0.9, gt=0, lt=1, description=(
        "how much of a point's label comes from its neighbours"))
    spread_iter: int = Field(1000, ge=1, description=(
        "spreading iterations (each reaches one more hop)"))
    tol: float = Field(1e-9, gt=0, description=(
        "stop when the label distributions change less than this; scikit-learn's 1e-3 stopped "
        "before the labels reached 60% of a long strip of points"))
    metric: Literal["cosine", "euclidean"] = Field("cosine", description=(
        "neighbours by angle (usual for contrastive features) or by distance"))
    standardise_graph: bool = Field(False, description=(
        "build the graph on pool-standardised features (off: on pixels, standardising lifts "
        "rarely-lit border pixels to the scale of strokes, and spreading lost 10 points)"))
    min_confidence: float = Field(0.0, ge=0, lt=1, description=(
        "pool points whose spread label has a lower share of their label mass are left out "
        "of the distillation"))


class LabelSpreadingLearner(LinearProbe):
    """Label spreading over the pool's kNN graph, distilled into a linear model.

    :meth:`prepare` must give the pool first. Labeled points that are also pool points (the
    usual case) are recognised by their exact feature bytes and enter the graph once.
    ``seed`` is kept for the learner contract (every step is deterministic).
    """

    name: ClassVar[str] = "label-spreading"
    Settings = SpreadingSettings
    settings: SpreadingSettings

    def __init__(self, n_classes: int, seed: int = 0, settings: Any = None,
                 **values: Any) -> None:
        super().__init__(n_classes, seed, settings, **values)
        #: the pool's spread labels and their confidence after a fit (pool order)
        self.pool_labels_: np.ndarray | None = None
        self.pool_confidence_: np.ndarray | None = None

    def _graph_space(self, F: np.ndarray) -> np.ndarray:
        Z = self._standardised(F) if self.settings.standardise_graph else F
        if self.settings.metric == "cosine":
            norms = np.linalg.norm(Z, axis=1, keepdims=True)
            return Z / np.where(norms > 0, norms, 1.0)
        return Z

    def spread(self, F_labeled: np.ndarray, y: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label distributions of the pool: ``(labels [P], confidence [P], unlabeled mask
        [P])`` for the pool points, in pool order (a labeled pool point keeps its label)."""
        if self.pool_features is None:
            raise ActivegenError(f"{self.name} needs prepare(pool features) before fit: the "
                                 "labels spread over the pool")
        pool = self.pool_features
        index = {key: i for i, key in enumerate(_row_keys(pool))}
        in_pool = np.array([index.get(key, -1) for key in _row_keys(F_labeled)])
        unlabeled = np.ones(len(pool), dtype=bool)
        unlabeled[in_pool[in_pool >= 0]] = False
        if len(in_pool) and (in_pool >= 0).all() and len(np.unique(in_pool)) == len(in_pool):
            return self._spread_on_the_pool_graph(in_pool, y, unlabeled)
        return self._spread_with_sklearn(F_labeled, y, in_pool, unlabeled)

    def _pool_graph(self) -> Any:
        """The pool's spreading graph, built once per pool and graph settings: scikit-learn's
        ``LabelSpreading`` rebuilds the kNN graph on every fit, and the pool's is the same
        every round (built here with the same pieces: ``kneighbors_graph``, the normalised
        Laplacian, negated, its diagonal zero)."""
        from scipy.sparse.csgraph import laplacian as csgraph_laplacian
        from sklearn.neighbors import NearestNeighbors

        assert self.pool_features is not None
        space = self._graph_space(self.pool_features)
        k = min(self.settings.n_neighbors, len(space) - 1)
        key = content_key({"pool": data_fingerprint(np.ascontiguousarray(space)), "k": k})
        if key not in _GRAPHS:
            nn = NearestNeighbors(n_neighbors=k).fit(space)
            affinity = nn.kneighbors_graph(nn._fit_X, k, mode="connectivity")
            graph = -csgraph_laplacian(affinity, normed=True)
            graph = graph.tocoo()
            graph.data[graph.row == graph.col] = 0.0
            _GRAPHS[key] = graph.tocsr()
        return _GRAPHS[key]

    def _spread_on_the_pool_graph(self, rows: np.ndarray, y: np.ndarray,
                                  unlabeled: np.ndarray
                                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label spreading (scikit-learn's update, clamped by ``alpha``) on the cached pool
        graph, every labeled point being a pool point."""
        graph = self._pool_graph()
        classes = np.unique(y)
        dist = np.zeros((graph.shape[0], len(classes)))
        dist[rows, np.searchsorted(classes, y)] = 1.0
        alpha = self.settings.alpha
        static = dist * (1 - alpha)
        previous = np.zeros_like(dist)
        for _ in range(self.settings.spread_iter):
            if np.abs(dist - previous).sum() < self.settings.tol:
                break
            previous = dist
            dist = alpha * (graph @ dist) + static
        mass = dist.sum(axis=1)
        normalised = dist / np.where(mass > 0, mass, 1)[:, None]
        confidence = np.where(mass > 0, normalised.max(axis=1), 0.0)
        labels = classes[normalised.argmax(axis=1)].astype(np.int64)
        labels[rows], confidence[rows] = y, 1.0
        return labels, confidence, unlabeled

    def _spread_with_sklearn(self, F_labeled: np.ndarray, y: np.ndarray, in_pool: np.ndarray,
                             unlabeled: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label spreading over the labeled points and the unlabeled pool, for labeled points
        the pool does not hold (synthesized ones): the graph differs, so it is built anew."""
        from sklearn.semi_supervised import LabelSpreading

        pool = self.pool_features
        assert pool is not None
        F_all = np.concatenate([F_labeled, pool[unlabeled]])
        target = np.concatenate([y, np.full(int(unlabeled.sum()), -1)])
        k = min(self.settings.n_neighbors, len(F_all) - 1)
        model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=self.settings.alpha,
                               max_iter=self.settings.spread_iter, tol=self.settings.tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "max_iter reached": the labels are still usable
            model.fit(self._graph_space(F_all), target)
        dist = model.label_distributions_
        labels = model.classes_[dist.argmax(axis=1)]
        mass = dist.sum(axis=1)
        confidence = np.where(mass > 0, dist.max(axis=1) / np.where(mass > 0, mass, 1), 0.0)
        pool_labels = np.empty(len(pool), dtype=np.int64)
        pool_conf = np.ones(len(pool))
        pool_labels[unlabeled] = labels[len(y):]
        pool_conf[unlabeled] = confidence[len(y):]
        labeled_rows = in_pool >= 0
        pool_labels[in_pool[labeled_rows]] = y[labeled_rows]
        return pool_labels, pool_conf, unlabeled

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        F = _flat_features(X, self.name)
        self._check_dim(F)
        pool_labels, pool_conf, unlabeled = self.spread(F, y)
        self.pool_labels_, self.pool_confidence_ = pool_labels, pool_conf
        keep = unlabeled & (pool_conf > self.settings.min_confidence)
        assert self.pool_features is not None
        Z = self._standardised(np.concatenate([F, self.pool_features[keep]]))
        target = np.concatenate([y, pool_labels[keep]])
        weight = np.concatenate([np.ones(len(y)), pool_conf[keep]])
        self._set_standardised(*self._logistic(Z, target, weight))
