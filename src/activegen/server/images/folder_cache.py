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

The SHA-256 inside a cache file vouches only for itself: whoever can write the file can
recompute it. So a cache file is trusted no more than its owner
(:func:`activegen._cache.untrusted_reason`: this user's, writable by nobody else), and what it
claims is checked against the folder: its names must be exactly the folder's image files, and
:data:`SPOT_CHECKS` images drawn at random (unpredictably, each time) are decoded again and
must equal its pixels (a backbone's features of them must match too). A cache file that fails
is named in a warning and rebuilt. A cache folder that cannot be written (read-only, full) only
costs the speed-up: the session opens without it, with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from pathlib import Path

import numpy as np

from activegen._atomic import atomic_write_bytes
from activegen._cache import FILE_MODE, arrays_digest, untrusted_reason
from activegen.data.unlabeled import (
    UNLABELED_EXTENSIONS,
    UnlabeledImages,
    UnreadableImage,
    list_image_files,
    load_unlabeled_images,
    printable_name,
    read_image,
)
from activegen.models.features import FeatureExtractor

log = logging.getLogger(__name__)
_VERSION = 1

#: images of a cached folder decoded again on every load and compared with the cache's pixels
SPOT_CHECKS = 8


def folder_key(root: Path, size: int, channels: int) -> str:
    """SHA-256 over every image file's relative path and content hash, and the settings."""
    return _folder_listing(root, size, channels)[0]


def _folder_listing(root: Path, size: int, channels: int) -> tuple[str, dict[str, str]]:
    """The folder's key, and each image file's SHA-256 by its relative name (printable)."""
    digest = hashlib.sha256(f"v{_VERSION} size={size} channels={channels}\n".encode())
    contents = {}
    for path in list_image_files(root, UNLABELED_EXTENSIONS):
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        name = path.relative_to(root).as_posix()
        contents[printable_name(name)] = content
        digest.update(name.encode("utf-8", "surrogateescape") + f"\0{content}\n".encode())
    return digest.hexdigest(), contents


def _write(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    header = {**meta, "version": _VERSION, "sha256": arrays_digest(arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue(), permissions=FILE_MODE)
    except OSError as exc:  # the cache is only a speed-up
        log.warning("%s: cannot write the cache file (%s); the session goes on without it",
                    path, exc.strerror or exc)


def _read(path: Path, names: set[str], key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and header of a cache file, or None (absent, or damaged: logged)."""
    if not path.is_file():
        return None
    reason = untrusted_reason(path)
    if reason is not None:
        log.warning("%s: %s; the cache file is not used (a cache is trusted no more than its "
                    "owner)", path, reason)
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
                       ) -> tuple[UnlabeledImages, str, dict[str, str]]:
    """:func:`load_unlabeled_images` through the cache; also the folder's key and each
    image file's SHA-256 by its name.

    Raises:
        DataError: as :func:`load_unlabeled_images` (no folder, no readable image).
    """
    root = Path(root)
    if not root.is_dir():
        return load_unlabeled_images(root, size, channels), "", {}
    key, contents = _folder_listing(root, size, channels)
    if cache_dir is None:
        return load_unlabeled_images(root, size, channels), key, contents
    names = list(contents)
    path = Path(cache_dir) / f"folder-{key[:24]}.npz"
    cached = _read(path, {"X"}, key)
    if cached is not None:
        arrays, header = cached
        try:
            paths = [str(p) for p in header["paths"]]
            skipped = [(str(s[0]), str(s[1])) for s in header["skipped"]]
        except (KeyError, TypeError, IndexError):
            paths, skipped = [], []
        problem = _disagreement(root, arrays["X"], paths, skipped, names, size, channels)
        if problem is None:
            return UnlabeledImages(arrays["X"], paths, skipped), key, contents
        log.warning("%s: the cache file disagrees with the folder (%s); rebuilding it", path,
                    problem)
    loaded = load_unlabeled_images(root, size, channels)
    _write(path, {"X": loaded.X}, {"key": key, "paths": loaded.paths,
                                  "skipped": [list(s) for s in loaded.skipped]})
    return loaded, key, contents


def _disagreement(root: Path, X: np.ndarray, paths: list[str],
                  skipped: list[tuple[str, str]], names: list[str], size: int,
                  channels: int) -> str | None:
    """Why a cached folder is not the folder's (None: it agrees): its names are not exactly
    the folder's image files, or a random sample of its images decodes to other pixels."""
    if not paths or X.shape != (len(paths), size, size, channels):
        return "its images and names do not match"
    if sorted([*paths, *(s[0] for s in skipped)]) != sorted(names):
        return "it names other files than the folder holds"
    for i in random.SystemRandom().sample(range(len(paths)), min(SPOT_CHECKS, len(paths))):
        try:
            decoded = read_image(root / paths[i], size, channels)
        except UnreadableImage as exc:
            return f"{paths[i]} is no longer readable: {exc}"
        if not np.array_equal(decoded, X[i]):
            return f"its pixels of {paths[i]} are not that file's"
    return None


def raw_features_cached(extractor: FeatureExtractor, images: np.ndarray, key: str,
                        cache_dir: Path | None) -> np.ndarray | None:
    """A backbone's raw features of a cached folder's images (computed once); None for other
    extractors (their features are cheap, or cached elsewhere) or without a key."""
    if extractor.kind != "backbone" or not key or cache_dir is None:
        return None
    feature_key = hashlib.sha256(f"{key}\0{extractor.id}".encode()).hexdigest()
    path = Path(cache_dir) / f"features-{feature_key[:24]}.npz"
    cached = _read(path, {"raw"}, feature_key)
    if cached is not None:
        raw = cached[0]["raw"]
        picks = random.SystemRandom().sample(range(len(images)),
                                             min(SPOT_CHECKS, len(images)))
        if (raw.ndim == 2 and len(raw) == len(images)
                and np.allclose(extractor.raw(images[picks]), raw[picks], rtol=1e-3,
                                atol=1e-4)):
            return raw
        log.warning("%s: the cached features are not those of the folder's images; "
                    "computing them again", path)
    raw = extractor.raw(images)
    _write(path, {"raw": raw}, {"key": feature_key})
    return raw

