"""ADA (adaptive augmentation): the probability follows the discriminator's overfitting."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
import torch

import activegen.generative.training as training
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, cache_key, train_generator
from activegen.generative.ada import AdaptiveAugment
from activegen.generative.augment import diff_augment

TINY = GeneratorSettings(epochs=8, width=8, latent_dim=8, batch_size=32,
                         augment="translation,cutout", ada_target=0.6)


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return load_dataset("digits").select_classes([5, 7]).to_float()[:96]


def test_p_rises_while_the_discriminator_is_sure_of_reals_and_falls_back() -> None:
    ada = AdaptiveAugment(target=0.6, interval=4, images_to_one=2_000)
    confident = torch.full((32,), 5.0)  # sign(D(real)) = 1 > 0.6: overfitting
    for _ in range(40):
        ada.observe(confident)
    ps = [p for _, p in ada.history]
    assert ps[0] > 0 and all(b > a for a, b in pairwise(ps))
    assert ada.p == pytest.approx(10 * 128 / 2_000)
    unsure = torch.tensor([1.0, -1.0] * 16)  # r_t = 0 < 0.6
    for _ in range(400):
        ada.observe(unsure)
    assert ada.p == 0.0


def test_p_stays_zero_when_the_discriminator_does_not_overfit() -> None:
    ada = AdaptiveAugment(target=0.6)
    for _ in range(100):
        ada.observe(torch.randn(32, generator=torch.Generator().manual_seed(0)))
    assert ada.p == 0.0 and ada.history
    x = torch.rand(8, 1, 8, 8)
    assert ada.apply(x, ("translation",), torch.Generator()) is x  # nothing augmented


def test_apply_augments_each_image_with_probability_p() -> None:
    ada = AdaptiveAugment()
    ada.p = 0.5
    x = torch.zeros(2000, 1, 8, 8)  # cutout fills -1: an augmented image has a hole
    out = ada.apply(x, ("cutout",), torch.Generator().manual_seed(0))
    share = float((out.flatten(1).min(1).values < 0).float().mean())
    assert 0.45 < share < 0.55


class _StubDiscriminator(torch.nn.Module):
    """Logit ``value`` for every image: always confident (``value > 0``) or never."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x.flatten(1).mean(1) + self.value


@pytest.mark.parametrize("value,rises", [(8.0, True), (-8.0, False)])
def test_training_raises_p_only_for_an_overfitting_discriminator(pool, monkeypatch, value,
                                                                 rises) -> None:
    real_build = training.build_networks

    def build(shape, settings):  # type: ignore[no-untyped-def]
        gen, _ = real_build(shape, settings)
        return gen, _StubDiscriminator(value)

    calls: list[int] = []

    def spy(x, ops, gen):  # type: ignore[no-untyped-def]
        calls.append(len(x))
        return diff_augment(x, ops, gen)

    monkeypatch.setattr(training, "build_networks", build)
    monkeypatch.setattr(training, "diff_augment", spy)
    monkeypatch.setattr("activegen.generative.ada.diff_augment", spy)
    _, report = train_generator(pool, TINY)
    assert report.ada_p is not None
    if rises:
        assert report.ada_p > 0 and calls  # augmentation switched on
    else:
        assert report.ada_p == 0.0 and not calls  # never augmented


def test_ada_settings_are_checked_and_off_by_default_keeps_cache_keys(pool) -> None:
    assert GeneratorSettings().ada_target == 0.0
    plain = replace(TINY, ada_target=0.0)
    assert "ada_target" not in plain.to_dict()  # keys of entries trained before ADA stay
    assert cache_key(pool, plain) != cache_key(pool, TINY)
    with pytest.raises(ValueError, match="needs augment ops"):
        GeneratorSettings(ada_target=0.6)
    with pytest.raises(ValueError, match="dcgan"):
        GeneratorSettings(kind="wgan-gp", ada_target=0.6, augment="cutout")
    with pytest.raises(ValueError, match="ada_target"):
        GeneratorSettings(ada_target=1.5, augment="cutout")
    from activegen.strategies import STRATEGIES

    gaal = STRATEGIES.build("gaal", {"gan_augment": "cutout", "gan_ada_target": 0.6})
    assert gaal.gan_settings.ada_target == 0.6
