"""The paper's convolutional VAE: training, features, determinism, cache, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.data.registry import load_dataset
from activegen.errors import DataError
from activegen.generative import vae as vae_module
from activegen.generative.vae import (
    ConvVAE,
    VAESettings,
    encode,
    load_or_train_vae,
    train_vae,
)

QUICK = VAESettings(latent_dim=8, width=8, epochs=6, batch_size=64, weight_decay=0.0)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    return ds.to_float(), ds.y


def test_architecture_follows_the_paper() -> None:
    model = ConvVAE(1, (28, 28), latent_dim=16, width=8)
    convs = [m for m in model.encoder if m.__class__.__name__ == "Conv2d"]
    assert len(convs) == 4 and all(c.stride == (2, 2) for c in convs)
    assert model.upsample.stride == (4, 4)
    size_preserving = [m for m in model.refine if m.__class__.__name__ == "Conv2d"]
    assert len(size_preserving) == 4 and all(c.stride == (1, 1) for c in size_preserving)
    import torch

    mu, logvar = model.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, 16)
    assert model.decode_logits(mu).shape == (3, 1, 28, 28)
    assert ConvVAE(3, (32, 32), 4, 8).decode_logits(torch.zeros(2, 4)).shape == (2, 3, 32, 32)


def test_training_learns_features_that_know_the_digits(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits
    model, history = train_vae(X, QUICK, seed=0)
    assert history[-1] < 0.8 * history[0]
    features = encode(model, X)
    assert features.shape == (len(X), 8)
    # Unsupervised features that carry class information: a 1-NN classifier on the VAE
    # means, fitted on half, beats chance (0.1) by far on the other half (measured: 0.49).
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(1).fit(features[::2], y[::2])
    assert knn.score(features[1::2], y[1::2]) > 0.3
    one_epoch = VAESettings(latent_dim=4, width=4, epochs=1)
    a, _ = train_vae(X[:300], one_epoch, seed=5)
    b, _ = train_vae(X[:300], one_epoch, seed=5)
    c, _ = train_vae(X[:300], one_epoch, seed=6)
    np.testing.assert_array_equal(encode(a, X[:50]), encode(b, X[:50]))
    assert not np.array_equal(encode(a, X[:50]), encode(c, X[:50]))


def test_cache_trains_once_and_reports_damage(
    digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = digits[0][:300]
    settings = VAESettings(latent_dim=4, width=4, epochs=1)
    first = load_or_train_vae(X, tmp_path, settings, seed=1)
    files = list(tmp_path.glob("vaes/*/model.pt"))  # one entry of the artifact cache
    assert len(files) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached VAE should have been loaded")

    monkeypatch.setattr(vae_module, "train_vae", no_training)
    second = load_or_train_vae(X, tmp_path, settings, seed=1)
    np.testing.assert_array_equal(encode(first, X), encode(second, X))
    monkeypatch.undo()
    # Other data, settings or seed: another file.
    load_or_train_vae(X, tmp_path, settings, seed=2)
    load_or_train_vae(X[:200], tmp_path, settings, seed=1)
    assert len(list(tmp_path.glob("vaes/*/model.pt"))) == 3
    files[0].write_bytes(b"garbage")
    with pytest.raises(DataError, match="damaged VAE cache file"):
        load_or_train_vae(X, tmp_path, settings, seed=1)


def test_conditional_vae_and_bad_input(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    settings = VAESettings(latent_dim=4, width=4, epochs=1)
    onehot = np.eye(10, dtype=np.float32)[y[:200]]
    model, _ = train_vae(X[:200], settings, conditions=onehot)
    assert encode(model, X[:5], onehot[:5]).shape == (5, 4)
    with pytest.raises(ValueError, match=r"conditions must be \[200, n_conditions\]"):
        train_vae(X[:200], settings, conditions=onehot[:5])
    with pytest.raises(ValueError, match="needs conditions"):
        encode(model, X[:5])
    with pytest.raises(DataError, match="float32 images"):
        train_vae(X[:10].astype(np.float64), QUICK)
    with pytest.raises(ValueError, match="latent_dim\n  Input should be greater than or equal "
                                         "to 1"):
        VAESettings(latent_dim=0)
