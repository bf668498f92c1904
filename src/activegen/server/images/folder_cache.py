"""A disk cache of an image folder's decoded images and features, so reopening is quick.

Opening a session on 10,000 photos decodes and resizes every file, and a backbone runs a
ResNet over all of them. Both depend only on the files' bytes and the settings, so they are
kept in ``<cache_dir>/folder-<key>.npz`` (the decoded ``uint8`` images, the readable files'
names and the skipped ones) and ``<cache_dir>/features-<key>.npz`` (a backbone's raw,
unstandardised features), where the key hashes every file's relative path and SHA-256 with the
size and channel count (and the extractor's id for features). A changed, added or removed
file changes the key. Files are written atomically and read with ``allow_pickle=False``; each
carries the SHA-256 of its arrays, checked on load: a damaged or foreign cache file is logged
and rebuilt, never trusted. Pixels and the VAE need no features cache (pixels are the images;
the VAE has its own cache in :mod:`activegen.generative.vae`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from activegen._atomic import atomic_write_bytes
from activegen._cache import arrays_digest
from activegen.data.unlabeled import (
    UNLABELED_EXTENSIONS,
    UnlabeledImages,
    list_image_files,
    load_unlabeled_images,
)
from activegen.models.features import FeatureExtractor

log = logging.getLogger(__name__)
_VERSION = 1


def folder_key(root: Path, size: int, channels: int) -> str:
    """SHA-256 over every image file's relative path and content hash, and the settings."""
    digest = hashlib.sha256(f"v{_VERSION} size={size} channels={channels}\n".encode())
    for path in list_image_files(root, UNLABELED_EXTENSIONS):
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        name = path.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
        digest.update(name + f"\0{content}\n".encode())
    return digest.hexdigest()


def _write(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    header = {**meta, "version": _VERSION, "sha256": arrays_digest(arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path, names: set[str], key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and header of a cache file, or None (absent, or damaged: logged)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(data.files) != names | {"header"}:
                raise ValueError(f"arrays {sorted(data.files)}")
            arrays = {k: data[k] for k in names}
            header = json.loads(data["header"].astype(np.uint8).tobytes().decode())
        if header.get("version") != _VERSION or header.get("key") != key:
            raise ValueError("another version or key")
        if header.get("sha256") != arrays_digest(arrays):
            raise ValueError("its arrays do not match their SHA-256")
    except Exception as exc:  # a damaged file of any kind: rebuild it
        log.warning("%s: damaged cache file (%s); rebuilding it", path, exc)
        return None
    return arrays, header


def load_images_cached(root: str | Path, size: int, channels: int, cache_dir: Path | None
                       ) -> tuple[UnlabeledImages, str]:
    """:func:`load_unlabeled_images` through the cache; also the folder's key.

    Raises:
        DataError: as :func:`load_unlabeled_images` (no folder, no readable image).
    """
    root = Path(root)
    if cache_dir is None or not root.is_dir():
        return load_unlabeled_images(root, size, channels), ""
    key = folder_key(root, size, channels)
    path = Path(cache_dir) / f"folder-{key[:24]}.npz"
    cached = _read(path, {"X"}, key)
    if cached is not None:
        arrays, header = cached
        paths, skipped = header["paths"], [tuple(s) for s in header["skipped"]]
        if arrays["X"].shape == (len(paths), size, size, channels) and paths:
            return UnlabeledImages(arrays["X"], list(paths), skipped), key
        log.warning("%s: cache file disagrees with its names; rebuilding it", path)
    loaded = load_unlabeled_images(root, size, channels)
    _write(path, {"X": loaded.X}, {"key": key, "paths": loaded.paths,
                                  "skipped": [list(s) for s in loaded.skipped]})
    return loaded, key


def raw_features_cached(extractor: FeatureExtractor, images: np.ndarray, key: str,
                        cache_dir: Path | None) -> np.ndarray | None:
    """A backbone's raw features of a cached folder's images (computed once); None for other
    extractors (their features are cheap, or cached elsewhere) or without a key."""
    if extractor.kind != "backbone" or not key or cache_dir is None:
        return None
    feature_key = hashlib.sha256(f"{key}\0{extractor.id}".encode()).hexdigest()
    path = Path(cache_dir) / f"features-{feature_key[:24]}.npz"
    cached = _read(path, {"raw"}, feature_key)
    if cached is not None and len(cached[0]["raw"]) == len(images):
        return cached[0]["raw"]
    raw = extractor.raw(images)
    _write(path, {"raw": raw}, {"key": feature_key})
    return raw

