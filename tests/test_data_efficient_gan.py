"""Data-efficient GAN training: DiffAugment's reach, spectral norm, EMA, quality-based stopping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import activegen.generative.training as training
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, cache_key, train_generator
from activegen.generative.augment import cutout, diff_augment, parse_policy, translate

TINY = GeneratorSettings(epochs=2, width=8, latent_dim=8, batch_size=32)


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return load_dataset("digits").select_classes([5, 7]).to_float()[:96]


def test_augmentations_are_differentiable_and_keep_shape() -> None:
    x = torch.rand(6, 1, 8, 8, requires_grad=True) * 2 - 1
    g = torch.Generator().manual_seed(0)
    for op in (lambda t: translate(t, 0.125, g), lambda t: cutout(t, 0.5, g)):
        y = op(x)
        assert y.shape == x.shape
        grad, = torch.autograd.grad(y.sum(), x)
        assert grad.abs().sum() > 0
    # a translation moves pixels: the multiset of a row-shifted image matches up to fill
    img = torch.arange(64.0).view(1, 1, 8, 8)
    shifted = translate(img, 0.125, torch.Generator().manual_seed(1))
    kept = shifted[shifted != -1]
    assert set(kept.tolist()) <= set(img.flatten().tolist())
    hole = cutout(torch.zeros(1, 1, 8, 8), 0.5, torch.Generator().manual_seed(2))
    assert 0 < (hole == -1).sum() <= 16
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_policy("translation,rotate")


def test_augmentation_reaches_real_and_fake_in_d_step_and_fake_in_g_step(pool, monkeypatch
                                                                         ) -> None:
    calls: list[tuple[str, bool]] = []
    real_rows = {tuple(np.round(r, 5)) for r in (pool * 2 - 1).reshape(len(pool), -1)}

    def spy(x: torch.Tensor, ops, gen):  # type: ignore[no-untyped-def]
        rows = x.detach().reshape(len(x), -1).numpy()
        is_real = all(tuple(np.round(r, 5)) in real_rows for r in rows)
        calls.append(("real" if is_real else "fake", x.requires_grad))
        return diff_augment(x, ops, gen)

    monkeypatch.setattr(training, "diff_augment", spy)
    settings = replace(TINY, epochs=1, augment="translation,cutout")
    gen, _ = train_generator(pool, settings)
    steps = len(pool) // 32
    assert calls.count(("real", False)) == steps  # real batches, in D's step
    assert calls.count(("fake", False)) == steps  # detached fakes, in D's step
    assert calls.count(("fake", True)) == steps  # fakes carrying G's gradient, in G's step
    # What a learner or an oracle sees (G(z), samples) is never augmented.
    calls.clear()
    z = gen.sample_latent(4, torch.Generator().manual_seed(0))
    out = gen(z)
    gen.sample(4)
    assert calls == []
    assert torch.allclose(out, (gen.raw(z) + 1) / 2, atol=1e-6)
    # Without the setting the function is never called.
    train_generator(pool, TINY)
    assert calls == []


def test_defaults_keep_old_cache_keys_and_new_settings_change_them(pool) -> None:
    assert set(TINY.to_dict()) == {"kind", "latent_dim", "prior", "width", "epochs",
                                   "batch_size", "lr", "n_critic", "gp_weight", "seed"}
    keys = {cache_key(pool, s) for s in (TINY, replace(TINY, augment="cutout"),
                                         replace(TINY, spectral_norm=True),
                                         replace(TINY, ema=0.9), replace(TINY, eval_every=1))}
    assert len(keys) == 5


def test_spectral_norm_bounds_discriminator_layers(pool) -> None:
    settings = replace(TINY, spectral_norm=True, epochs=1)
    _, disc = training.build_networks((1, 8, 8), settings)
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms == []  # spectral norm replaces batch norm
    sn = [m for m in disc.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and hasattr(m, "parametrizations")]
    assert len(sn) == sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
                          for m in disc.modules())
    _, report = train_generator(pool, settings)
    assert np.isfinite(report.final_d_loss)


def test_ema_generator_differs_from_the_trained_one_and_is_seeded(pool) -> None:
    a, _ = train_generator(pool, replace(TINY, ema=0.9))
    b, _ = train_generator(pool, replace(TINY, ema=0.9))
    plain, _ = train_generator(pool, TINY)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pp) for pa, pp in
               zip(a.parameters(), plain.parameters(), strict=True))


@pytest.mark.parametrize("sequence", [[5.0, 3.0, 4.0, 6.0, 7.0, 8.0],
                                      [9.0, 8.0, 7.0, 6.0, 2.0, 1.0]])
def test_quality_based_stopping_keeps_the_best_checkpoint(pool, sequence) -> None:
    seen: list[dict[str, torch.Tensor]] = []

    def fake_quality(gen, epoch):  # type: ignore[no-untyped-def]
        seen.append({k: v.clone() for k, v in gen.state_dict().items()})
        return sequence[len(seen) - 1]

    settings = replace(TINY, epochs=6, eval_every=1)
    gen, report = train_generator(pool, settings, quality_fn=fake_quality)
    best = int(np.argmin(sequence))
    assert [e["frechet"] for e in report.evaluations] == sequence
    assert report.chosen_epoch == best + 1
    for k, v in gen.state_dict().items():
        assert torch.equal(v, seen[best][k]), k
    # the last checkpoint differs from the chosen one when the best came earlier
    if best != len(sequence) - 1:
        assert any(not torch.equal(seen[-1][k], seen[best][k]) for k in seen[best])


def test_patience_stops_training_early(pool) -> None:
    values = iter([3.0, 1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 7.0])
    settings = replace(TINY, epochs=8, eval_every=1, patience=2)
    _, report = train_generator(pool, settings, quality_fn=lambda g, e: next(values))
    assert [e["epoch"] for e in report.evaluations] == [1, 2, 3, 4]
    assert report.chosen_epoch == 2


def test_default_quality_is_frechet_on_held_out_pool_images(pool) -> None:
    settings = replace(TINY, epochs=2, eval_every=1, holdout=0.25)
    _, report = train_generator(pool, settings)
    assert len(report.evaluations) == 2 and report.frechet_floor is not None
    assert all(e["frechet"] > 0 for e in report.evaluations)
    assert report.chosen_epoch in (1, 2)
