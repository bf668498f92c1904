"""The generator's training, part by part (activegen.generative.training): the adversarial
losses, the weight average and the best checkpoint against hand computations, the networks
the settings ask for, and the checkpoint's early stop inside a training."""

from __future__ import annotations

import math

import pytest
import torch

from activegen.generative.training import (
    AdversarialLoss,
    BestCheckpoint,
    GeneratorSettings,
    WeightAverage,
    build_networks,
    train_generator,
)

REAL = torch.tensor([2.0, 0.5])
FAKE = torch.tensor([-3.0, 0.0])


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_bce_losses_are_the_logistic_gan_losses() -> None:
    loss = AdversarialLoss("bce")
    # D: −log σ(D(x)) on real, −log(1 − σ(D(G(z)))) on fake, each averaged; G: non-saturating
    want_d = (_softplus(-2.0) + _softplus(-0.5)) / 2 + (_softplus(-3.0) + _softplus(0.0)) / 2
    want_g = (_softplus(3.0) + _softplus(-0.0)) / 2
    assert float(loss.discriminator(REAL, FAKE)) == pytest.approx(want_d, rel=1e-6)
    assert float(loss.generator(FAKE)) == pytest.approx(want_g, rel=1e-6)


def test_hinge_losses_are_sn_gans() -> None:
    loss = AdversarialLoss("hinge")
    # D: mean relu(1 − D(x)) = (0 + 0.5) / 2, mean relu(1 + D(G(z))) = (0 + 1) / 2; G: −mean D
    assert float(loss.discriminator(REAL, FAKE)) == pytest.approx(0.25 + 0.5)
    assert float(loss.generator(FAKE)) == pytest.approx(1.5)


class _Tiny(torch.nn.Module):
    """One weight and one buffer, enough to follow an average by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("stat", torch.zeros(1))


@pytest.mark.parametrize("decay", [0.999, 0.3])
def test_weight_average_warms_its_decay_up(decay: float) -> None:
    """decay_t = min(decay, (1 + t) / (10 + t)) at step t: with 0.999 the warm-up governs
    every early step; with 0.3 it does for t = 1, 2 and the cap from t = 3 on."""
    model = _Tiny()
    average = WeightAverage(model, decay)  # type: ignore[arg-type]
    by_hand = 0.0
    for t, value in enumerate([1.0, 2.0, 3.0, 5.0, 8.0], start=1):
        with torch.no_grad():
            model.w.fill_(value)
            model.stat.fill_(-value)
        average.update(model)  # type: ignore[arg-type]
        d = min(decay, (1 + t) / (10 + t))
        by_hand = d * by_hand + (1 - d) * value
        assert float(average.average.w.detach()) == pytest.approx(by_hand, rel=1e-6), t
        assert float(average.average.stat) == -value  # buffers are copied, not averaged
    assert float(model.w.detach()) == 8.0  # the trained model is left alone


def test_best_checkpoint_keeps_restores_and_stops_after_its_patience() -> None:
    gen, disc = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    best = BestCheckpoint(patience=2, eval_every=2)
    assert best.restore(gen, disc) is None  # nothing observed: nothing to restore
    stops = []
    for epoch, value in [(2, 5.0), (4, 3.0), (6, 4.0), (8, 2.0), (10, 2.5), (12, 2.0)]:
        with torch.no_grad():  # the weights of each epoch carry its number
            gen.weight.fill_(epoch)
            disc.weight.fill_(-epoch)
        stops.append(best.observe(value, epoch, gen, disc))
    # 2 evaluations × 2 epochs without a smaller value (a tie is no gain) after epoch 8
    assert stops == [False, False, False, False, False, True]
    assert (best.value, best.epoch) == (2.0, 8)
    assert best.restore(gen, disc) == 8
    assert float(gen.weight.detach()) == 8.0 and float(disc.weight.detach()) == -8.0
    patient = BestCheckpoint(patience=0, eval_every=1)
    assert not any(patient.observe(1.0 + e, e, gen, disc) for e in range(1, 50))  # never stops


def test_training_stops_at_the_patience_and_keeps_the_best_epoch() -> None:
    X = torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(0)).numpy()
    settings = GeneratorSettings(epochs=20, latent_dim=4, width=4, batch_size=16,
                                 eval_every=1, patience=2)
    scripted = iter([5.0, 3.0, 4.0, 3.5, 6.0, 1.0])
    gen, report = train_generator(X, settings, quality_fn=lambda _gen, _epoch: next(scripted))
    assert [e["epoch"] for e in report.evaluations] == [1, 2, 3, 4]  # stopped: 2 without gain
    assert report.chosen_epoch == 2
    assert not gen.training


def test_the_networks_are_those_the_settings_ask_for() -> None:
    plain_gen, plain = build_networks((1, 16, 16), GeneratorSettings(latent_dim=4, width=4))
    assert plain_gen.latent_dim == 4
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    _, normed = build_networks((1, 16, 16), GeneratorSettings(width=4, spectral_norm=True))
    layers = [m for m in normed.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in normed.modules())
