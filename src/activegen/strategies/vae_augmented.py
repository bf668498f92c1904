"""VAE-augmented strategies (Godwin et al., SciPy 2022): the plain strategies composed with
the :class:`~activegen.strategies.feature_maps.VAEAugmented` feature map.

``vae-coreset`` and ``vae-medal`` are core-set and MedAL measuring distances in
``[T_f(x) ⌢ alpha·V(x)]``; ``vae-learning-loss`` is learning loss whose head also reads
``alpha·V(x)`` (concatenated to its block features before its last layer, in training and in
ranking). These classes only name the composition for configs (the plain strategy's keys,
then ``alpha``, ``vae_kind`` and the VAE's own table ``vae``; the plain strategy prepares the
feature map); they add no behaviour. With ``alpha = 0`` each selects exactly what its plain
counterpart selects (tested). The feature map's docstring describes ``vae_kind = "cvae"``.
"""

from __future__ import annotations

from typing import ClassVar

from activegen.strategies.base import PrepareContext
from activegen.strategies.coreset import CoreSet, MedAL, MedALOptions
from activegen.strategies.feature_maps import VAEAugmented, VAEAugmentedSettings
from activegen.strategies.learning_loss import LearningLoss, LearningLossSettings
from activegen.strategies.subsample import SubsampleSettings


class VAELearningLossSettings(LearningLossSettings, VAEAugmentedSettings):
    """Learning loss's settings and the VAE features' (``vae_kind = "vae"`` only)."""


class VAELearningLoss(LearningLoss):
    """Learning loss whose head also reads alpha·VAE features (Godwin et al. 2022)."""

    name: ClassVar[str] = "vae-learning-loss"
    needs_images: ClassVar[bool] = True
    Settings = VAELearningLossSettings
    settings: VAELearningLossSettings

    def __init__(self, settings: object = None, **values: object) -> None:
        super().__init__(settings, **values)
        if self.settings.vae_kind == "cvae":
            raise ValueError("vae-learning-loss supports vae_kind = 'vae' only: the head "
                             "is trained before a round's CVAE could exist")
        self.head_features = VAEAugmented(self.settings)

    def prepare(self, context: PrepareContext) -> None:
        assert self.head_features is not None
        self.head_features.prepare(context)


class VAECoreSetSettings(SubsampleSettings, VAEAugmentedSettings):
    """Core-set's settings and the VAE features'."""


class VAECoreSet(CoreSet):
    """Core-set in ``[T_f(x) ⌢ alpha·V(x)]`` (Godwin et al. 2022, their core-set equation)."""

    name: ClassVar[str] = "vae-coreset"
    needs_images: ClassVar[bool] = True
    Settings = VAECoreSetSettings
    settings: VAECoreSetSettings

    def build_feature_map(self) -> VAEAugmented:
        return VAEAugmented(self.settings)


class VAEMedALSettings(MedALOptions, VAEAugmentedSettings):
    """MedAL's settings and the VAE features'."""


class VAEMedAL(MedAL):
    """MedAL whose distances are measured in ``[T_f(x) ⌢ alpha·V(x)]``."""

    name: ClassVar[str] = "vae-medal"
    needs_images: ClassVar[bool] = True
    Settings = VAEMedALSettings
    settings: VAEMedALSettings

    def build_feature_map(self) -> VAEAugmented:
        return VAEAugmented(self.settings)


__all__ = ["VAECoreSet", "VAELearningLoss", "VAEMedAL"]
