"""A cached generator records the machine that trained it: its weights carry that machine's
float kernels, so a run that loads it on another kind of machine (a shared or copied cache)
is told, and ``activegen gaal-quality`` names the machine."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from activegen._cache import MANIFEST
from activegen._machine import machine_record
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, load_or_train
from activegen.generative.cache import trained_on

TINY = GeneratorSettings(epochs=1, width=8, latent_dim=8, batch_size=32)
SEED = 11


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    X = load_dataset("digits").select_classes([1, 8]).to_float()[:48]
    root = tmp_path_factory.mktemp("trained_on")
    return X, root, load_or_train(X, TINY, root / "a", SEED)


def _copy_as_if_trained_on(source: Path, target_root: Path, key: str,
                           record: dict[str, str] | None) -> None:
    """Copy a cache entry, its ``trained_on`` replaced (or removed: an entry from before it
    was recorded), with its manifest's checksum updated as the writer would have made it."""
    target = target_root / "generators" / key
    shutil.copytree(source, target)
    meta = json.loads((target / "settings.json").read_text())
    if record is None:
        meta.pop("trained_on")
    else:
        meta["trained_on"] = record
    (target / "settings.json").write_text(json.dumps(meta))
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["files"]["settings.json"] = hashlib.sha256(
        (target / "settings.json").read_bytes()).hexdigest()
    (target / MANIFEST).write_text(json.dumps(manifest))


def test_a_trained_generator_records_this_machine(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, cached = trained
    assert not cached.loaded_from_cache
    assert trained_on(cached.report) == machine_record("cpu")
    on_disk = json.loads((cached.path / "settings.json").read_text())
    assert on_disk["trained_on"] == machine_record("cpu")


def test_a_generator_trained_on_another_kind_is_named_once(
        trained, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    X, _, cached = trained
    other = {**machine_record(), "cpu": "Other CPU", "cpu_capability": "OTHER_ISA"}
    for name in ("b", "c"):
        _copy_as_if_trained_on(cached.path, tmp_path / name, cached.key, other)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        loaded = load_or_train(X, TINY, tmp_path / "b", SEED)
        again = load_or_train(X, TINY, tmp_path / "c", SEED)
    assert loaded.loaded_from_cache and again.loaded_from_cache  # used, not retrained
    assert trained_on(loaded.report) == other
    warnings = [r.getMessage() for r in caplog.records if cached.key in r.getMessage()]
    assert len(warnings) == 1
    assert "trained on another kind of machine or with another thread count" in warnings[0]
    assert "OTHER_ISA" in warnings[0] and machine_record()["cpu_capability"] in warnings[0]


@pytest.mark.parametrize("record", [None, "same"])
def test_a_generator_of_this_kind_or_of_unknown_origin_is_not_named(
        trained, tmp_path: Path, caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
        record: str | None) -> None:
    X, _, _ = trained
    # a generator of its own (another seed, another key), so that no earlier test's warning
    # for the shared key can hide one here
    seed = 12 if record is None else 13
    cached = load_or_train(X, TINY, tmp_path / "own", seed)
    same = {**machine_record(), "python": "another patch release"}  # not a result field
    _copy_as_if_trained_on(cached.path, tmp_path / "d", cached.key,
                           same if record == "same" else None)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        loaded = load_or_train(X, TINY, tmp_path / "d", seed)
    assert loaded.loaded_from_cache
    assert "trained on another kind" not in caplog.text
    assert trained_on(loaded.report) == (same if record == "same" else None)


def test_a_generator_trained_with_another_thread_count_is_named(
        trained, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """The thread count changes float results as kernels do (``execution.threads`` is not
    part of a folder's fingerprint, so a cache can hold a generator trained with another)."""
    from activegen._machine import THREADS

    X, _, _ = trained
    cached = load_or_train(X, TINY, tmp_path / "own", 14)
    here = machine_record("cpu")
    _copy_as_if_trained_on(cached.path, tmp_path / "e", cached.key,
                           {**here, THREADS: str(int(here[THREADS]) + 1)})
    with caplog.at_level(logging.WARNING, logger="activegen"):
        load_or_train(X, TINY, tmp_path / "e", 14)
    assert f"generator {cached.key} was trained on another kind of machine or with another " \
           "thread count" in caplog.text
