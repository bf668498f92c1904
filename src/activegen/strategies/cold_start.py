"""Cold-start selection: TypiClust (Hacohen et al. 2022) and ProbCover (Yehuda et al. 2022).

Both choose *typical*, well-spread points from features alone (no trained classifier), so
they serve as the initial labeled set (``[loop] initial_strategy``) as well as per round.

- TypiClust: k-means into ``|L| + B`` clusters; repeatedly take the cluster with the fewest
  labeled points (the largest among those) and label its most typical point, typicality being
  ``1 / mean distance to the min(20, size - 1) nearest neighbours`` within the cluster.
- ProbCover: greedy maximum coverage of δ-balls (each pick covers most still-uncovered
  points), δ the largest radius whose balls stay ``purity`` (0.95) pure under k-means
  pseudo-labels.

Features: the learner's embedding (per round), the examples as given (``input``, or its
synonym ``pixels``: feature rows, or images flattened), the pool-trained VAE's
posterior means (shared with the VAE-augmented strategies; trained once, cached),
``"backbone:<path>"``: the pooled features of a ResNet-18 whose torchvision ``state_dict`` the
user supplies (:class:`activegen.models.features.FeatureExtractor`, the same extractor as the
labeling app's ``--features backbone:PATH``; nothing is downloaded), or a source of the
feature layer (:mod:`activegen.features`): ``self-supervised`` (SimCLR trained on the pool's
images once, cached; its settings in the ``self_supervised`` table) or a local pretrained
backbone ``timm:…``, ``open_clip:…``, ``torchvision:…``, through
:class:`~activegen.strategies.feature_maps.SourceFeatures` as core-set's.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator
from sklearn.cluster import KMeans, MiniBatchKMeans

from activegen._settings import Settings
from activegen.errors import DataError
from activegen.features.settings import check_spec
from activegen.generative.vae import VAESettings
from activegen.models.capabilities import Embedding
from activegen.strategies.base import PrepareContext, Query, QueryState, Strategy, check_batch
from activegen.strategies.feature_maps import (
    LAYER_SOURCES,
    BackboneImageSize,
    SelfSupervisedTable,
    SourceFeatures,
    is_layer_source,
)

#: ``input`` and ``pixels`` are one source: the examples as given (``pixels`` reads better for
#: images, ``input`` for feature rows)
FeatureSource = Literal["embedding", "input", "pixels", "vae"] | str
FEATURE_SOURCES: tuple[str, ...] = ("embedding", "input", "pixels", "vae", "backbone:<path>",
                                    *LAYER_SOURCES)
#: Distance cells per chunk when ball neighbourhoods are built (bounds memory).
_CHUNK_CELLS = 1 << 22


def _features(features: np.ndarray) -> np.ndarray:
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"features must be a non-empty 2-D array [N, d], got {X.shape}")
    return X


def _sq_dist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.maximum(d, 0.0)


def typicality(features: np.ndarray, n_neighbors: int = 20) -> np.ndarray:
    """``1 / mean L2 distance to the min(n_neighbors, N - 1) nearest other points`` (a single
    point has typicality 1 by convention: nothing to compare)."""
    X = _features(features)
    k = min(n_neighbors, len(X) - 1)
    if k < 1:
        return np.ones(len(X))
    d = np.sqrt(_sq_dist(X, X))
    np.fill_diagonal(d, np.inf)
    nearest = np.partition(d, k - 1, axis=1)[:, :k]
    return 1.0 / np.maximum(nearest.mean(axis=1), 1e-12)


def kmeans_labels(features: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means cluster labels (MiniBatchKMeans beyond 50 clusters, as TypiClust's code)."""
    X = _features(features)
    n_clusters = min(n_clusters, len(X))
    cls = KMeans if n_clusters <= 50 else MiniBatchKMeans
    model = cls(n_clusters=n_clusters, random_state=seed, n_init=3)
    return np.asarray(model.fit_predict(X), dtype=np.int64)


def typiclust_select(
    features: np.ndarray,
    labeled: np.ndarray,
    k: int,
    rng: np.random.Generator,
    n_neighbors: int = 20,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """TypiClust: ``k`` unlabeled rows, one per least-covered (then largest) cluster.

    ``clusters`` (cluster label per row) defaults to k-means into ``|labeled| + k`` clusters.
    """
    X = _features(features)
    labeled = np.asarray(labeled, dtype=np.int64).reshape(-1)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if clusters is None:
        clusters = kmeans_labels(X, len(labeled) + k, int(rng.integers(2**31 - 1)))
    clusters = np.asarray(clusters, dtype=np.int64)
    n_clusters = int(clusters.max()) + 1
    sizes = np.bincount(clusters, minlength=n_clusters)
    covered = np.bincount(clusters[labeled], minlength=n_clusters) if len(labeled) \
        else np.zeros(n_clusters, dtype=np.int64)
    taken = np.zeros(len(X), dtype=bool)
    taken[labeled] = True
    picks: list[int] = []
    for _ in range(min(k, len(X) - int(taken.sum()))):
        free = np.bincount(clusters[~taken], minlength=n_clusters)
        # fewest labeled first, then the largest; random among exact ties
        order = np.lexsort((rng.random(n_clusters), -sizes, covered, free == 0))
        c = int(order[0])
        members = np.flatnonzero(clusters == c)
        typ = typicality(X[members], n_neighbors)
        typ[taken[members]] = -np.inf
        best = int(members[int(np.argmax(typ))])
        picks.append(best)
        taken[best] = True
        covered[c] += 1
    return np.asarray(picks, dtype=np.int64)


def ball_neighbors(features: np.ndarray, delta: float) -> list[np.ndarray]:
    """For each row, the rows within L2 distance ``delta`` (itself included), in chunks."""
    X = _features(features)
    step = max(1, _CHUNK_CELLS // len(X))
    out: list[np.ndarray] = []
    for start in range(0, len(X), step):
        d = _sq_dist(X[start:start + step], X)
        for row in d:
            out.append(np.flatnonzero(row <= delta * delta))
        for i in range(start, min(start + step, len(X))):  # rounding must not drop itself
            if i not in out[i]:
                out[i] = np.sort(np.append(out[i], i))
    return out


def ball_purity(features: np.ndarray, pseudo_labels: np.ndarray, delta: float) -> float:
    """Fraction of rows whose δ-ball holds one pseudo-label only."""
    pseudo = np.asarray(pseudo_labels)
    balls = ball_neighbors(features, delta)
    return float(np.mean([np.all(pseudo[b] == pseudo[i]) for i, b in enumerate(balls)]))


def choose_delta(features: np.ndarray, pseudo_labels: np.ndarray, purity: float = 0.95,
                 n_candidates: int = 20) -> float:
    """The largest of ``n_candidates`` radii (evenly spaced up to the median pairwise distance
    of a sample) whose balls are at least ``purity`` pure; the smallest if none is."""
    X = _features(features)
    sample = X[np.random.default_rng(0).permutation(len(X))[:500]]
    median = float(np.median(np.sqrt(_sq_dist(sample, sample))))
    candidates = np.linspace(median / n_candidates, median, n_candidates)
    best = float(candidates[0])
    for delta in candidates:  # purity shrinks as delta grows: stop at the first failure
        if ball_purity(X, pseudo_labels, float(delta)) < purity:
            break
        best = float(delta)
    return best


def coverage(features: np.ndarray, centres: np.ndarray, delta: float) -> int:
    """How many rows lie within ``delta`` of at least one of ``centres``."""
    X = _features(features)
    centres = np.asarray(centres, dtype=np.int64)
    if len(centres) == 0:
        return 0
    return int((_sq_dist(X, X[centres]) <= delta * delta).any(axis=1).sum())


def probcover_select(features: np.ndarray, labeled: np.ndarray, k: int, delta: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Greedy max coverage: ``k`` unlabeled rows, each covering the most still-uncovered rows
    (balls of radius ``delta``; the labeled rows' balls are covered from the start)."""
    X = _features(features)
    labeled = np.asarray(labeled, dtype=np.int64).reshape(-1)
    if k < 1 or delta < 0:
        raise ValueError(f"need k >= 1 and delta >= 0, got {k}, {delta}")
    balls = ball_neighbors(X, delta)
    covered = np.zeros(len(X), dtype=bool)
    for i in labeled:
        covered[balls[i]] = True
    taken = np.zeros(len(X), dtype=bool)
    taken[labeled] = True
    picks: list[int] = []
    for _ in range(min(k, len(X) - int(taken.sum()))):
        gain = np.array([0 if taken[i] else int((~covered[b]).sum())
                         for i, b in enumerate(balls)], dtype=np.float64)
        gain[taken] = -1.0
        top = np.flatnonzero(gain == gain.max())
        best = int(top[rng.integers(len(top))])
        picks.append(best)
        taken[best] = True
        covered[balls[best]] = True
    return np.asarray(picks, dtype=np.int64)


def probcover_delta(features: np.ndarray, n_clusters: int, purity: float, seed: int) -> float:
    """ProbCover's δ for ``features``: pseudo-labels from k-means into ``n_clusters``."""
    return choose_delta(features, kmeans_labels(features, n_clusters, seed), purity)


def select_cold_start(name: str, features: np.ndarray, labeled: np.ndarray, k: int,
                      rng: np.random.Generator, n_classes: int, purity: float = 0.95,
                      delta: float | None = None) -> np.ndarray:
    """``typiclust`` or ``probcover`` on given features (rows of ``features``)."""
    if name == "typiclust":
        return typiclust_select(features, labeled, k, rng)
    if name == "probcover":
        if delta is None:
            delta = probcover_delta(features, n_classes, purity, int(rng.integers(2**31 - 1)))
        return probcover_select(features, labeled, k, delta, rng)
    raise ValueError(f"unknown cold-start selection {name!r}; known: typiclust, probcover")


def input_features(X: np.ndarray) -> np.ndarray:
    """The examples as rows: feature rows ``[N, d]`` as they are, images ``[N, C·H·W]``."""
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


def check_backbone_spec(spec: str) -> Path:
    """The weights file of ``"backbone:<path>"``; a ConfigError naming the file when it is not
    there (before any work; its content is checked when it is loaded)."""
    from activegen.errors import ConfigError
    from activegen.models.features import parse_features_spec

    kind, path = parse_features_spec(spec)
    if kind != "backbone" or path is None:
        raise ConfigError(f"features {spec!r}: expected 'backbone:<path>'")
    if not path.is_file():
        raise ConfigError(f"features {spec!r}: no such weights file {path}")
    return path


def backbone_features(X: np.ndarray, spec: str) -> np.ndarray:
    """Standardised backbone features ``[N, 512]`` of float images ``[N, C, H, W]`` in
    ``[0, 1]`` (the pool's own pixels: they come from ``uint8`` values, so the round trip to
    the extractor's ``uint8 [N, H, W, C]`` input is exact)."""
    from activegen.models.features import FeatureExtractor

    check_backbone_spec(spec)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 4:
        raise ValueError(f"backbone features need images [N, C, H, W], got {X.shape}")
    images = np.clip(np.rint(X * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return FeatureExtractor(spec, channels=X.shape[1]).fit(images)


class ColdStartSettings(Settings):
    """Where TypiClust and ProbCover measure typicality and coverage."""

    features: FeatureSource = Field("embedding", description=(
        "embedding (the learner's, per round), input (the examples as given; pixels is the "
        "same), vae (the pool-trained VAE's means, cached), backbone:<path> (a local "
        "torchvision resnet18 state dict), self-supervised (SimCLR trained on the pool's "
        "images, cached), timm:NAME[@weights], open_clip:ARCH[:TAG][@weights] or "
        "torchvision:NAME[@weights] (a local pretrained backbone). All but embedding need no "
        "learner, so they can be a cold start"))
    vae: VAESettings = Field(default_factory=VAESettings, description=(
        "the VAE's settings (features = vae)"))
    self_supervised: SelfSupervisedTable
    image_size: BackboneImageSize = None

    @field_validator("features")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if str(value).startswith("backbone:"):
            check_backbone_spec(value)
        elif is_layer_source(value):
            check_spec(value)
        elif value not in FEATURE_SOURCES:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SOURCES)}, got "
                             f"{value!r}")
        return value


class _ColdStart(Strategy):
    """Per-round TypiClust/ProbCover on the chosen features of the whole pool."""

    Settings: ClassVar[type[Settings]] = ColdStartSettings
    settings: ColdStartSettings

    def __init__(self, settings: Any = None, **values: Any) -> None:
        super().__init__(settings, **values)
        self.features = self.settings.features
        self._pool_features: np.ndarray | None = None
        #: the feature layer's source (``self-supervised``, ``timm:``, …), None otherwise
        self.source_features = (SourceFeatures(self.features, self.settings.self_supervised,
                                               self.settings.image_size, owner=self.name)
                                if is_layer_source(self.features) else None)

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]
        """The learner's embedding when measured in it; nothing otherwise (a cold start)."""
        return (Embedding,) if self.features == "embedding" else ()

    def prepare(self, context: PrepareContext) -> None:
        if self.features == "vae":
            self._pool_features = vae_pool_features(context, self.settings.vae)
        elif self.features.startswith("backbone:"):
            self._pool_features = backbone_features(context.pool.to_float(), self.features)
        elif self.source_features is not None:
            self.source_features.prepare(context)
            self._pool_features = self.source_features.pool_features

    def provenance(self) -> list[dict[str, Any]]:
        """A feature-layer source's id, once prepared."""
        return [] if self.source_features is None else self.source_features.provenance()

    def pool_features(self, state: QueryState) -> np.ndarray:
        if self.features == "embedding":
            learner = state.learner
            if not isinstance(learner, Embedding):
                raise TypeError(f"{self.name}: features = 'embedding' needs a fitted learner "
                                "(a cold start has none: use input, vae, backbone:<path>, "
                                "self-supervised or a pretrained backbone)")
            return np.asarray(learner.embed(state.X_pool))
        if self.features in ("input", "pixels"):
            return input_features(state.X_pool)
        if self._pool_features is None:
            raise RuntimeError(f"{self.name}: features = {self.features!r} needs prepare() "
                               f"first")
        if len(self._pool_features) != len(state.X_pool):
            raise DataError(f"{self.name}: features = {self.features!r} were prepared on a pool "
                            f"of {len(self._pool_features)}, but the query's pool holds "
                            f"{len(state.X_pool)}")
        return self._pool_features

    @abstractmethod
    def select(self, feats: np.ndarray, state: QueryState, k: int) -> np.ndarray:
        """The ``k`` pool indices to label, chosen on the pool's features ``feats``."""

    def query(self, state: QueryState, k: int) -> Query:
        check_batch(state, k)
        feats = self.pool_features(state)
        # Abstained points (queried, unlabeled) are treated as labeled: never asked again.
        return Query.from_pool(self.select(feats, state, k))


class TypiClust(_ColdStart):
    """TypiClust: the most typical point of each least-covered k-means cluster."""

    name: ClassVar[str] = "typiclust"

    def select(self, feats: np.ndarray, state: QueryState, k: int) -> np.ndarray:
        return typiclust_select(feats, np.flatnonzero(state.queried), k, state.rng)


class ProbCoverSettings(ColdStartSettings):
    """ProbCover's ball radius."""

    purity: float = Field(0.95, gt=0, le=1, description=(
        "delta is the largest radius whose balls stay this pure under k-means pseudo-labels"))
    delta: float | None = Field(None, ge=0, description="a fixed radius instead")


class ProbCover(_ColdStart):
    """ProbCover: greedy coverage of δ-balls, δ from k-means pseudo-label purity."""

    name: ClassVar[str] = "probcover"
    Settings = ProbCoverSettings
    settings: ProbCoverSettings

    def select(self, feats: np.ndarray, state: QueryState, k: int) -> np.ndarray:
        return select_cold_start("probcover", feats, np.flatnonzero(state.queried), k,
                                 state.rng, state.n_classes, self.settings.purity,
                                 self.settings.delta)


def vae_pool_features(context: PrepareContext, settings: VAESettings) -> np.ndarray:
    """Posterior means of the pool under the pool-trained VAE (cached like the VAE
    strategies')."""
    from activegen.generative.vae import encode, load_or_train_vae

    X = context.pool.to_float()
    model = load_or_train_vae(X, context.cache_dir, settings, seed=context.artifact_seed,
                              device=context.device)
    return encode(model, X)
