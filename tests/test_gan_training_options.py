"""The generator's settings reach its training: every setting is part of the cache key (a
preset and its values spelled out are one generator), the optimisers get their learning
rates and betas, the loss of the settings is the one trained, the Fréchet floors, the
evaluation hook, and standing batch-norm statistics. The parts alone: test_training_parts.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import activegen.generative.training as training
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, cache_key, train_generator
from activegen.generative.quality import frechet_distance, pca_features
from activegen.generative.training import (
    frechet_quality,
    matched_frechet_floor,
    standing_statistics,
)

TINY = GeneratorSettings(epochs=2, width=8, latent_dim=8, batch_size=32)


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return load_dataset("digits").select_classes([5, 7]).to_float()[:96]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("digits").to_float()


#: a value other than the default for every setting
CHANGED = {"epochs": 3, "latent_dim": 4, "width": 4, "batch_size": 16, "lr": 1e-4,
           "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.9, "loss": "hinge", "spectral_norm": True,
           "ema": 0.999, "bn_stats": "standing", "eval_every": 5, "holdout": 0.2,
           "patience": 2}


def test_every_setting_and_the_seed_are_part_of_the_key_and_a_preset_is_its_values(
        pool) -> None:
    assert set(CHANGED) == set(GeneratorSettings.model_fields)  # a new setting joins here
    base = GeneratorSettings()
    keys = {cache_key(pool, base, 0), cache_key(pool, base, 1)}
    keys |= {cache_key(pool, base.updated(**{name: value}), 0) for name, value in CHANGED.items()}
    assert len(keys) == 2 + len(CHANGED)
    stable = GeneratorSettings.model_validate("stable")
    spelled = GeneratorSettings(**GeneratorSettings.PRESETS["stable"])
    assert cache_key(pool, stable, 0) == cache_key(pool, spelled, 0)
    assert GeneratorSettings.model_validate("paper") == base
    tuned = GeneratorSettings.model_validate({"preset": "stable", "epochs": 300})
    assert tuned == spelled.updated(epochs=300)  # keys beside the preset override it


@pytest.mark.parametrize("change,match", [
    ({"loss": "wgan-gp"}, "loss"),
    ({"d_lr": 0.0}, "d_lr"),
    ({"beta1": 1.0}, "beta1"),
    ({"bn_stats": "frozen"}, "bn_stats"),
    ({"preset": "fast"}, "unknown preset 'fast'; known: paper, stable"),
])
def test_bad_settings_are_refused_before_training(change, match) -> None:
    with pytest.raises(ValueError, match=match):
        GeneratorSettings.model_validate(change)


def test_learning_rates_and_betas_reach_the_optimisers(pool, monkeypatch) -> None:
    made: list[tuple[float, tuple[float, float]]] = []
    real_adam = torch.optim.Adam

    def spy(params, lr, betas):  # type: ignore[no-untyped-def]
        made.append((lr, tuple(betas)))
        return real_adam(params, lr=lr, betas=betas)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    train_generator(pool, TINY.updated(epochs=1))
    train_generator(pool, TINY.updated(epochs=1, lr=1e-4, d_lr=4e-4, beta1=0.0, beta2=0.9))
    assert made == [(2e-4, (0.5, 0.999)), (2e-4, (0.5, 0.999)),  # G, then D: the defaults
                    (1e-4, (0.0, 0.9)), (4e-4, (0.0, 0.9))]


def test_the_loss_of_the_settings_is_the_one_trained(pool, monkeypatch) -> None:
    kinds: list[str] = []
    real = training.AdversarialLoss

    def spy(kind: str):  # type: ignore[no-untyped-def]
        kinds.append(kind)
        return real(kind)

    monkeypatch.setattr(training, "AdversarialLoss", spy)
    gen_h, report_h = train_generator(pool, TINY.updated(loss="hinge"))
    gen_b, _ = train_generator(pool, TINY)
    assert kinds == ["hinge", "bce"]
    assert report_h.final_d_loss >= 0.0  # a hinge loss is never negative
    z = torch.zeros(4, TINY.latent_dim)
    assert not torch.equal(gen_h(z), gen_b(z))  # a different training, not a relabelling
    again, _ = train_generator(pool, TINY.updated(loss="hinge"))
    assert torch.equal(again(z), gen_h(z))  # still seeded


def test_size_matched_floor_is_the_full_floor_at_full_size_and_higher_when_smaller(
        digits) -> None:
    order = np.random.default_rng(0).permutation(len(digits))
    hold, ref = digits[order[:180]], digits[order[180:]]
    _quality, floor = frechet_quality(hold, ref, seed=0)
    full = matched_frechet_floor(hold, ref, n_samples=len(ref), draws=1, seed=0)
    assert full == pytest.approx(floor, rel=1e-6)  # all of ref, in another order: same figure
    small = matched_frechet_floor(hold, ref, n_samples=100, draws=5, seed=0)
    assert small > 1.2 * floor  # FD's estimation bias grows as a sample shrinks
    features = pca_features(ref)
    rng = np.random.default_rng(0)
    by_hand = np.mean([frechet_distance(features(hold),
                                        features(ref[rng.choice(len(ref), 100, replace=False)]))
                       for _ in range(5)])
    assert small == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="n_samples"):
        matched_frechet_floor(hold, ref, n_samples=len(ref) + 1)
    with pytest.raises(ValueError, match="draws"):
        matched_frechet_floor(hold, ref, draws=0)


def test_training_report_keeps_both_floors(pool, digits) -> None:
    _, report = train_generator(digits, TINY.updated(epochs=1, eval_every=1))
    assert report.frechet_floor is not None and report.frechet_floor_matched is not None
    assert report.frechet_floor_matched > report.frechet_floor
    _, plain = train_generator(pool, TINY)
    assert plain.frechet_floor is None and plain.frechet_floor_matched is None


def test_an_exception_from_the_evaluation_hook_ends_training(pool) -> None:
    class Stop(Exception):
        pass

    epochs: list[int] = []

    def hook(record: dict[str, float]) -> None:
        epochs.append(int(record["epoch"]))
        if record["epoch"] >= 2:
            raise Stop

    with pytest.raises(Stop):
        train_generator(pool, TINY.updated(epochs=5, eval_every=1), on_evaluation=hook)
    assert epochs == [1, 2]


def test_standing_statistics_are_the_average_over_seeded_latent_batches() -> None:
    from activegen.generative.dcgan import Generator

    gen = Generator((1, 8, 8), latent_dim=8, width=8)
    standing_statistics(gen, batch=16, seed=3, n_batches=4)
    assert not gen.training
    rng = torch.Generator().manual_seed(3 + 104_729)  # the latents it drew
    z = torch.cat([gen.sample_latent(16, rng) for _ in range(4)])
    with torch.no_grad():
        first = gen.project[0](z)  # what the first batch norm saw
    bn = gen.project[1]
    torch.testing.assert_close(bn.running_mean, first.mean(0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1  # restored for any later training


def test_standing_statistics_replace_the_copied_ones_of_an_ema_generator(pool) -> None:
    settings = TINY.updated(epochs=3, ema=0.9)
    copied, _ = train_generator(pool, settings, seed=2)
    standing, _ = train_generator(pool, settings.updated(bn_stats="standing"), seed=2)
    for a, b in zip(copied.parameters(), standing.parameters(), strict=True):
        assert torch.equal(a, b)  # the same weights: only the statistics differ
    again = standing_statistics(copy.deepcopy(copied), TINY.batch_size, 2)
    for name, buf in standing.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            torch.testing.assert_close(buf, dict(again.named_buffers())[name])
    assert not torch.equal(copied.project[1].running_mean, standing.project[1].running_mean)
