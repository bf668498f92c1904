"""Deep learners: small CNN, ResNet-18, the shared training code and the loss head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from activegen._settings import BuildContext
from activegen.data.registry import load_dataset
from activegen.errors import ConfigError
from activegen.models import LEARNERS, ResNet18, SmallCNN
from activegen.models.capabilities import FitContext, LossPredicting
from activegen.models.loss_prediction import LossPredictionModule, margin_ranking_loss
from activegen.models.resnet import ResNet18Network, load_imagenet_weights
from activegen.models.torch_learner import zoom_batch


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    X, y = ds.to_float(), ds.y
    order = np.random.default_rng(0).permutation(len(y))
    return X[order], y[order]


def quick_cnn(**kw: object) -> SmallCNN:
    settings = dict(schedule="fixed", epochs=8, lr=0.05, batch_size=32, width=8, device="cpu")
    settings.update(kw)
    return SmallCNN(10, seed=3, **settings)  # type: ignore[arg-type]


def test_small_cnn_learns_and_is_deterministic(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    a = quick_cnn().fit(X[:600], y[:600])
    b = quick_cnn().fit(X[:600], y[:600])
    assert a.score(X[1200:], y[1200:]) > 0.85  # chance is 0.1
    np.testing.assert_array_equal(a.decision_function(X[1200:]), b.decision_function(X[1200:]))
    np.testing.assert_array_equal(a.embed(X[:50]), b.embed(X[:50]))
    c = SmallCNN(10, seed=4, schedule="fixed", epochs=8, lr=0.05, batch_size=32, width=8,
                 device="cpu").fit(X[:600], y[:600])
    assert not np.array_equal(a.embed(X[:50]), c.embed(X[:50]))  # the seed matters
    assert a.embed(X[:7]).shape == (7, 128)
    proba = a.predict_proba(X[:20])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_two_classes_decision_is_the_logit_margin(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    keep = np.isin(y, [3, 8])
    Xb, yb = X[keep], (y[keep] == 8).astype(np.int64)
    learner = SmallCNN(2, seed=0, schedule="fixed", epochs=5, lr=0.05, batch_size=32,
                       width=8, device="cpu").fit(Xb, yb)
    d = learner.decision_function(Xb)
    assert d.shape == (len(yb),)
    np.testing.assert_array_equal(d > 0, learner.predict(Xb) == 1)
    torch_d = learner.torch_decision(torch.from_numpy(Xb[:10])).detach().numpy()
    np.testing.assert_allclose(torch_d, d[:10], rtol=1e-4, atol=1e-4)


def test_schedules(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    grow = SmallCNN(10, schedule="grow", epochs=10, epochs_increment=5)
    assert [grow.epochs_for(r) for r in (0, 1, 2, 6)] == [10, 15, 20, 40]
    assert SmallCNN(10, schedule="fixed", epochs=7).epochs_for(9) == 7
    grown = quick_cnn(schedule="grow", epochs=1, epochs_increment=1)
    grown.fit(X[:64], y[:64], FitContext(round=2))
    assert len(grown.history) == 3  # the round comes from the context, not from len(y)
    until = quick_cnn(schedule="until-accuracy", target_accuracy=0.9, max_epochs=40)
    until.fit(X[:300], y[:300])
    accs = [h["train_accuracy"] for h in until.history]
    assert accs[-1] >= 0.9 and all(a < 0.9 for a in accs[:-1]) and len(accs) < 40
    fixed = quick_cnn(epochs=3).fit(X[:100], y[:100])
    assert len(fixed.history) == 3


def test_bad_settings_are_refused_before_work() -> None:
    with pytest.raises(ValueError, match="schedule: Input should be 'fixed', 'grow' or "
                                         "'until-accuracy'"):
        SmallCNN(10, schedule="forever")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs: Input should be greater than or equal to 1"):
        SmallCNN(10, epochs=0)
    with pytest.raises(ConfigError, match="epoch: unknown setting"):
        LEARNERS.validate("small-cnn", {"epoch": 3})
    LEARNERS.validate("resnet18", {"epochs": 3, "bf16": True})
    with pytest.raises(ValueError, match="no such file"):
        ResNet18(10, pretrained_path="/nonexistent/resnet18.pth")


def test_loss_head_ranking_loss_falls_and_ranks_test_losses(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits
    learner = quick_cnn(epochs=30, loss_head={"detach_epoch": 30})
    learner.fit(X[:600], y[:600])
    ranking = np.array([h["ranking_loss"] for h in learner.history])
    assert ranking[-5:].mean() < 0.8 * ranking[:5].mean()
    # The head ranks unseen points' true losses (an untrained head would give ≈ 0).
    proba = learner.predict_proba(X[600:])
    true_loss = -np.log(proba[np.arange(len(proba)), y[600:]] + 1e-12)
    assert spearmanr(learner.predict_loss(X[600:]), true_loss).statistic > 0.4
    assert not isinstance(quick_cnn(epochs=1), LossPredicting)  # no head: no method


def test_margin_ranking_loss_matches_the_formula() -> None:
    pred = torch.tensor([0.5, 2.0, -1.0, 0.0, 3.0])
    target = torch.tensor([1.0, 0.2, 0.3, 0.9, 0.1])
    # pairs (0,4) and (1,3); the middle element is unpaired.
    expected = []
    for i, j in ((0, 4), (1, 3)):
        sign = 1.0 if target[i] > target[j] else -1.0
        expected.append(max(0.0, -sign * float(pred[i] - pred[j]) + 1.0))
    assert float(margin_ranking_loss(pred, target, 1.0)) == pytest.approx(np.mean(expected))


def test_zero_extra_features_reproduce_the_plain_head() -> None:
    torch.manual_seed(0)
    plain = LossPredictionModule((4, 8, 8, 8), hidden=16)
    torch.manual_seed(0)
    augmented = LossPredictionModule((4, 8, 8, 8), hidden=16, extra_dim=5)
    stages = [torch.randn(3, c, 4, 4) for c in (4, 8, 8, 8)]
    torch.testing.assert_close(plain(stages), augmented(stages, torch.zeros(3, 5)),
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs 5 extra features"):
        augmented(stages)


def test_resnet18_shapes_and_imagenet_weights(tmp_path: Path) -> None:
    net = ResNet18Network(1, 10)
    logits, feats, maps = net(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 10) and feats.shape == (2, 512)
    assert [m.shape[1:] for m in maps] == [(64, 28, 28), (128, 14, 14), (256, 7, 7),
                                            (512, 4, 4)]
    # A torchvision-format state dict: 7x7 RGB stem, 1000-class head.
    torchvision_like = ResNet18Network(3, 1000).state_dict()
    stem = torch.randn(64, 3, 7, 7)
    torchvision_like["conv1.weight"] = stem
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_like, path)
    grey = ResNet18Network(1, 10)
    load_imagenet_weights(grey, path)
    torch.testing.assert_close(grey.conv1.weight, stem[:, :, 2:5, 2:5].sum(1, keepdim=True))
    torch.testing.assert_close(grey.layer3[0].conv1.weight,
                               torchvision_like["layer3.0.conv1.weight"])
    del torchvision_like["layer4.1.bn2.weight"]
    torch.save(torchvision_like, path)
    with pytest.raises(ConfigError, match="missing 1 keys"):
        load_imagenet_weights(ResNet18Network(1, 10), path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"junk\.pth: not a readable"):
        load_imagenet_weights(ResNet18Network(1, 10), tmp_path / "junk.pth")


def test_resnet18_learner_trains_a_step(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    learner = LEARNERS.build("resnet18", {"schedule": "fixed", "epochs": 1, "batch_size": 32,
                                          "loss_head": {}},
                             BuildContext(n_classes=10, seed=0, device="cpu"))
    learner.fit(X[:64], y[:64])
    assert learner.embed(X[:3]).shape == (3, 512)
    assert learner.predict_loss(X[:3]).shape == (3,)


def _first_norm_batch_mean(learner: SmallCNN, X: np.ndarray) -> torch.Tensor:
    """The mean over ``X`` of the first BatchNorm's input (the first conv's output)."""
    assert learner.network is not None
    conv = learner.network.stages[0][0]  # type: ignore[index]
    with torch.no_grad():
        return conv(torch.from_numpy(X)).mean(dim=(0, 2, 3))


def test_batchnorm_statistics_are_those_of_the_training_images(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """50 labels, batch 128: an epoch is one step, and the running averages (momentum 0.1)
    stay near their initial mean 0 after 8 steps; recalibrated, eval mode normalises with the
    training images' own statistics (issue 10: the CNN was at chance on its test set)."""
    X, y = digits
    X, y = X[:50], y[:50]
    fixed = quick_cnn(epochs=8, batch_size=128).fit(X, y)
    stale = quick_cnn(epochs=8, batch_size=128, bn_recalibrate=False).fit(X, y)
    assert fixed.network is not None and stale.network is not None
    fixed_norm = fixed.network.stages[0][1]  # type: ignore[index]
    stale_norm = stale.network.stages[0][1]  # type: ignore[index]
    target = _first_norm_batch_mean(fixed, X)
    torch.testing.assert_close(fixed_norm.running_mean, target, rtol=1e-4, atol=1e-5)
    assert fixed_norm.momentum == 0.1  # restored after the pass
    stale_target = _first_norm_batch_mean(stale, X)
    gap = (stale_norm.running_mean - stale_target).abs().max()
    assert gap > 0.1 * stale_target.abs().max()  # without the pass they lag far behind
    # The weights are those of training: the pass changes only the statistics.
    for a, b in zip(fixed.network.parameters(), stale.network.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Eval mode now fits the training set as training saw it (its last epoch, in train mode:
    # 0.86 here); with the stale statistics the same weights scored 0.26.
    assert fixed.score(X, y) >= fixed.history[-1]["train_accuracy"] - 0.05
    assert stale.score(X, y) < fixed.score(X, y) - 0.3


def test_zoom_magnifies_training_batches_only(digits: tuple[np.ndarray, np.ndarray]) -> None:
    square = torch.zeros(4, 1, 28, 28)
    square[:, :, 10:18, 10:18] = 1.0
    zoomed = zoom_batch(square, (1.5, 1.5), torch.Generator().manual_seed(0))
    area = (zoomed > 0.5).float().sum(dim=(1, 2, 3)) / 64
    assert bool(((area > 1.5**2 * 0.7) & (area < 1.5**2 * 1.3)).all())  # aspect 1 ± 0.2
    again = zoom_batch(square, (1.5, 1.5), torch.Generator().manual_seed(0))
    torch.testing.assert_close(zoomed, again, rtol=0, atol=0)  # seeded
    identity = zoom_batch(square, (1.0, 1.0), torch.Generator().manual_seed(0))
    assert float((identity - square).abs().mean()) < 0.05  # scale 1: only aspect and shift
    X, y = digits
    X_before = X[:100].copy()
    plain = quick_cnn(epochs=2).fit(X[:100], y[:100])
    learner = quick_cnn(epochs=2, zoom=[1.0, 1.5]).fit(X[:100], y[:100])
    np.testing.assert_array_equal(X[:100], X_before)  # the caller's images are untouched
    assert not np.array_equal(plain.decision_function(X[:20]),
                              learner.decision_function(X[:20]))  # training did see it
    repeat = quick_cnn(epochs=2, zoom=[1.0, 1.5]).fit(X[:100], y[:100])
    np.testing.assert_array_equal(learner.decision_function(X[:20]),
                                  repeat.decision_function(X[:20]))  # scoring is not zoomed
    with pytest.raises(ValueError, match="zoom must be"):
        SmallCNN(10, zoom=(1.5, 1.0))
    with pytest.raises(ConfigError, match="zoom must be"):
        LEARNERS.build("small-cnn", {"zoom": [0.0, 1.0]}, BuildContext())
