"""Generators: shapes and scale, seeded training, and the cache's identity rules (the pool,
the settings and the seed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from activegen.data.registry import load_dataset
from activegen.generative import (
    Discriminator,
    Generator,
    GeneratorSettings,
    cache_key,
    load_or_train,
    train_generator,
)
from activegen.generative.quality import frechet_distance, sample_quality

TINY = GeneratorSettings(epochs=1, width=8, latent_dim=8, batch_size=32)


@pytest.fixture(scope="module")
def digits57() -> np.ndarray:
    return load_dataset("digits").select_classes([5, 7]).to_float()[:96]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_networks_are_sized_to_the_data(shape: tuple[int, int, int]) -> None:
    gen = Generator(shape, latent_dim=16, width=8).eval()
    z = gen.sample_latent(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 16)
    torch.testing.assert_close(z, torch.randn(5, 16, generator=torch.Generator().manual_seed(0)))
    images = gen(z)
    assert images.shape == (5, *shape)
    # one pixel scale: the generator's images are in [0, 1], like Dataset.to_float()
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert Discriminator(shape, width=8)(images * 2 - 1).shape == (5,)


def test_bad_shapes_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="square"):
        Generator((1, 28, 32))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        Generator((2, 8, 8))
    with pytest.raises(ValueError, match="epochs"):
        GeneratorSettings(epochs=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_generator(np.full((4, 1, 8, 8), 255.0, dtype=np.float32), TINY)


def test_training_is_seeded_and_writes_a_sample_grid(digits57, tmp_path) -> None:
    a, report = train_generator(digits57, TINY, seed=4, sample_path=tmp_path / "s.png")
    b, _ = train_generator(digits57, TINY, seed=4)
    other, _ = train_generator(digits57, TINY, seed=5)
    z = a.sample_latent(4, torch.Generator().manual_seed(1))
    assert torch.equal(a(z), b(z)) and not torch.equal(a(z), other(z))
    assert report.images_seen >= len(digits57) - 32 and report.images_per_second > 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cache_returns_the_same_generator_for_same_data_and_settings(digits57, tmp_path) -> None:
    first = load_or_train(digits57, TINY, tmp_path)
    assert not first.loaded_from_cache
    assert {p.name for p in first.path.iterdir()} == {"model.pt", "discriminator.pt",
                                                      "settings.json", "samples.png",
                                                      "manifest.json"}
    meta = json.loads((first.path / "settings.json").read_text())
    assert meta["key"] == first.key and meta["settings"]["epochs"] == 1
    # a second process finds it on disk (memory cache cleared)
    from activegen.generative import cache as cache_module

    cache_module._MEMORY.clear()
    again = load_or_train(digits57, TINY, tmp_path)
    assert again.loaded_from_cache and again.key == first.key
    z = first.generator.sample_latent(3, torch.Generator().manual_seed(2))
    assert torch.equal(first.generator(z), again.generator(z))


def test_cache_trains_a_new_generator_when_data_settings_or_seed_change(digits57,
                                                                         tmp_path) -> None:
    base = cache_key(digits57, TINY, 0)
    assert cache_key(digits57.copy(), TINY, 0) == base  # same bytes, same key
    assert cache_key(digits57, TINY, 1) != base
    other_settings = GeneratorSettings(epochs=2, width=8, latent_dim=8, batch_size=32)
    assert cache_key(digits57, other_settings) != base
    changed = digits57.copy()
    changed[0, 0, 0, 0] = 1.0 - changed[0, 0, 0, 0]
    assert cache_key(changed, TINY) != base
    a = load_or_train(digits57, TINY, tmp_path)
    b = load_or_train(digits57, other_settings, tmp_path)
    assert a.key != b.key and not b.loaded_from_cache and a.path != b.path
    c = load_or_train(digits57, TINY, tmp_path, seed=1)
    assert c.key != a.key and not c.loaded_from_cache and c.path != a.path


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, x + 1.0) == pytest.approx(4.0, rel=0.05)  # ‖Δμ‖² = 4
    with pytest.raises(ValueError, match="features"):
        frechet_distance(x, x[:, :3])


def test_sample_quality_reports_expert_confidence_and_floor(digits57) -> None:
    proba = lambda X: np.tile([0.9, 0.1], (len(X), 1))  # noqa: E731
    q = sample_quality(digits57, digits57[:40], proba, threshold=0.8, n_components=4)
    assert q.expert_usable_fraction == 1.0 and q.expert_mean_confidence == pytest.approx(0.9)
    assert q.frechet_real_halves >= 0 and q.n == 40
