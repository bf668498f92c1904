"""VAE-augmented strategies (Godwin et al., SciPy 2022): the plain strategies composed with
the :class:`~activegen.strategies.feature_maps.VAEAugmented` feature map.

``vae-coreset`` and ``vae-medal`` are core-set and MedAL measuring distances in
``[T_f(x) ⌢ alpha·V(x)]``; ``vae-learning-loss`` is learning loss whose head also reads
``alpha·V(x)`` (concatenated to its block features before its last layer, in training and in
ranking). These classes only name the composition for configs (same keys as before: the
plain strategy's, then ``alpha`` and the ``vae_*`` settings) and prepare the feature map;
they add no behaviour. With ``alpha = 0`` each selects exactly what its plain counterpart
selects (tested). The feature map's docstring describes ``vae_kind = "cvae"``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from activegen.strategies.base import PrepareContext
from activegen.strategies.coreset import CoreSet, MedAL
from activegen.strategies.feature_maps import VAEAugmented, VAEKind
from activegen.strategies.learning_loss import LearningLoss


class VAELearningLoss(LearningLoss):
    """Learning loss whose head also reads alpha·VAE features (Godwin et al. 2022)."""

    name: ClassVar[str] = "vae-learning-loss"

    def __init__(self, subsample: int | None = 10_000, alpha: float = 1.0,
                 vae_latent_dim: int = 32, vae_epochs: int = 20, vae_width: int = 32,
                 vae_kind: Literal["vae"] = "vae", vae_weight_decay: float = 5e-3) -> None:
        if vae_kind == "cvae":
            raise ValueError("vae-learning-loss supports vae_kind = 'vae' only: the head "
                             "is trained before a round's CVAE could exist")
        super().__init__(subsample)
        self.head_features = VAEAugmented(alpha, vae_latent_dim, vae_epochs, vae_width,
                                          vae_kind, vae_weight_decay)

    def prepare(self, context: PrepareContext) -> None:
        assert self.head_features is not None
        self.head_features.prepare(context)


class VAECoreSet(CoreSet):
    """Core-set in ``[T_f(x) ⌢ alpha·V(x)]`` (Godwin et al. 2022, their core-set equation)."""

    name: ClassVar[str] = "vae-coreset"

    def __init__(self, subsample: int | None = None, device: str = "auto", alpha: float = 1.0,
                 vae_latent_dim: int = 32, vae_epochs: int = 20, vae_width: int = 32,
                 vae_kind: VAEKind = "vae", vae_weight_decay: float = 5e-3) -> None:
        super().__init__(subsample, device)
        self.with_features(VAEAugmented(alpha, vae_latent_dim, vae_epochs, vae_width, vae_kind,
                                        vae_weight_decay))

    def prepare(self, context: PrepareContext) -> None:
        self.feature_map.prepare(context)


class VAEMedAL(MedAL):
    """MedAL whose distances are measured in ``[T_f(x) ⌢ alpha·V(x)]``."""

    name: ClassVar[str] = "vae-medal"

    def __init__(self, top_m: int | None = None, prefilter_fraction: float = 0.1,
                 squared: bool = False, subsample: int | None = None, device: str = "auto",
                 alpha: float = 1.0, vae_latent_dim: int = 32, vae_epochs: int = 20,
                 vae_width: int = 32, vae_kind: VAEKind = "vae",
                 vae_weight_decay: float = 5e-3) -> None:
        super().__init__(top_m, prefilter_fraction, squared, subsample, device)
        self.with_features(VAEAugmented(alpha, vae_latent_dim, vae_epochs, vae_width, vae_kind,
                                        vae_weight_decay))

    def prepare(self, context: PrepareContext) -> None:
        self.feature_map.prepare(context)


__all__ = ["VAECoreSet", "VAELearningLoss", "VAEMedAL"]
