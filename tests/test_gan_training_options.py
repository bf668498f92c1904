"""Generator training options of issue 10 item 1: hinge loss, two time scales, Adam's betas,
the size-matched Fréchet floor, and ADA's probability at every quality evaluation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import activegen.generative.training as training
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, cache_key, train_generator
from activegen.generative.quality import frechet_distance, pca_features
from activegen.generative.training import frechet_quality, matched_frechet_floor

TINY = GeneratorSettings(epochs=2, width=8, latent_dim=8, batch_size=32)


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return load_dataset("digits").select_classes([5, 7]).to_float()[:96]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("digits").to_float()


def test_new_options_are_off_by_default_and_keep_cache_keys(pool) -> None:
    plain = GeneratorSettings()
    assert (plain.loss, plain.d_lr, plain.beta1, plain.beta2) == ("bce", None, None, None)
    for name in ("loss", "d_lr", "beta1", "beta2"):
        assert name not in TINY.to_dict()  # entries trained before these options keep keys
    keys = {cache_key(pool, s) for s in (TINY, replace(TINY, loss="hinge"),
                                         replace(TINY, d_lr=4e-4), replace(TINY, beta1=0.0),
                                         replace(TINY, beta2=0.9))}
    assert len(keys) == 5  # each option is part of the key


@pytest.mark.parametrize("change,match", [
    ({"loss": "wasserstein"}, "unknown gan loss"),
    ({"loss": "hinge", "kind": "wgan-gp"}, "needs gan"),
    ({"d_lr": 0.0}, "d_lr"),
    ({"beta1": 1.0}, "beta1"),
    ({"beta2": -0.1}, "beta2"),
])
def test_bad_options_are_refused_before_training(change, match) -> None:
    with pytest.raises(ValueError, match=match):
        GeneratorSettings(**change)


def test_the_strategy_hands_its_options_to_the_generator() -> None:
    from activegen.strategies import STRATEGIES

    gaal = STRATEGIES.build("gaal", {"gan_loss": "hinge", "gan_d_lr": 4e-4, "gan_beta1": 0.0,
                                     "gan_beta2": 0.9})
    s = gaal.gan_settings
    assert (s.loss, s.d_lr, s.beta1, s.beta2) == ("hinge", 4e-4, 0.0, 0.9)
    from activegen.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown gan loss 'nope'"):
        STRATEGIES.build("gaal", {"gan_loss": "nope"})


def test_learning_rates_and_betas_reach_the_optimisers(pool, monkeypatch) -> None:
    made: list[tuple[float, tuple[float, float]]] = []
    real_adam = torch.optim.Adam

    def spy(params, lr, betas):  # type: ignore[no-untyped-def]
        made.append((lr, tuple(betas)))
        return real_adam(params, lr=lr, betas=betas)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    train_generator(pool, replace(TINY, epochs=1))
    train_generator(pool, replace(TINY, epochs=1, lr=1e-4, d_lr=4e-4, beta1=0.0, beta2=0.9))
    assert made == [(2e-4, (0.5, 0.999)), (2e-4, (0.5, 0.999)),  # G, then D: the defaults
                    (1e-4, (0.0, 0.9)), (4e-4, (0.0, 0.9))]


def test_hinge_loss_trains_the_discriminator_on_hinge_terms(pool, monkeypatch) -> None:
    """With ``loss = "hinge"`` the discriminator's loss is the hinge and the logistic loss is
    never called; the default calls the logistic loss and never the hinge."""
    calls = {"hinge": 0, "bce": 0}
    real_hinge, real_bce = training.hinge_d_loss, training.F.binary_cross_entropy_with_logits

    def hinge(*a, **k):  # type: ignore[no-untyped-def]
        calls["hinge"] += 1
        return real_hinge(*a, **k)

    def bce(*a, **k):  # type: ignore[no-untyped-def]
        calls["bce"] += 1
        return real_bce(*a, **k)

    monkeypatch.setattr(training, "hinge_d_loss", hinge)
    monkeypatch.setattr(training.F, "binary_cross_entropy_with_logits", bce)
    gen_h, report_h = train_generator(pool, replace(TINY, loss="hinge"))
    assert calls["hinge"] == 2 * (len(pool) // TINY.batch_size) and calls["bce"] == 0
    assert np.isfinite(report_h.final_d_loss) and report_h.final_d_loss >= 0.0  # hinge >= 0
    calls.update(hinge=0, bce=0)
    gen_b, _ = train_generator(pool, TINY)
    assert calls["bce"] > 0 and calls["hinge"] == 0
    z = torch.zeros(4, TINY.latent_dim)
    assert not torch.equal(gen_h(z), gen_b(z))  # a different training, not a relabelling
    again, _ = train_generator(pool, replace(TINY, loss="hinge"))
    assert torch.equal(again(z), gen_h(z))  # still seeded


def test_hinge_d_loss_values() -> None:
    real = torch.tensor([2.0, 0.5])  # relu(1 - x): 0, 0.5
    fake = torch.tensor([-3.0, 0.0])  # relu(1 + x): 0, 1
    assert float(training.hinge_d_loss(real, fake)) == pytest.approx(0.25 + 0.5)


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
    _, report = train_generator(digits, replace(TINY, epochs=1, eval_every=1))
    assert report.frechet_floor is not None and report.frechet_floor_matched is not None
    assert report.frechet_floor_matched > report.frechet_floor
    _, plain = train_generator(pool, TINY)
    assert plain.frechet_floor is None and plain.frechet_floor_matched is None


class _Confident(torch.nn.Module):
    """A discriminator always sure of its input (logit 8): ADA's ``p`` keeps rising."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x.flatten(1).mean(1) + 8.0


def test_ada_probability_is_recorded_at_every_evaluation(pool, monkeypatch) -> None:
    real_build = training.build_networks

    def build(shape, settings):  # type: ignore[no-untyped-def]
        gen, _ = real_build(shape, settings)
        return gen, _Confident()

    monkeypatch.setattr(training, "build_networks", build)
    settings = replace(TINY, epochs=6, eval_every=2, augment="translation",
                       ada_target=0.6)
    seen: list[dict[str, float]] = []
    _, report = train_generator(pool, settings, on_evaluation=seen.append)
    ps = [e["ada_p"] for e in report.evaluations]
    assert [e["epoch"] for e in report.evaluations] == [2, 4, 6]
    assert ps[0] > 0 and ps[0] < ps[1] < ps[2]  # the history, not the final value thrice
    assert ps[-1] == report.ada_p
    assert seen == report.evaluations  # the hook saw each record as it was made
    _, no_ada = train_generator(pool, replace(TINY, eval_every=1))
    assert all("ada_p" not in e for e in no_ada.evaluations)


def test_an_exception_from_the_evaluation_hook_ends_training(pool) -> None:
    class Stop(Exception):
        pass

    epochs: list[int] = []

    def hook(record: dict[str, float]) -> None:
        epochs.append(int(record["epoch"]))
        if record["epoch"] >= 2:
            raise Stop

    with pytest.raises(Stop):
        train_generator(pool, replace(TINY, epochs=5, eval_every=1), on_evaluation=hook)
    assert epochs == [1, 2]


def test_bn_stats_setting_is_keyed_and_checked(pool) -> None:
    assert "bn_stats" not in TINY.to_dict()
    assert cache_key(pool, replace(TINY, bn_stats="standing")) != cache_key(pool, TINY)
    with pytest.raises(ValueError, match="unknown bn_stats"):
        GeneratorSettings(bn_stats="frozen")


def test_standing_statistics_are_the_average_over_seeded_latent_batches() -> None:
    from activegen.generative.dcgan import Generator
    from activegen.generative.training import standing_statistics

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
    from activegen.generative.training import standing_statistics

    settings = replace(TINY, epochs=3, ema=0.9)
    copied, _ = train_generator(pool, settings)
    standing, _ = train_generator(pool, replace(settings, bn_stats="standing"))
    for a, b in zip(copied.parameters(), standing.parameters(), strict=True):
        assert torch.equal(a, b)  # the same weights: only the statistics differ
    again = standing_statistics(__import__("copy").deepcopy(copied), TINY.batch_size,
                                TINY.seed)
    for name, buf in standing.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            torch.testing.assert_close(buf, dict(again.named_buffers())[name])
    assert not torch.equal(copied.project[1].running_mean, standing.project[1].running_mean)
