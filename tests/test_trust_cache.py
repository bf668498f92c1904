"""A cache is trusted no more than its owner: an entry planted by another user, or writable
by others, is never read (its manifest recomputed or not), and an image-folder cache is
checked against the files it claims to hold."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activegen._cache import ArtifactCache, write_manifest
from activegen.data.unlabeled import load_unlabeled_images
from activegen.server.images import folder_cache

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX owners and modes")


class Marker:
    """Unpickling it touches a file: what a planted pickle could do with os.system."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def _plant(entry: Path, value: bytes, kind: str) -> None:
    entry.mkdir(parents=True)
    (entry / "model.pkl").write_bytes(value)
    write_manifest(entry, kind, entry.name)  # the checksum recomputed, as an attacker would


def _cache(root: Path, shared: Path | None = None) -> ArtifactCache:
    return ArtifactCache(root, "experts", what="expert", main_file="model.pkl", shared=shared)


def _honest(folder: Path) -> str:
    (folder / "model.pkl").write_bytes(pickle.dumps("honest"))
    return "honest"


def _load(entry: Path) -> object:
    return pickle.loads((entry / "model.pkl").read_bytes())


@posix_only
@pytest.mark.parametrize("how", ["writable-by-others", "another-owner"])
def test_3_a_planted_shared_entry_is_never_read(tmp_path: Path, how: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "unpickled"
    shared = tmp_path / "shared"
    planted = shared / "experts" / "k1"
    _plant(planted, pickle.dumps(Marker(marker)), "experts")
    if how == "writable-by-others":
        for path in (planted, *planted.iterdir()):
            os.chmod(path, 0o777 if path.is_dir() else 0o666)
    else:
        if os.geteuid() != 0:
            pytest.skip("making a file another user's needs root")
        for path in (planted, *planted.iterdir()):
            os.chown(path, 4242, 4242)
    with caplog.at_level(logging.WARNING, logger="activegen._cache"):
        value, loaded = _cache(tmp_path / "own", shared).load_or_build("k1", _honest, _load)
    assert (value, loaded) == ("honest", False)
    assert not marker.exists()
    assert "is not used (a cache is trusted no more than its owner)" in caplog.text
    assert str(planted) in caplog.text
    assert (planted / "model.pkl").read_bytes() == pickle.dumps(Marker(marker))  # not ours


@posix_only
def test_3_an_entry_planted_in_ones_own_cache_is_rebuilt_not_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "unpickled"
    entry = tmp_path / "own" / "experts" / "k1"
    _plant(entry, pickle.dumps(Marker(marker)), "experts")
    os.chmod(entry / "model.pkl", 0o666)
    with caplog.at_level(logging.WARNING, logger="activegen._cache"):
        value, loaded = _cache(tmp_path / "own").load_or_build("k1", _honest, _load)
    assert (value, loaded) == ("honest", False) and not marker.exists()
    assert "writable by other users (mode 666)" in caplog.text
    assert _cache(tmp_path / "own").load_or_build("k1", _honest, _load) == ("honest", True)


def test_3_an_entry_moved_under_another_key_is_damage(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    cache = _cache(tmp_path)
    cache.load_or_build("k1", lambda f: (f / "model.pkl").write_bytes(pickle.dumps("one")),
                        _load)
    os.replace(cache.entry("k1"), cache.entry("k2"))
    with caplog.at_level(logging.WARNING, logger="activegen._cache"):
        assert cache.load_or_build("k2", _honest, _load) == ("honest", False)
    assert "made for entry experts/k1, not this one" in caplog.text


@posix_only
def test_3_own_entries_pass_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        _cache(tmp_path).load_or_build("k1", _honest, _load)
    finally:
        os.umask(old)
    entry = _cache(tmp_path).entry("k1")
    assert {oct(p.stat().st_mode & 0o777) for p in entry.iterdir()} == {oct(0o644)}
    assert _cache(tmp_path).load_or_build("k1", _honest, _load) == ("honest", True)


# -- the image-folder cache ---------------------------------------------------------------
def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(12):  # class 0 dark, class 1 bright
        shade = 30 if i % 2 else 220
        Image.new("RGB", (20, 20), (shade, shade, shade)).save(root / f"img{i:02d}.png")
    return root


def test_3_a_swapped_folder_cache_is_caught_by_its_pixels(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, cache = _folder(tmp_path), tmp_path / "cache"
    truth = load_unlabeled_images(root, 16, 3)
    key = folder_cache.folder_key(root, 16, 3)
    # planted: the right key, a recomputed SHA-256, every image's pixels swapped with its
    # neighbour's (a learner trained on it scores 0.50 instead of 1.00)
    swapped = truth.X[np.arange(len(truth.X)) ^ 1]
    folder_cache._write(cache / f"folder-{key[:24]}.npz", {"X": swapped},
                        {"key": key, "paths": truth.paths, "skipped": []})
    with caplog.at_level(logging.WARNING, logger="activegen.server.images.folder_cache"):
        loaded = folder_cache.load_images_cached(root, 16, 3, cache)[0]
    assert "disagrees with the folder" in caplog.text and "are not that file's" in caplog.text
    np.testing.assert_array_equal(loaded.X, truth.X)


def test_3_a_folder_cache_naming_other_files_is_not_used(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, cache = _folder(tmp_path), tmp_path / "cache"
    truth = load_unlabeled_images(root, 16, 3)
    key = folder_cache.folder_key(root, 16, 3)
    paths = [*truth.paths[:-1], "../../etc/passwd"]
    folder_cache._write(cache / f"folder-{key[:24]}.npz", {"X": truth.X},
                        {"key": key, "paths": paths, "skipped": []})
    with caplog.at_level(logging.WARNING, logger="activegen.server.images.folder_cache"):
        loaded = folder_cache.load_images_cached(root, 16, 3, cache)[0]
    assert "names other files than the folder holds" in caplog.text
    assert loaded.paths == truth.paths


@posix_only
def test_3_a_folder_cache_file_others_may_write_is_not_used(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, cache = _folder(tmp_path), tmp_path / "cache"
    folder_cache.load_images_cached(root, 16, 3, cache)
    (written,) = cache.glob("folder-*.npz")
    assert written.stat().st_mode & 0o777 == 0o644
    os.chmod(written, 0o666)
    with caplog.at_level(logging.WARNING, logger="activegen.server.images.folder_cache"):
        folder_cache.load_images_cached(root, 16, 3, cache)
    assert f"{written}: writable by other users" in caplog.text



@posix_only
def test_3_a_shared_entry_swapped_after_its_check_is_not_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "unpickled"
    shared = tmp_path / "shared"
    planted = shared / "experts" / "k1"
    _plant(planted, pickle.dumps(Marker(marker)), "experts")
    for path in (planted, *planted.iterdir()):
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    # the folder passed its check, then was swapped: each file is checked again as it is read
    monkeypatch.setattr(ArtifactCache, "_trusted", lambda self, entry, where: True)
    with caplog.at_level(logging.WARNING, logger="activegen._cache"):
        value, loaded = _cache(tmp_path / "own", shared).load_or_build("k1", _honest, _load)
    assert (value, loaded) == ("honest", False) and not marker.exists()
    assert "could not copy" in caplog.text and "writable by other users" in caplog.text
