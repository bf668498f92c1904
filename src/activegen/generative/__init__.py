"""Generators trained on the unlabeled pool (DCGAN, WGAN-GP), their cache and quality figures."""

from activegen.generative.cache import CachedGenerator, cache_key, data_fingerprint, load_or_train
from activegen.generative.dcgan import PRIORS, Discriminator, Generator
from activegen.generative.grid import save_image_grid
from activegen.generative.training import (
    GAN_KINDS,
    GeneratorSettings,
    TrainReport,
    train_generator,
)

__all__ = [
    "GAN_KINDS",
    "PRIORS",
    "CachedGenerator",
    "Discriminator",
    "Generator",
    "GeneratorSettings",
    "TrainReport",
    "cache_key",
    "data_fingerprint",
    "load_or_train",
    "save_image_grid",
    "train_generator",
]
