"""Generative models: the DCGAN for query synthesis (cache, quality) and the VAE of
task-agnostic features (:mod:`activegen.generative.vae`)."""

from activegen.generative.cache import CachedGenerator, cache_key, data_fingerprint, load_or_train
from activegen.generative.dcgan import Discriminator, Generator
from activegen.generative.grid import save_image_grid
from activegen.generative.training import GeneratorSettings, TrainReport, train_generator

__all__ = [
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
