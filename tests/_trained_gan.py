"""The generator and discriminator of the GAAL behaviour tests: trained once a session on the
5-vs-7 digits (60 epochs, into the session's artifact cache), enough for a discriminator that
tells digits from noise and a generator whose queries an expert can sometimes name.

Its weights depend on the machine's float kernels and thread count, so the tests that use it
assert relations measured to hold with a margin over several of its trainings (other seeds,
thread counts and ``ATEN_CPU_CAPABILITY`` kernels), never one training's figures."""

from __future__ import annotations

from pathlib import Path

from activegen.data import Dataset
from activegen.generative import Discriminator, Generator, GeneratorSettings, load_or_train

TRAINED = GeneratorSettings(epochs=60, width=16, latent_dim=8, batch_size=32)


def trained_gan(pool: Dataset, cache: Path) -> tuple[Generator, Discriminator]:
    """The generator trained on ``pool`` (seed 0) and its discriminator, both in eval mode."""
    cached = load_or_train(pool.to_float(), TRAINED, cache, seed=0)
    return cached.generator, cached.discriminator()
