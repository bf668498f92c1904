"""Pretrained backbones through their libraries' loaders, offline: weights come from the named
file or the library's local cache, or the loader says which files it looked for.

Where timm, open_clip or torchvision import, a tiny model is built with the library itself,
saved as a user would save it and loaded by path. Where they do not (here torchvision has no
CPU build for this torch on PyPI, and timm and open_clip import it), those tests are skipped
with the import error, and the loader's logic is tested against fake library modules that
keep the libraries' calling conventions.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from activegen.errors import ConfigError
from activegen.features import PretrainedSource, make_source, parse_pretrained_spec
from activegen.features.pretrained import PretrainedSpec, import_library

IMAGES = np.random.default_rng(0).random((5, 1, 12, 12), dtype=np.float32)


class TinyNet(nn.Module):
    """A stand-in backbone: conv, pooling, and a classifier ``fc`` unless ``num_classes=0``."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc: nn.Module = nn.Linear(6, num_classes) if num_classes else nn.Identity()
        self.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5, 0.4, 0.3),
                               "std": (0.2, 0.25, 0.3), "classifier": "fc",
                               "hf_hub_id": "timm/tiny.test", "url": "https://x/tiny-1234.pth"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x), 1), 1))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def fake_timm() -> types.SimpleNamespace:
    def create_model(name: str, pretrained: bool = False, num_classes: int = 1000) -> TinyNet:
        assert pretrained is False, "the loader must never ask timm for pretrained weights"
        if name != "tiny":
            raise RuntimeError(f"Unknown model ({name})")
        return TinyNet(num_classes)

    return types.SimpleNamespace(create_model=create_model)


def fake_torchvision() -> types.SimpleNamespace:
    def get_model(name: str, weights: object = None) -> TinyNet:
        assert weights is None
        if name != "tiny":
            raise ValueError(f"Unknown model {name}")
        return TinyNet(10)

    def get_model_weights(name: str) -> object:
        return types.SimpleNamespace(DEFAULT=types.SimpleNamespace(url="https://x/tiny-9.pth"))

    return types.SimpleNamespace(models=types.SimpleNamespace(
        get_model=get_model, get_model_weights=get_model_weights))


def fake_open_clip() -> types.SimpleNamespace:
    def create_model(arch: str, pretrained: object = None, **kwargs: object) -> TinyNet:
        assert pretrained is None
        if arch != "tiny":
            raise RuntimeError(f"Model config for {arch} not found.")
        return TinyNet(4)

    return types.SimpleNamespace(
        create_model=create_model,
        get_pretrained_cfg=lambda arch, tag: ({"hf_hub": "laion/tiny/", "url": ""}
                                              if tag == "laion" else {}),
        get_model_preprocess_cfg=lambda model: {"size": (20, 20), "mean": (0.1, 0.2, 0.3),
                                                "std": (0.3, 0.3, 0.3)})


def saved(tmp_path: Path, num_classes: int, seed: int = 1, suffix: str = ".pt"
          ) -> tuple[TinyNet, Path]:
    torch.manual_seed(seed)
    model = TinyNet(num_classes)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        pytest.importorskip("safetensors", reason="safetensors is not installed")
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    return model, path


def reference(model: TinyNet, source: PretrainedSource, X: np.ndarray) -> np.ndarray:
    model.fc = nn.Identity()
    with torch.no_grad():
        return model.eval()(source.prepare_inputs(X)).numpy()


@pytest.fixture(autouse=True)
def _empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Library caches that hold nothing, so no test sees the user's own."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        import huggingface_hub.constants as constants
    except ImportError:
        return
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


def test_specs_parse() -> None:
    assert parse_pretrained_spec("timm:resnet18") == PretrainedSpec("timm", "resnet18")
    assert parse_pretrained_spec("open_clip:ViT-B-32:laion2b@/w.bin") == PretrainedSpec(
        "open_clip", "ViT-B-32", "laion2b", Path("/w.bin"))
    assert parse_pretrained_spec("torchvision:resnet50@w.pth").path == Path("w.pth")
    for bad in ("timm:", "keras:resnet", "timm:a:b", "timm:resnet18@", "open_clip:arch:"):
        with pytest.raises(ConfigError, match="features"):
            parse_pretrained_spec(bad)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_timm_weights_from_a_file_are_the_ones_used(tmp_path: Path, suffix: str) -> None:
    model, path = saved(tmp_path, num_classes=5, suffix=suffix)  # its classifier is left out
    source = PretrainedSource(f"timm:tiny@{path}", library=fake_timm(), threads=1)
    features = source.transform(IMAGES)
    assert features.shape == (5, 6) and source.dim == 6
    np.testing.assert_allclose(features, reference(model, source, IMAGES), rtol=1e-5,
                               atol=1e-6)
    assert source.input_size == 16
    assert source.prepare_inputs(IMAGES).shape == (5, 3, 16, 16)
    (tmp_path / "b").mkdir()
    _, other = saved(tmp_path / "b", 5, seed=2, suffix=suffix)
    from_other = PretrainedSource(f"timm:tiny@{other}", library=fake_timm())
    assert not np.allclose(from_other.transform(IMAGES), features)
    assert from_other.id != source.id


def test_normalisation_is_the_models(tmp_path: Path) -> None:
    _, path = saved(tmp_path, 0)
    source = PretrainedSource(f"timm:tiny@{path}", library=fake_timm(), image_size=12)
    x = source.prepare_inputs(np.full((1, 1, 12, 12), 0.5, dtype=np.float32))
    expected = (0.5 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expected, rtol=1e-6)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "nope.pt"))):
        PretrainedSource(f"timm:tiny@{tmp_path / 'nope.pt'}", library=fake_timm())


def test_an_unknown_model_is_named(tmp_path: Path) -> None:
    _, path = saved(tmp_path, 0)
    with pytest.raises(ConfigError, match="no model 'resnet999'"):
        PretrainedSource(f"timm:resnet999@{path}", library=fake_timm())


def test_another_models_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ConfigError, match="does not hold this model's weights"):
        PretrainedSource(f"timm:tiny@{path}", library=fake_timm())
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable weights file"):
        PretrainedSource(f"timm:tiny@{path}", library=fake_timm())


def test_no_file_and_an_empty_cache_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        PretrainedSource("timm:tiny", library=fake_timm())
    message = str(info.value)
    assert "tiny-1234.pth" in message and "timm:tiny@/path/to/weights" in message
    assert str(tmp_path / "torch-hub") in message


def test_the_torch_hub_cache_is_read_when_it_holds_the_file(tmp_path: Path) -> None:
    model, _ = saved(tmp_path, 5)
    cached = tmp_path / "torch-hub" / "checkpoints" / "tiny-1234.pth"
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    source = PretrainedSource("timm:tiny", library=fake_timm())
    assert source.weights_path == cached
    np.testing.assert_allclose(source.transform(IMAGES), reference(model, source, IMAGES),
                               rtol=1e-5, atol=1e-6)


def test_torchvision_drops_its_classifier(tmp_path: Path) -> None:
    model, path = saved(tmp_path, 10)
    source = PretrainedSource(f"torchvision:tiny@{path}", library=fake_torchvision())
    assert source.input_size == 224 and source.dim == 6
    np.testing.assert_allclose(source.transform(IMAGES), reference(model, source, IMAGES),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match=re.escape("tiny-9.pth")):
        PretrainedSource("torchvision:tiny", library=fake_torchvision())


def test_open_clip_uses_encode_image_and_its_preprocess_config(tmp_path: Path) -> None:
    model, path = saved(tmp_path, 4)
    source = PretrainedSource(f"open_clip:tiny@{path}", library=fake_open_clip())
    assert source.input_size == 20
    np.testing.assert_allclose(source.transform(IMAGES), model.eval()(
        source.prepare_inputs(IMAGES)).detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="laion/tiny"):
        PretrainedSource("open_clip:tiny:laion", library=fake_open_clip())
    with pytest.raises(ConfigError, match="no weights 'openai'"):
        PretrainedSource("open_clip:tiny:openai", library=fake_open_clip())
    with pytest.raises(ConfigError, match="tag"):
        PretrainedSource("open_clip:tiny", library=fake_open_clip())


def _real(library: str):  # type: ignore[no-untyped-def]
    try:
        return import_library(library)
    except ConfigError as exc:
        pytest.skip(f"{library} does not import here: {exc}")


def test_real_timm_loads_a_saved_model_by_path(tmp_path: Path) -> None:
    timm = _real("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    torch.save(model.state_dict(), tmp_path / "r.pt")
    source = PretrainedSource(f"timm:resnet10t@{tmp_path / 'r.pt'}", image_size=32)
    model.reset_classifier(0)
    with torch.no_grad():
        expected = model.eval()(source.prepare_inputs(IMAGES)).numpy()
    np.testing.assert_allclose(source.transform(IMAGES), expected, rtol=1e-4, atol=1e-5)


def test_real_torchvision_loads_a_saved_model_by_path(tmp_path: Path) -> None:
    torchvision = _real("torchvision")
    model = torchvision.models.get_model("resnet18", weights=None)
    torch.save(model.state_dict(), tmp_path / "r.pth")
    source = PretrainedSource(f"torchvision:resnet18@{tmp_path / 'r.pth'}", image_size=32)
    model.fc = nn.Identity()
    with torch.no_grad():
        expected = model.eval()(source.prepare_inputs(IMAGES)).numpy()
    np.testing.assert_allclose(source.transform(IMAGES), expected, rtol=1e-4, atol=1e-5)


def test_real_open_clip_loads_a_saved_model_by_path(tmp_path: Path) -> None:
    open_clip = _real("open_clip")
    model = open_clip.create_model("ViT-S-32", pretrained=None)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    source = PretrainedSource(f"open_clip:ViT-S-32@{tmp_path / 'clip.pt'}")
    with torch.no_grad():
        expected = model.eval().encode_image(source.prepare_inputs(IMAGES)).numpy()
    np.testing.assert_allclose(source.transform(IMAGES), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="image_size unset"):  # fixed position embeddings
        PretrainedSource(f"open_clip:ViT-S-32@{tmp_path / 'clip.pt'}", image_size=64)


def test_a_library_that_does_not_import_is_a_config_error() -> None:
    try:
        import_library("timm")
    except ConfigError as exc:
        assert "pip install" in str(exc)


def test_make_source_builds_pretrained_sources() -> None:
    with pytest.raises(ConfigError):
        make_source("timm:tiny@/no/such/file.pt")
