"""VAE-augmented strategies (Godwin et al., SciPy 2022): task features ⌢ alpha·VAE features.

A VAE trained once on the whole pool (cached; one per experiment, from the shared
``artifact_seed``) gives task-agnostic features ``V(x)`` (the posterior means). Core-set and
MedAL measure distances in ``[T_f(x) ⌢ alpha·V(x)]``; learning loss concatenates
``alpha·V(x)`` to the loss head's concatenated block features before its last layer, during
training (through :meth:`Strategy.fit_features`) and ranking. With ``alpha = 0`` each
selects exactly what its plain counterpart selects (tested).

``vae_kind = "cvae"`` is the paper's proposed future work, a class-conditional VAE. A CVAE
needs labels, which change every round, so it is retrained every round on the whole pool,
conditioned on the one-hot label of each labeled point and on the current learner's class
probabilities for the unlabeled ones; features of any image are encoded with the learner's
class probabilities as the condition, so labeled and unlabeled points are treated alike.
It costs one VAE training per round (set ``vae_epochs`` accordingly).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from activegen.generative.vae import (
    ConvVAE,
    VAESettings,
    encode,
    load_or_train_vae,
    train_vae,
)
from activegen.strategies.base import PrepareContext, QueryState
from activegen.strategies.coreset import CoreSet, MedAL
from activegen.strategies.learning_loss import LearningLoss

VAEKind = Literal["vae", "cvae"]


class VAEFeatures:
    """The VAE part shared by the augmented strategies: settings, training, encoding."""

    def __init__(self, alpha: float = 1.0, vae_latent_dim: int = 32, vae_epochs: int = 20,
                 vae_width: int = 32, vae_kind: VAEKind = "vae",
                 vae_weight_decay: float = 5e-3) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if vae_kind not in ("vae", "cvae"):
            raise ValueError(f"vae_kind must be 'vae' or 'cvae', got {vae_kind!r}")
        self.alpha = float(alpha)
        self.vae_kind = vae_kind
        self.vae_settings = VAESettings(latent_dim=vae_latent_dim, width=vae_width,
                                        epochs=vae_epochs, weight_decay=vae_weight_decay)
        self._vae: ConvVAE | None = None
        self._pool_X: np.ndarray | None = None
        self._pool_features: np.ndarray | None = None
        self._device = "cpu"
        self._seed = 0
        self._cvae_round: tuple[int, int, ConvVAE] | None = None

    @property
    def vae(self) -> ConvVAE | None:
        """The unconditional VAE after :meth:`prepare_vae` (None before, or for a CVAE)."""
        return self._vae

    def prepare_vae(self, context: PrepareContext) -> None:
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
        conditions = state.learner.predict_proba(state.X_pool).astype(np.float32)
        labeled_pool = state.labeled_indices
        labels = state.learner.predict(state.X_pool[labeled_pool])
        # The labels themselves are not in the state; the learner was fitted on them, and
        # for labeled points its prediction is what it learned. Use one-hot of that.
        conditions[labeled_pool] = np.eye(state.n_classes, dtype=np.float32)[labels]
        settings = VAESettings(**{**self.vae_settings.__dict__, "n_conditions": state.n_classes})
        model, _ = train_vae(state.X_pool, settings, seed=self._seed + 1000 * state.round,
                             device=self._device, conditions=conditions)
        self._cvae_round = (*key, model)
        return model

    def vae_features(self, state: QueryState, X: np.ndarray) -> np.ndarray:
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

    def augmented(self, task: np.ndarray, state: QueryState, X: np.ndarray) -> np.ndarray:
        """The paper's feature space ``[T_f(x) ⌢ alpha·V(x)]`` for task features ``task``."""
        return np.concatenate([np.asarray(task, dtype=np.float32),
                               self.vae_features(state, X).astype(np.float32)], axis=1)

    def vae_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "vae_kind": self.vae_kind,
                "vae_latent_dim": self.vae_settings.latent_dim,
                "vae_epochs": self.vae_settings.epochs, "vae_width": self.vae_settings.width}


class VAELearningLoss(LearningLoss, VAEFeatures):
    """Learning loss whose head also reads alpha·VAE features (Godwin et al. 2022)."""

    name: ClassVar[str] = "vae-learning-loss"

    def __init__(self, subsample: int | None = 10_000, alpha: float = 1.0,
                 vae_latent_dim: int = 32, vae_epochs: int = 20, vae_width: int = 32,
                 vae_kind: VAEKind = "vae", vae_weight_decay: float = 5e-3) -> None:
        LearningLoss.__init__(self, subsample)
        VAEFeatures.__init__(self, alpha, vae_latent_dim, vae_epochs, vae_width, vae_kind,
                             vae_weight_decay)
        if vae_kind == "cvae":
            raise ValueError("vae-learning-loss supports vae_kind = 'vae' only: the head "
                             "is trained before a round's CVAE could exist")

    def prepare(self, context: PrepareContext) -> None:
        self.prepare_vae(context)

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        if self._vae is None:
            raise RuntimeError("prepare() must run before the learner is fitted")
        return self.alpha * encode(self._vae, X_train)

    def head_extra(self, state: QueryState, indices: np.ndarray) -> np.ndarray | None:
        return self.vae_features(state, state.X_pool)[indices]

    def params(self) -> dict[str, Any]:
        return {**super().params(), **self.vae_params()}


class VAECoreSet(CoreSet, VAEFeatures):
    """Core-set in ``[T_f(x) ⌢ alpha·V(x)]`` (Godwin et al. 2022, their core-set equation)."""

    name: ClassVar[str] = "vae-coreset"

    def __init__(self, subsample: int | None = None, device: str = "auto", alpha: float = 1.0,
                 vae_latent_dim: int = 32, vae_epochs: int = 20, vae_width: int = 32,
                 vae_kind: VAEKind = "vae", vae_weight_decay: float = 5e-3) -> None:
        CoreSet.__init__(self, subsample, device)
        VAEFeatures.__init__(self, alpha, vae_latent_dim, vae_epochs, vae_width, vae_kind,
                             vae_weight_decay)

    def prepare(self, context: PrepareContext) -> None:
        self.prepare_vae(context)

    def features(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        return self.augmented(super().features(state, X), state, X)

    def params(self) -> dict[str, Any]:
        return {**super().params(), **self.vae_params()}


class VAEMedAL(MedAL, VAEFeatures):
    """MedAL whose distances are measured in ``[T_f(x) ⌢ alpha·V(x)]``."""

    name: ClassVar[str] = "vae-medal"

    def __init__(self, top_m: int | None = None, prefilter_fraction: float = 0.1,
                 squared: bool = False, subsample: int | None = None, device: str = "auto",
                 alpha: float = 1.0, vae_latent_dim: int = 32, vae_epochs: int = 20,
                 vae_width: int = 32, vae_kind: VAEKind = "vae",
                 vae_weight_decay: float = 5e-3) -> None:
        MedAL.__init__(self, top_m, prefilter_fraction, squared, subsample, device)
        VAEFeatures.__init__(self, alpha, vae_latent_dim, vae_epochs, vae_width, vae_kind,
                             vae_weight_decay)

    def prepare(self, context: PrepareContext) -> None:
        self.prepare_vae(context)

    def features(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        return self.augmented(super().features(state, X), state, X)

    def params(self) -> dict[str, Any]:
        return {**super().params(), **self.vae_params()}


__all__ = ["VAECoreSet", "VAEFeatures", "VAELearningLoss", "VAEMedAL"]
