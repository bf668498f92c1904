"""Pixels and today's extractors (``vae``, ``backbone:``) as feature sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from activegen.errors import ConfigError, DataError
from activegen.features import FeatureSource, PixelSource, make_source
from activegen.features.legacy import ExtractorSource, to_uint8_images
from activegen.models.features import FeatureExtractor
from activegen.models.resnet import ResNet18Network

RNG = np.random.default_rng(0)
IMAGES_U8 = RNG.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
IMAGES = IMAGES_U8.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


def test_pixels_are_the_flattened_images_in_any_batch_size() -> None:
    whole = PixelSource().transform(IMAGES)
    assert whole.shape == (12, 64) and whole.dtype == np.float32
    assert np.array_equal(PixelSource(batch_size=5).transform(IMAGES), whole)
    assert PixelSource().id == "pixels"
    assert isinstance(make_source("pixels"), FeatureSource)


def test_images_in_the_wrong_form_are_refused() -> None:
    with pytest.raises(DataError, match="uint8"):
        PixelSource().transform(IMAGES_U8)
    with pytest.raises(DataError, match=r"\[N, C, H, W\]"):
        PixelSource().transform(IMAGES[0])


def test_float_images_go_back_to_their_bytes_exactly() -> None:
    assert np.array_equal(to_uint8_images(IMAGES), IMAGES_U8)


def test_vae_source_is_todays_vae_extractor(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from activegen.generative.vae import VAESettings
    from activegen.models import features

    one_epoch = VAESettings(**{**features.VAE_SETTINGS.__dict__, "epochs": 1})
    monkeypatch.setattr(features, "VAE_SETTINGS", one_epoch)  # the test checks wiring only
    source = make_source("vae", channels=1, cache_dir=tmp_path)
    source.fit(IMAGES)
    features = source.transform(IMAGES)
    extractor = FeatureExtractor("vae", 1, cache_dir=tmp_path)
    extractor.fit(IMAGES_U8)  # the same pool: the cached VAE, not a new one
    assert np.array_equal(features, extractor.raw(IMAGES_U8))
    assert features.shape == (12, source.dim) and source.id == extractor.id


def test_the_vae_reports_its_epochs_while_it_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The VAE trained for ``features = "vae"`` says where it is (lines off a terminal, the
    caller's callback), as the self-supervised encoder does; a cached one says nothing."""
    from activegen.generative.vae import VAESettings
    from activegen.models import features

    two_epochs = VAESettings(**{**features.VAE_SETTINGS.__dict__, "epochs": 2})
    monkeypatch.setattr(features, "VAE_SETTINGS", two_epochs)
    seen: list[tuple[int, int]] = []
    source = make_source("vae", channels=1, cache_dir=tmp_path, display="lines",
                         on_progress=lambda epoch, epochs, loss: seen.append((epoch, epochs)))
    source.fit(IMAGES)
    assert seen == [(1, 2), (2, 2)]
    lines = capsys.readouterr().err
    assert "preparing VAE features: 2 epochs" in lines
    assert "preparing VAE features: epoch 2 of 2, loss" in lines
    seen.clear()
    make_source("vae", channels=1, cache_dir=tmp_path, display="none",
                on_progress=lambda *a: seen.append(a)).fit(IMAGES)
    assert seen == []  # loaded from the cache


def test_backbone_source_is_todays_backbone_extractor(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pt"
    torch.save(ResNet18Network(3, 1000).state_dict(), path)
    source = ExtractorSource(f"backbone:{path}", channels=1)
    features = source.transform(IMAGES)
    assert features.shape == (12, 512)
    expected = FeatureExtractor(f"backbone:{path}", 1).raw(IMAGES_U8)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="no such file"):
        make_source(f"backbone:{tmp_path / 'missing.pt'}", channels=1)


def test_a_missing_pretrained_weights_file_is_named_when_the_settings_are_read(
        tmp_path: Path) -> None:
    from activegen.features import FeaturesSettings

    for spec in (f"timm:resnet18@{tmp_path}/no.pt", f"open_clip:ViT-B-32:laion@{tmp_path}/no.pt",
                 f"torchvision:resnet18@{tmp_path}/no.pt"):
        with pytest.raises(ValueError, match=rf"no such weights file {tmp_path}/no\.pt"):
            FeaturesSettings(source=spec)
    (tmp_path / "w.pt").write_bytes(b"")
    assert FeaturesSettings(source=f"timm:resnet18@{tmp_path}/w.pt").source.endswith("w.pt")
    assert FeaturesSettings(source="timm:resnet18").source == "timm:resnet18"
