"""A saved query file and a generator / VAE cache entry, truncated or overwritten with garbage,
are detected and named, then recomputed (generator) or refused (query file, VAE), never
silently used (the other files a run writes: test_failures.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from activegen.data import load_dataset
from activegen.errors import DataError
from activegen.experiments.config import parse_config
from activegen.experiments.gallery import load_round, query_gallery
from activegen.experiments.runner import run_experiment
from activegen.generative import cache as gen_cache
from activegen.generative.training import GeneratorSettings
from activegen.generative.vae import VAESettings, load_or_train_vae, vae_cache_path

TINY_GAN = GeneratorSettings(epochs=2, latent_dim=4, width=8, batch_size=32)
TINY_VAE = VAESettings(latent_dim=4, width=4, epochs=1)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage-head":
        path.write_bytes(b"\xde\xad\xbe\xef" * 16 + data[64:])
    elif how == "garbage-middle":  # same length, the zip directory intact: a CRC must catch it
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes(32) + data[i + 32:])
    else:
        raise AssertionError(how)


@pytest.fixture(scope="module")
def pool_images() -> np.ndarray:
    return load_dataset("digits").select_classes([3, 8]).to_float()[:96]


@pytest.fixture(scope="module")
def finished_out(tmp_path_factory) -> Path:
    config = parse_config({
        "name": "tiny", "seeds": [0], "supervised": False,
        "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.3},
        "loop": {"initial": 4, "batch": 4, "budget": 12},
        "strategies": [{"name": "margin"}],
    }, "exp.toml")
    out = tmp_path_factory.mktemp("out")
    run_experiment(config, out, progress=False)
    return out


@pytest.mark.parametrize("how", ["truncated", "garbage-head", "garbage-middle"])
def test_damaged_query_file_is_refused_naming_it(finished_out: Path, tmp_path: Path,
                                                 how: str) -> None:
    good = load_round(finished_out, "margin__seed0", 1)
    assert len(good["labels"]) == 4  # the file is read whole when intact
    path = finished_out / "queries" / "margin__seed0" / "round_0001.npz"
    original = path.read_bytes()
    try:
        _damage(path, how)
        with pytest.raises(DataError, match=r"round_0001\.npz: damaged query file"):
            load_round(finished_out, "margin__seed0", 1)
        with pytest.raises(DataError, match=r"round_0001\.npz: damaged query file"):
            query_gallery(finished_out, "margin__seed0", [1], tmp_path / "g.png")
        assert not (tmp_path / "g.png").exists()  # refused before anything is written
    finally:
        path.write_bytes(original)


def _state(gen: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in gen.state_dict().items()}


@pytest.mark.parametrize("how", ["truncated", "garbage-head", "garbage-middle"])
def test_damaged_generator_cache_is_named_and_retrained(pool_images: np.ndarray, tmp_path: Path,
                                                        caplog, how: str) -> None:
    first = gen_cache.load_or_train(pool_images, TINY_GAN, tmp_path)
    assert not first.loaded_from_cache
    reference = _state(first.generator)
    model = first.path / "model.pt"
    _damage(model, how)
    gen_cache._MEMORY.clear()  # a new process: only the file is left
    with caplog.at_level(logging.WARNING, logger="activegen"):
        again = gen_cache.load_or_train(pool_images, TINY_GAN, tmp_path)
    assert f"{model}: damaged generator cache file" in caplog.text
    assert not again.loaded_from_cache  # retrained, not loaded from the damaged file
    assert again.path == first.path and model.is_file()
    gen_cache._MEMORY.clear()
    third = gen_cache.load_or_train(pool_images, TINY_GAN, tmp_path)
    assert third.loaded_from_cache  # the rewritten entry is whole again
    state = _state(third.generator)
    assert state.keys() == reference.keys()
    for name, tensor in state.items():  # same seed, same data: the same generator
        torch.testing.assert_close(tensor, reference[name], msg=name)


def test_damaged_shared_generator_copy_is_named_retrained_and_replaced(
        pool_images: np.ndarray, tmp_path: Path, caplog) -> None:
    shared = tmp_path / "shared"
    first = gen_cache.load_or_train(pool_images, TINY_GAN, tmp_path / "a", shared_dir=shared)
    shared_model = shared / "generators" / first.key / "model.pt"
    assert shared_model.is_file()
    _damage(shared_model, "truncated")
    gen_cache._MEMORY.clear()
    with caplog.at_level(logging.WARNING, logger="activegen"):
        second = gen_cache.load_or_train(pool_images, TINY_GAN, tmp_path / "b", shared_dir=shared)
    assert "damaged generator cache file" in caplog.text and first.key in caplog.text
    assert not second.loaded_from_cache
    torch.load(shared_model, weights_only=True)  # the shared copy was replaced by a whole one


@pytest.mark.parametrize("how", ["truncated", "garbage-head", "garbage-middle"])
def test_damaged_vae_cache_is_refused_naming_it(pool_images: np.ndarray, tmp_path: Path,
                                                how: str) -> None:
    load_or_train_vae(pool_images, tmp_path, TINY_VAE, seed=0)
    path = vae_cache_path(tmp_path, pool_images, TINY_VAE, 0)
    assert path.is_file()
    load_or_train_vae(pool_images, tmp_path, TINY_VAE, seed=0)  # intact: loads
    _damage(path, how)
    with pytest.raises(DataError, match=r"vaes/[0-9a-f]+/model\.pt: damaged VAE cache file"):
        load_or_train_vae(pool_images, tmp_path, TINY_VAE, seed=0)
