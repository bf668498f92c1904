"""Feature maps: the space a feature-space strategy measures distances in.

A feature-space strategy (core-set, MedAL) or the learning-loss head is composed with one
feature map instead of being subclassed per feature space:

- :class:`TaskFeatures`: the learner's embedding ``T_f(x)`` (the plain strategies);
- :class:`InputFeatures`: the examples as given (no learner);
- :class:`SourceFeatures`: the vectors of a source of the feature layer
  (:mod:`activegen.features`: ``self-supervised`` SimCLR, ``timm:``/``open_clip:``/
  ``torchvision:`` pretrained backbones), fitted once on the pool's images in ``prepare`` (a
  trained encoder is cached); no learner either, so a strategy measuring in them is a cold
  start. TypiClust and ProbCover use it too (one code path);
- :class:`VAEAugmented`: ``[T_f(x) ⌢ alpha·V(x)]`` with ``V(x)`` the posterior means of a VAE
  trained once on the whole pool (cached; one per experiment, from the shared
  ``artifact_seed``), as in Godwin et al. (SciPy 2022). With ``alpha = 0`` every distance is
  the plain one, so each strategy selects exactly what its plain counterpart selects (tested).

``vae_kind = "cvae"`` is the paper's proposed future work, a class-conditional VAE. A CVAE
needs labels, which change every round, so it is retrained every round on the whole pool,
conditioned on the one-hot *true* label of each labeled point (``QueryState.labels``) and on
the current learner's class probabilities for the unlabeled ones; features of any image are
encoded with the learner's class probabilities as the condition, so labeled and unlabeled
points are treated alike. It costs one VAE training per round (set ``vae_epochs``
accordingly).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from activegen._settings import Settings
from activegen.errors import ConfigError, DataError
from activegen.features import source_for
from activegen.features.settings import FeaturesSettings, SelfSupervisedSettings
from activegen.generative.vae import ConvVAE, VAESettings, encode, load_or_train_vae, train_vae
from activegen.models.capabilities import Embedding
from activegen.strategies.base import PrepareContext, QueryState

VAEKind = Literal["vae", "cvae"]


class TaskFeatures:
    """``T_f(x)``: the fitted learner's embedding (needs an ``Embedding`` learner)."""

    #: the learner capabilities this map reads
    requires: tuple[type, ...] = (Embedding,)

    def prepare(self, context: PrepareContext) -> None:
        """Nothing to build: the learner changes every round."""

    def __call__(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        learner = state.learner
        if not isinstance(learner, Embedding):
            raise TypeError("task features need a fitted learner with embed() (a cold start "
                            "has none: measure in features = 'input' instead)")
        return np.asarray(learner.embed(X))

    def pool(self, state: QueryState, indices: np.ndarray) -> np.ndarray:
        """The features of the pool points ``indices`` (a map that knows the pool's vectors
        reads them; the others map the examples)."""
        return self(state, state.X_pool[indices])

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        """No per-example features for the learner's fit."""
        return None


class InputFeatures(TaskFeatures):
    """The examples as given (feature rows, or images flattened): no learner needed (a cold
    start's space)."""

    requires: tuple[type, ...] = ()

    def __call__(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


#: the feature layer's sources a distance strategy may measure in, besides its own
LAYER_SOURCES: tuple[str, ...] = ("self-supervised", "timm:NAME[@weights]",
                                  "open_clip:ARCH[:TAG][@weights]", "torchvision:NAME[@weights]")


def is_layer_source(spec: str) -> bool:
    """Whether ``spec`` names a source of the feature layer that :class:`SourceFeatures`
    measures in (``self-supervised`` or a pretrained backbone's ``library:...``)."""
    from activegen.features.pretrained import LIBRARIES

    return spec == "self-supervised" or str(spec).partition(":")[0] in LIBRARIES


#: a strategy's ``self_supervised`` table: the encoder of ``features = "self-supervised"``
SelfSupervisedTable = Annotated[SelfSupervisedSettings, Field(
    default_factory=SelfSupervisedSettings, description=(
        "the SimCLR encoder of features = self-supervised (trained once per pool and "
        "settings, cached: the same settings as the experiment's [features.self_supervised] "
        "read its encoder)"))]
#: a strategy's ``image_size``: the input size of a pretrained backbone it measures in
BackboneImageSize = Annotated[int | None, Field(ge=8, description=(
    "features = timm:, open_clip: or torchvision:: the input size the backbone is fed "
    "(default: its own)"))]


class SourceFeatures(TaskFeatures):
    """The vectors ``[N, d]`` of a feature-layer source (``self-supervised``, ``timm:``,
    ``open_clip:``, ``torchvision:``), fitted once on the pool's images in :meth:`prepare`.

    Built through :func:`activegen.features.source_for`,
    the one path of the feature layer: a self-supervised encoder is trained once per pool and
    settings and kept in the artifact cache under ``context.cache_dir``, so every strategy
    (and the experiment's ``[features]``) with the same settings reads the same encoder. The
    pool's vectors are computed once; pool points are read by index, so the strategy works
    whatever the run's examples are (images, or an experiment's ``[features]`` rows: the
    pool's images come from ``context.pool``). Reads no learner: a cold start's space.

    Args:
        spec: the source (see :func:`is_layer_source`).
        self_supervised: the encoder's settings (``self-supervised``).
        image_size: a pretrained backbone's input size (None: its own).
        owner: the strategy's name, for messages.
    """

    requires: tuple[type, ...] = ()

    def __init__(self, spec: str, self_supervised: SelfSupervisedSettings | None = None,
                 image_size: int | None = None, owner: str = "strategy") -> None:
        self.spec = spec
        self.owner = owner
        self.settings = FeaturesSettings(
            source=spec, image_size=image_size,
            self_supervised=self_supervised or SelfSupervisedSettings())
        self.source: Any = None
        self._pool_features: np.ndarray | None = None

    @property
    def pool_features(self) -> np.ndarray:
        """The pool's vectors ``float32 [N, d]`` (after :meth:`prepare`)."""
        if self._pool_features is None:
            raise RuntimeError(f"{self.owner}: features = {self.spec!r} needs prepare() first "
                               "(it fits the source on the pool's images)")
        return self._pool_features

    def prepare(self, context: PrepareContext) -> None:
        """Fit the source on the pool's images (a trained encoder is loaded from the cache)
        and keep the pool's vectors.

        Raises:
            ConfigError: the pool is feature rows, not images: a source of images (SimCLR
                training, a pretrained backbone) has nothing to learn from.
        """
        X = np.asarray(context.pool.to_float())
        if X.ndim != 4:
            what = ("trains a SimCLR encoder on" if self.spec == "self-supervised"
                    else "feeds a pretrained backbone")
            raise ConfigError(
                f"strategy {self.owner!r}: features = {self.spec!r} {what} the pool's images, "
                f"but the pool is feature rows {list(X.shape)}: measure in features = "
                "'input' (or the learner's 'embedding') instead")
        source = source_for(self.settings, X.shape[1], context.cache_dir,
                            seed=context.artifact_seed,
                            display="auto" if context.show_progress else "lines")
        source.fit(X)
        self.source = source
        self._pool_features = source.transform(X)

    def provenance(self) -> list[dict[str, Any]]:
        """The source, by its id (its settings and, for a trained encoder, its weights'
        digest), once prepared."""
        return [] if self.source is None else [{"kind": "features", "key": self.source.id}]

    def pool(self, state: QueryState, indices: np.ndarray) -> np.ndarray:
        feats = self.pool_features
        if len(feats) != len(state.X_pool):
            raise DataError(f"{self.owner}: features = {self.spec!r} were prepared on a pool of "
                            f"{len(feats)}, but the query's pool holds {len(state.X_pool)}")
        return feats[np.asarray(indices, dtype=np.int64)]

    def __call__(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        """Vectors of examples outside the pool (synthesized images), through the source."""
        X = np.asarray(X, dtype=np.float32)
        if self.source is None:
            raise RuntimeError(f"{self.owner}: features = {self.spec!r} needs prepare() first")
        if X.ndim != 4:
            raise DataError(f"{self.owner}: features = {self.spec!r} maps images; examples "
                            f"outside the pool came as rows {list(X.shape)}")
        return self.source.transform(X)


class VAEAugmentedSettings(Settings):
    """The VAE-augmented feature space ``[T_f(x) ⌢ alpha·V(x)]`` (written once for every
    strategy that measures in it)."""

    alpha: float = Field(1.0, ge=0, description=(
        "weight of the VAE features (0: the plain task features' distances)"))
    vae_kind: VAEKind = Field("vae", description=(
        "vae: one cached VAE of the pool; cvae: class-conditional, retrained each round on "
        "the labels of the labeled points"))
    vae: VAESettings = Field(default_factory=VAESettings, description="the VAE's settings")


class VAEAugmented(TaskFeatures):
    """``[T_f(x) ⌢ alpha·V(x)]``: task features then scaled VAE posterior means."""

    def __init__(self, settings: VAEAugmentedSettings) -> None:
        self.alpha = float(settings.alpha)
        self.vae_kind = settings.vae_kind
        self.vae_settings = settings.vae
        self._vae: ConvVAE | None = None
        self._pool_X: np.ndarray | None = None
        self._pool_features: np.ndarray | None = None
        self._device = "cpu"
        self._seed = 0
        self._cvae_round: tuple[int, int, ConvVAE] | None = None

    @property
    def vae(self) -> ConvVAE | None:
        """The unconditional VAE after :meth:`prepare` (None before, or for a CVAE)."""
        return self._vae

    def prepare(self, context: PrepareContext) -> None:
        """Train (or load from the cache) the unconditional VAE of the pool."""
        self._device, self._seed = context.device, context.artifact_seed
        if self.vae_kind == "vae":
            X = context.pool.to_float()
            self._vae = load_or_train_vae(X, context.cache_dir, self.vae_settings,
                                          seed=context.artifact_seed, device=context.device)
            self._pool_X = X
            self._pool_features = encode(self._vae, X)

    def _cvae_for(self, state: QueryState) -> ConvVAE:
        key = (state.round, id(state.learner))
        if self._cvae_round is not None and self._cvae_round[:2] == key:
            return self._cvae_round[2]
        labeled_pool = np.asarray(state.labeled_indices, dtype=np.int64)
        if state.labels is None or len(state.labels) != len(labeled_pool):
            got = "none" if state.labels is None else f"{len(state.labels)}"
            raise DataError(
                f"vae_kind = 'cvae' conditions on the labels of the labeled points: the "
                f"QueryState must carry labels aligned with its {len(labeled_pool)} "
                f"labeled_indices (got {got})")
        labels = np.asarray(state.labels, dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= state.n_classes):
            raise DataError(f"QueryState.labels must lie in 0..{state.n_classes - 1}")
        conditions = state.learner.predict_proba(state.X_pool).astype(np.float32)
        conditions[labeled_pool] = np.eye(state.n_classes, dtype=np.float32)[labels]
        model, _ = train_vae(state.X_pool, self.vae_settings, seed=self._seed + 1000 * state.round,
                             device=self._device, conditions=conditions)
        self._cvae_round = (*key, model)
        return model

    def vae_part(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        """``alpha · V(x)`` for images ``X``."""
        if self.vae_kind == "cvae":
            model = self._cvae_for(state)
            conditions = state.learner.predict_proba(X).astype(np.float32)
            return self.alpha * encode(model, X, conditions)
        if self._vae is None:
            raise RuntimeError("prepare() must run before the VAE features are used")
        if self._pool_features is not None and (X is self._pool_X or X is state.X_pool):
            return self.alpha * self._pool_features  # the pool never changes: encoded once
        return self.alpha * encode(self._vae, X)

    def __call__(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        """The paper's feature space ``[T_f(x) ⌢ alpha·V(x)]``."""
        return np.concatenate([np.asarray(super().__call__(state, X), dtype=np.float32),
                               self.vae_part(state, X).astype(np.float32)], axis=1)

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        """``alpha · V(x)`` of the training images, for a loss head trained on them."""
        if self._vae is None:
            raise RuntimeError("prepare() must run before the learner is fitted")
        return self.alpha * encode(self._vae, X_train)


FeatureMap = TaskFeatures
"""The feature-map interface (``prepare``, ``__call__(state, X)``, ``fit_features``)."""

__all__ = ["LAYER_SOURCES", "BackboneImageSize", "FeatureMap", "InputFeatures",
           "SelfSupervisedTable", "SourceFeatures", "TaskFeatures", "VAEAugmented",
           "VAEAugmentedSettings", "VAEKind", "is_layer_source"]
