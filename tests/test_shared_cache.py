"""The shared generator cache: a second experiment with the same pool and settings reuses the
generator the first trained (copied into its own cache), instead of training again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import activegen.generative.cache as cache_mod
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, load_or_train
from activegen.generative.cache import shared_cache_dir

TINY = GeneratorSettings(epochs=1, width=8, latent_dim=8, batch_size=32)


def test_second_cache_copies_from_the_shared_one_without_training(tmp_path: Path,
                                                                  monkeypatch) -> None:
    X = load_dataset("digits").select_classes([5, 7]).to_float()[:64]
    shared = tmp_path / "shared"
    first = load_or_train(X, TINY, tmp_path / "a", shared_dir=shared)
    assert not first.loaded_from_cache
    assert (shared / "generators" / first.key / "model.pt").is_file()

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("trained again")

    monkeypatch.setattr(cache_mod, "train_gan", no_training)
    cache_mod._MEMORY.clear()
    second = load_or_train(X, TINY, tmp_path / "b", shared_dir=shared)
    assert second.key == first.key and second.loaded_from_cache
    assert (tmp_path / "b" / "generators" / first.key / "settings.json").is_file()
    for p, q in zip(first.generator.state_dict().values(),
                    second.generator.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    # other data: a new key, not in the shared cache, so it would train
    with pytest.raises(AssertionError, match="trained again"):
        load_or_train(np.flip(X, axis=3).copy(), TINY, tmp_path / "c", shared_dir=shared)


def test_shared_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACTIVEGEN_CACHE", str(tmp_path))
    assert shared_cache_dir() == tmp_path
    monkeypatch.setenv("ACTIVEGEN_CACHE", "off")
    assert shared_cache_dir() is None
    monkeypatch.delenv("ACTIVEGEN_CACHE")
    assert shared_cache_dir() == Path.home() / ".cache" / "activegen"
