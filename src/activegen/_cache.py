"""The one artifact cache: what is trained once and reused (generators, VAEs, the expert
oracle, the self-taught basis), keyed by content, safe under parallel runs.

Keys come from :func:`data_fingerprint` (the SHA-256 of an array's shape, dtype and bytes:
the one fingerprint of activegen) and :func:`content_key` (a short SHA-256 of the settings
that decide the artifact, as sorted JSON). An :class:`ArtifactCache` entry is a folder
``<root>/<kind>/<key>/``:

- **built whole or not at all**: the builder writes into a temporary folder beside it, which
  is renamed into place (``os.replace``), so a reader never sees half an entry;
- **one builder at a time**: building and loading happen under an exclusive file lock
  (``<root>/.locks/<kind>-<key>.lock``), so a second process waits for the first one's entry
  instead of building its own or reading a half-written one; the kernel releases the lock if
  the holder dies;
- **checked on load**: ``manifest.json`` holds the SHA-256 of every file of the entry;
  a file that is missing or whose bytes differ (truncated, overwritten inside) is damage, as
  is a loader that fails. A damaged entry is named in a warning, removed and built again
  (``on_damaged="rebuild"``), or refused with a :class:`~activegen.errors.DataError`
  (``"refuse"``). Entries written before the manifest existed (generators) are checked by
  their loader alone.

A ``shared`` root (the generators' ``$ACTIVEGEN_CACHE``) is a second cache holding a copy of
every entry built: an entry missing here is copied from there before building, and a new one
is published there (a failure to publish is logged, not raised).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from activegen._atomic import exclusive_lock
from activegen.errors import DataError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The file in every entry listing its files' SHA-256.
MANIFEST = "manifest.json"

#: Length of a :func:`content_key` (hex digits of a SHA-256).
KEY_LENGTH = 24


def data_fingerprint(X: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes (for images: labels never part of it)."""
    X = np.ascontiguousarray(X)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(X.shape), str(X.dtype)]).encode())
    digest.update(memoryview(X).cast("B"))
    return digest.hexdigest()


def content_key(payload: Mapping[str, Any]) -> str:
    """The cache key of whatever ``payload`` (JSON: fingerprints, settings, a version)
    describes: the first :data:`KEY_LENGTH` hex digits of the SHA-256 of its sorted JSON."""
    text = json.dumps(dict(payload), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, shapes, dtypes and bytes, in name order): the checksum
    of arrays kept on disk (a model file's VAE weights, the folder cache's images)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DamagedEntryError(Exception):
    """An entry whose files are not the ones written (``file`` names the first bad one)."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(reason)
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class ArtifactCache:
    """Entries of one ``kind`` under ``root`` (see the module docstring).

    Attributes:
        root: the cache folder (an experiment's ``cache_dir``).
        kind: the sub-folder of this kind of artifact (``generators``, ``vaes``, ...).
        what: how messages name an entry's artifact (``generator``, ``VAE``, ...).
        main_file: the file a message names when the loader itself fails.
        on_damaged: ``rebuild`` (warn, remove, build again) or ``refuse`` (raise).
        shared: a second cache root that holds copies of entries (or None).
    """

    root: Path
    kind: str
    what: str = "artifact"
    main_file: str = "model.pt"
    on_damaged: Literal["rebuild", "refuse"] = "rebuild"
    shared: Path | None = None

    def entry(self, key: str) -> Path:
        """The folder of ``key``'s entry (it may not exist)."""
        return Path(self.root) / self.kind / key

    def lock_path(self, key: str, root: Path | None = None) -> Path:
        """The lock file of ``key`` under ``root`` (default: this cache's root)."""
        return Path(root if root is not None else self.root) / ".locks" / f"{self.kind}-{key}.lock"

    def load_or_build(self, key: str, build: Callable[[Path], T | None],
                      load: Callable[[Path], T]) -> tuple[T, bool]:
        """``(value, loaded)``: ``key``'s entry loaded (``loaded`` True), else copied from
        the shared cache and loaded, else built: ``build(folder)`` writes the entry's files
        into an empty temporary folder and returns the value, or None to have the written
        entry loaded. Everything happens under the entry's lock."""
        entry = self.entry(key)
        with exclusive_lock(self.lock_path(key)):
            value = self._load_existing(entry, load)
            shared = Path(self.shared) / self.kind / key if self.shared is not None else None
            if value is None and shared is not None and _present(shared, self.main_file):
                log.info("copying %s %s from the shared cache %s", self.what, key, self.shared)
                copy_entry(shared, entry)
                value = self._load_existing(entry, load)
                if value is None:  # the shared copy is damaged too: replaced after the build
                    shutil.rmtree(shared, ignore_errors=True)
            if value is not None:
                return value[0], True
            built = self._build(entry, build)
            if shared is not None:
                self._publish(entry, key)
            return (built if built is not None else load(entry)), False

    def verify(self, entry: Path) -> None:
        """Raise :class:`DamagedEntryError` unless every file the manifest lists has its
        SHA-256 (an entry without manifest, from before it, passes)."""
        manifest_path = entry / MANIFEST
        if not manifest_path.is_file():
            if not (entry / self.main_file).is_file():
                raise DamagedEntryError(entry / self.main_file, "missing")
            return
        try:
            files = json.loads(manifest_path.read_text())["files"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise DamagedEntryError(manifest_path, "unreadable manifest") from None
        for name, expected in sorted(files.items()):
            path = entry / name
            if not path.is_file():
                raise DamagedEntryError(path, "missing")
            if file_digest(path) != expected:
                raise DamagedEntryError(path, "its bytes do not match the SHA-256 saved with "
                                              "them")

    # -- inside the lock ------------------------------------------------------------------
    def _load_existing(self, entry: Path, load: Callable[[Path], T]) -> tuple[T] | None:
        """``(value,)`` of an intact entry; None when there is none or it was damaged (and
        removed); raises for a damaged one under ``on_damaged="refuse"``."""
        if not entry.is_dir():
            return None
        try:
            self.verify(entry)
            return (load(entry),)
        except DamagedEntryError as exc:
            self._damaged(entry, exc.file, exc.reason)
        except Exception as exc:  # torch / pickle raise many kinds for a bad file
            self._damaged(entry, entry / self.main_file, str(exc))
        return None

    def _damaged(self, entry: Path, file: Path, reason: str) -> None:
        if self.on_damaged == "refuse":
            raise DataError(f"{file}: damaged {self.what} cache file ({reason}); delete "
                            f"{entry} to build it again") from None
        log.warning("%s: damaged %s cache file (%s); removing the entry and building the %s "
                    "again", file, self.what, reason, self.what)
        shutil.rmtree(entry, ignore_errors=True)

    def _build(self, entry: Path, build: Callable[[Path], T | None]) -> T | None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            value = build(tmp)
            write_manifest(tmp, self.kind, entry.name)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; a cache is shared
            shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover, if any
            os.replace(tmp, entry)  # atomic: the entry appears whole or not at all
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return value

    def _publish(self, entry: Path, key: str) -> None:
        assert self.shared is not None
        target = Path(self.shared) / self.kind / key
        try:
            with exclusive_lock(self.lock_path(key, Path(self.shared))):
                if not _present(target, self.main_file):
                    copy_entry(entry, target)
        except OSError as exc:
            log.warning("could not share %s %s in %s: %s", self.what, key, target.parent, exc)


def _present(entry: Path, main_file: str) -> bool:
    return (entry / MANIFEST).is_file() or (entry / main_file).is_file()


def write_manifest(folder: Path, kind: str, key: str) -> None:
    """Write ``folder``'s manifest: the SHA-256 of each of its files."""
    files = {p.name: file_digest(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"kind": kind, "key": key, "files": files},
                                              indent=2))


def copy_entry(src: Path, target: Path) -> None:
    """Copy entry folder ``src`` to ``target`` atomically (temporary folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for path in sorted(src.iterdir()):
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        os.chmod(tmp, 0o755)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
