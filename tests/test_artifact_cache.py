"""The one artifact cache (activegen._cache) and the one data fingerprint: built once under a
lock even by two processes at once, whole or not at all, every file checked on load; each
key the hash of what decides its entry (a generator's: the pool, its settings, its seed and
the cache version)."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from activegen._cache import MANIFEST, ArtifactCache, content_key, data_fingerprint
from activegen.data import load_dataset
from activegen.errors import DataError

SRC = Path(__file__).resolve().parents[1] / "src" / "activegen"


def _build_bytes(payload: bytes, log_file: Path | None = None, delay: float = 0.0):
    def build(folder: Path) -> bytes:
        if log_file is not None:  # one line per build, appended atomically (O_APPEND)
            with open(log_file, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        time.sleep(delay)
        (folder / "blob.bin").write_bytes(payload)
        (folder / "note.txt").write_text("built")
        return payload
    return build


def _load_bytes(entry: Path) -> bytes:
    return (entry / "blob.bin").read_bytes()


def test_builds_once_then_loads_and_lists_every_file_in_the_manifest(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, "blobs", main_file="blob.bin")
    value, loaded = cache.load_or_build("k1", _build_bytes(b"abc"), _load_bytes)
    assert (value, loaded) == (b"abc", False)
    value, loaded = cache.load_or_build("k1", _build_bytes(b"other"), _load_bytes)
    assert (value, loaded) == (b"abc", True)  # the entry, not a second build
    entry = cache.entry("k1")
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["files"] == {
        name: hashlib.sha256((entry / name).read_bytes()).hexdigest()
        for name in ("blob.bin", "note.txt")
    }
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["k1"]  # no temporaries


@pytest.mark.parametrize("damage", ["overwrite-inside", "truncate", "delete", "manifest"])
def test_a_damaged_entry_is_named_removed_and_built_again(tmp_path: Path, caplog,
                                                          damage: str) -> None:
    cache = ArtifactCache(tmp_path, "blobs", what="blob", main_file="blob.bin")
    payload = bytes(range(256)) * 4
    cache.load_or_build("k", _build_bytes(payload), _load_bytes)
    target = cache.entry("k") / ("blob.bin" if damage != "manifest" else MANIFEST)
    data = target.read_bytes()
    if damage == "overwrite-inside":  # same length: only the SHA-256 can tell
        target.write_bytes(data[:100] + bytes(8) + data[108:])
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text("{not json")
    builds = tmp_path / "builds.log"
    with caplog.at_level(logging.WARNING, logger="activegen"):
        value, loaded = cache.load_or_build("k", _build_bytes(payload, builds), _load_bytes)
    assert f"{target}: damaged blob cache file" in caplog.text
    assert (value, loaded) == (payload, False) and len(builds.read_text().split()) == 1
    cache.verify(cache.entry("k"))  # whole again


def test_refuse_policy_names_the_file_and_keeps_the_entry(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, "blobs", what="blob", main_file="blob.bin",
                          on_damaged="refuse")
    cache.load_or_build("k", _build_bytes(b"x" * 64), _load_bytes)
    blob = cache.entry("k") / "blob.bin"
    blob.write_bytes(b"y" * 64)
    with pytest.raises(DataError, match=r"blobs/k/blob\.bin: damaged blob cache file"):
        cache.load_or_build("k", _build_bytes(b"x" * 64), _load_bytes)
    assert blob.read_bytes() == b"y" * 64  # refused, not silently replaced


def test_a_failed_build_leaves_no_entry_and_no_temporary(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path, "blobs", main_file="blob.bin")

    def failing(folder: Path) -> bytes:
        (folder / "blob.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        cache.load_or_build("k", failing, _load_bytes)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_the_shared_cache_is_copied_from_and_published_to(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    a = ArtifactCache(tmp_path / "a", "blobs", main_file="blob.bin", shared=shared)
    a.load_or_build("k", _build_bytes(b"v"), _load_bytes)
    assert (shared / "blobs" / "k" / "blob.bin").read_bytes() == b"v"
    b = ArtifactCache(tmp_path / "b", "blobs", main_file="blob.bin", shared=shared)
    builds = tmp_path / "builds.log"
    value, loaded = b.load_or_build("k", _build_bytes(b"v", builds), _load_bytes)
    assert (value, loaded) == (b"v", True) and not builds.exists()  # copied, not built
    b.verify(b.entry("k"))


# -- two processes at once ------------------------------------------------------------------
def _build_in_child(root: str, log_file: str, start: object, out: str) -> None:
    start.wait(60)  # type: ignore[attr-defined]
    cache = ArtifactCache(Path(root), "blobs", main_file="blob.bin")
    value, _ = cache.load_or_build("same", _build_bytes(b"z" * 4096, Path(log_file), 1.0),
                                   _load_bytes)
    Path(out).write_bytes(value)


def _prepare_basis_in_child(root: str, log_file: str, start: object, out: str) -> None:
    from activegen.models.self_taught import SelfTaughtSVM

    learn = SelfTaughtSVM._learn_basis

    def counted(self, flat):  # type: ignore[no-untyped-def]
        with open(log_file, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # widen the window in which the other process could interfere
        return learn(self, flat)

    SelfTaughtSVM._learn_basis = counted  # type: ignore[method-assign]
    X = load_dataset("digits").select_classes([3, 8]).to_float()[:120]
    start.wait(60)  # type: ignore[attr-defined]
    learner = SelfTaughtSVM(2, n_components=8, basis_iterations=2)
    learner.prepare(X, Path(root))
    np.save(out, learner._codes(X[:10]))


def _run_two(target, tmp_path: Path) -> tuple[Path, list[Path]]:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    log_file = tmp_path / "builds.log"
    outs = [tmp_path / f"out{i}.npy" for i in range(2)]
    procs = [context.Process(target=target, args=(str(tmp_path / "cache"), str(log_file),
                                                  start, str(out))) for out in outs]
    for proc in procs:
        proc.start()
    time.sleep(0.5)
    start.set()
    for proc in procs:
        proc.join(180)
        assert proc.exitcode == 0
    return log_file, outs


def test_two_processes_building_one_entry_build_it_once(tmp_path: Path) -> None:
    log_file, outs = _run_two(_build_in_child, tmp_path)
    assert len(log_file.read_text().split()) == 1  # the second waited for the first's entry
    assert [o.read_bytes() for o in outs] == [b"z" * 4096] * 2
    cache = ArtifactCache(tmp_path / "cache", "blobs", main_file="blob.bin")
    assert [p.name for p in (tmp_path / "cache" / "blobs").iterdir()] == ["same"]
    cache.verify(cache.entry("same"))


def test_two_processes_preparing_one_self_taught_basis_learn_it_once(tmp_path: Path) -> None:
    log_file, outs = _run_two(_prepare_basis_in_child, tmp_path)
    assert len(log_file.read_text().split()) == 1
    entries = list((tmp_path / "cache" / "bases").iterdir())
    assert len(entries) == 1 and entries[0].is_dir()  # one entry, no temporary left
    ArtifactCache(tmp_path / "cache", "bases", main_file="basis.pkl").verify(entries[0])
    np.testing.assert_array_equal(np.load(outs[0]), np.load(outs[1]))


# -- one fingerprint, keys unchanged --------------------------------------------------------
def test_there_is_one_data_fingerprint_function() -> None:
    defined = [str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "data_fingerprint"]
    assert defined == ["_cache.py"]
    from activegen.generative import data_fingerprint as exported

    assert exported is data_fingerprint


def test_the_fingerprint_sees_shape_dtype_and_every_byte() -> None:
    X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    base = data_fingerprint(X)
    assert data_fingerprint(X.copy()) == base
    assert data_fingerprint(np.asfortranarray(X)) == base  # same values, any memory layout
    assert data_fingerprint(X.reshape(3, 2, 4)) != base
    assert data_fingerprint(X.astype(np.float64)) != base
    for i in range(X.size):
        changed = X.copy().reshape(-1)
        changed[i] += 1
        assert data_fingerprint(changed.reshape(X.shape)) != base


def _key_by_hand(payload: dict) -> str:
    """A key written out: the first 24 hex digits of the SHA-256 of the payload's sorted JSON."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _fingerprint_by_hand(X: np.ndarray) -> str:
    """A data fingerprint written out: the SHA-256 of the shape and dtype, then the bytes."""
    X = np.ascontiguousarray(X)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(X.shape), str(X.dtype)]).encode())
    digest.update(X.tobytes())
    return digest.hexdigest()


def test_generator_and_expert_keys_hash_what_decides_the_entry() -> None:
    from activegen.generative.cache import CACHE_VERSION, cache_key
    from activegen.generative.training import GeneratorSettings

    pool = load_dataset("digits").select_classes([5, 7])
    X = pool.to_float()
    assert data_fingerprint(X) == _fingerprint_by_hand(X)
    settings = GeneratorSettings(epochs=1, latent_dim=4, width=8)
    assert cache_key(X, settings, 3) == _key_by_hand({
        "data": _fingerprint_by_hand(X), "settings": settings.model_dump(), "seed": 3,
        "version": CACHE_VERSION})
    expert = {"data": _fingerprint_by_hand(pool.X), "labels": _fingerprint_by_hand(pool.y),
              "C": 10.0, "version": 1}
    assert content_key(expert) == _key_by_hand(expert)
