"""SimCLR features learned on the pool: the loss, the views, training, and the cache."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from activegen.data import load_dataset
from activegen.errors import ConfigError, DataError
from activegen.features import SelfSupervisedSettings, SelfSupervisedSource, make_source
from activegen.features import self_supervised as ssl
from activegen.features.augment import Augment
from activegen.features.contrastive import nt_xent

#: a tiny encoder and two short epochs: the tests check relations, not accuracy
TINY = SelfSupervisedSettings(epochs=2, batch_size=32, width=4, projection_dim=8,
                              projection_hidden=32)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """128 of scikit-learn's 8×8 digits, float32 [N, 1, 8, 8] in [0, 1]."""
    return load_dataset("digits").to_float()[:128]


def test_nt_xent_equals_the_definition() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    t = 0.3
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).double()
    n, total = len(z), 0.0
    for i in range(n):
        j = (i + n // 2) % n
        sims = [float(z[i] @ z[k]) / t for k in range(n)]
        denominator = sum(np.exp(s) for k, s in enumerate(sims) if k != i)
        total += -np.log(np.exp(sims[j]) / denominator)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / n, rel=1e-5)


def test_nt_xent_prefers_matching_pairs() -> None:
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    assert float(nt_xent(z, z, 0.5)) < float(nt_xent(z, z.roll(1, 0), 0.5))


@pytest.mark.parametrize(("channels", "flip"), [(1, False), (3, True)])
def test_views_keep_shape_and_range(channels: int, flip: bool) -> None:
    torch.manual_seed(0)
    x = torch.rand(16, channels, 12, 12)
    view = Augment(channels, (12, 12), min_crop_scale=0.3, rotation=20, translate=0.2,
                   flip=flip, jitter=0.8)(x)
    assert view.shape == x.shape
    assert float(view.min()) >= 0.0 and float(view.max()) <= 1.0
    assert not torch.equal(view, x)


def test_training_lowers_the_loss(digits: np.ndarray) -> None:
    settings = TINY.model_copy(update={"epochs": 4})
    _, record = ssl.train_encoder(digits, settings, threads=1, display="none")
    assert len(record.losses) == 4
    assert record.losses[-1] < record.losses[0]


def test_progress_is_reported_per_epoch(digits: np.ndarray, capsys: pytest.CaptureFixture
                                        ) -> None:
    seen: list[tuple[int, int, float]] = []
    ssl.train_encoder(digits, TINY, threads=1, display="lines",
                      on_progress=lambda e, n, loss: seen.append((e, n, loss)))
    assert [(e, n) for e, n, _ in seen] == [(1, 2), (2, 2)]
    lines = capsys.readouterr().err.splitlines()
    assert any("epoch 2 of 2" in line and "activegen:" in line for line in lines)


def test_training_sets_threads_and_puts_them_back(digits: np.ndarray) -> None:
    before = torch.get_num_threads()
    _, record = ssl.train_encoder(digits, TINY, threads=1, display="none")
    assert record.threads == 1 and torch.get_num_threads() == before


class _Counted:
    """Counts calls of ``train_encoder`` (the cache must not call it again)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = ssl.train_encoder

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(ssl, "train_encoder", counted)


def _source(cache: Path, **kwargs) -> SelfSupervisedSource:  # type: ignore[no-untyped-def]
    return SelfSupervisedSource(TINY, cache_dir=cache, threads=1, display="none", **kwargs)


def test_cache_hit_gives_the_same_features_without_training(
        digits: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = _Counted(monkeypatch)
    first = _source(tmp_path)
    first.fit(digits)
    second = _source(tmp_path)
    second.fit(digits)
    assert counted.calls == 1
    assert second.training is not None and second.training.from_cache
    assert np.array_equal(first.transform(digits), second.transform(digits))
    assert first.id == second.id
    other = SelfSupervisedSource(TINY.model_copy(update={"seed": 1}), cache_dir=tmp_path,
                                 threads=1, display="none")
    other.fit(digits)
    assert counted.calls == 2 and other.id != first.id
    other.fit(digits[:64])  # another pool is another encoder
    assert counted.calls == 3


def _damage(cache: Path) -> Path:
    (model,) = (cache / "encoders").glob("*/model.pt")
    data = bytearray(model.read_bytes())
    data[-200] ^= 0xFF  # inside the last tensor: torch.load alone would not notice
    model.write_bytes(bytes(data))
    return model


def test_damaged_entry_is_rebuilt_with_a_warning(
        digits: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    counted = _Counted(monkeypatch)
    first = _source(tmp_path)
    first.fit(digits)
    damaged = _damage(tmp_path)
    with caplog.at_level(logging.WARNING):
        again = _source(tmp_path)
        again.fit(digits)
    assert counted.calls == 2
    assert str(damaged) in caplog.text
    assert again.training is not None and not again.training.from_cache


def test_damaged_entry_is_refused_when_asked(digits: np.ndarray, tmp_path: Path) -> None:
    _source(tmp_path).fit(digits)
    damaged = _damage(tmp_path)
    with pytest.raises(DataError, match=re.escape(str(damaged))):
        _source(tmp_path, on_damaged="refuse").fit(digits)


def test_encoder_as_arrays_gives_the_same_features(digits: np.ndarray) -> None:
    trained = SelfSupervisedSource(TINY, threads=1, display="none")
    trained.fit(digits)
    restored = SelfSupervisedSource(TINY, threads=1)
    restored.load_state_arrays(trained.state_arrays(), (1, 8, 8))
    assert np.array_equal(trained.transform(digits), restored.transform(digits))
    assert restored.id == trained.id
    with pytest.raises(ConfigError, match="encoder arrays"):
        SelfSupervisedSource(TINY.model_copy(update={"width": 8})).load_state_arrays(
            trained.state_arrays(), (1, 8, 8))


def test_transform_is_batched_and_checked(digits: np.ndarray) -> None:
    source = SelfSupervisedSource(TINY, threads=1, display="none", batch_size=7)
    with pytest.raises(DataError, match="fit"):
        source.transform(digits)
    source.fit(digits)
    features = source.transform(digits)
    assert features.shape == (len(digits), source.dim) and features.dtype == np.float32
    whole = SelfSupervisedSource(TINY, threads=1, batch_size=1000)
    whole.load_state_arrays(source.state_arrays(), (1, 8, 8))
    np.testing.assert_allclose(features, whole.transform(digits), rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match="uint8"):
        source.transform((digits * 255).astype(np.uint8))
    with pytest.raises(DataError, match="fitted on images"):
        source.transform(np.zeros((2, 1, 9, 9), dtype=np.float32))


def test_settings_are_checked_and_frozen() -> None:
    with pytest.raises(ValueError):
        SelfSupervisedSettings(epochs=0)
    with pytest.raises(ValueError):
        SelfSupervisedSettings(temperatur=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        TINY.epochs = 3  # type: ignore[misc]


def test_make_source_names_every_source(tmp_path: Path) -> None:
    assert make_source("pixels").id == "pixels"
    source = make_source("self-supervised", cache_dir=tmp_path, settings=TINY)
    assert isinstance(source, SelfSupervisedSource) and source.cache_dir == tmp_path
    with pytest.raises(ConfigError, match="self-supervised"):
        make_source("simclr")
    with pytest.raises(ConfigError, match="channels"):
        make_source("vae")


def test_the_training_time_estimate_grows_with_images_pixels_and_width() -> None:
    """What a run names before it trains: 10,000 28x28 grey images at the defaults took
    about 530 s on a quiet core; more images, more pixels, more channels and a wider encoder
    each cost more."""
    base = SelfSupervisedSettings()
    grey = base.estimated_seconds(10_000, (1, 28, 28))
    assert 400 < grey < 700
    assert base.estimated_seconds(20_000, (1, 28, 28)) == pytest.approx(2 * grey)
    assert base.estimated_seconds(10_000, (3, 28, 28)) > grey
    assert base.estimated_seconds(10_000, (1, 64, 64)) > base.estimated_seconds(10_000, (1, 32, 32))
    wide = SelfSupervisedSettings(width=32).estimated_seconds(10_000, (1, 28, 28))
    assert wide > 3 * grey
