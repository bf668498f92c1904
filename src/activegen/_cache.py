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

**Trusted no more than its owner.** A manifest vouches only for itself: whoever can write an
entry can write its manifest too, and entries hold pickles (the expert, the self-taught
basis) and weights that decide results. So an entry is used only if it, and every file in it,
belongs to this user (or root), is writable by nobody else and is not a symbolic link
(:func:`untrusted_reason`), and its manifest names this entry's kind and key (an entry moved
under another key is damage). Another user's entry, in a shared cache or planted in this
one, is named in a warning and never read; the artifact is built here instead. Entries are
written ``0755``/``0644`` whatever the umask, so one's own entries always pass.

**Only a speed-up.** A root that cannot be written (a read-only or full disk, a lock file of
another user) never stops the work: the artifact is built in a private temporary folder and
used without being cached, with a warning naming the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
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


#: Modes of what a cache writes, whatever the umask: readable by all, writable by the owner
#: only (what :func:`untrusted_reason` requires).
DIR_MODE, FILE_MODE = 0o755, 0o644


def _trusted_uids() -> frozenset[int]:
    return frozenset({os.geteuid(), 0})


def untrusted_reason(path: Path) -> str | None:
    """Why ``path`` must not be trusted as this user's cache (None: it may be): not this
    user's (or root's), writable by group or others, or a symbolic link. Always None where
    there are no POSIX owners."""
    if os.name != "posix":
        return None
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror or exc})"
    return _stat_reason(st)


def _stat_reason(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if st.st_uid not in _trusted_uids():
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def untrusted_entry(entry: Path) -> tuple[Path, str] | None:
    """The first path of an entry folder (the folder, then its files) that must not be
    trusted, with why; None if the whole entry may be."""
    reason = untrusted_reason(entry)
    if reason is not None:
        return entry, reason
    try:
        paths = sorted(entry.iterdir())
    except OSError as exc:
        return entry, f"cannot be listed ({exc.strerror or exc})"
    for path in paths:
        reason = untrusted_reason(path)
        if reason is not None:
            return path, reason
    return None


def seal(folder: Path) -> None:
    """Give a folder and its files the cache's modes (:data:`DIR_MODE`, :data:`FILE_MODE`)."""
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, FILE_MODE)
    os.chmod(folder, DIR_MODE)


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
        with self._locked(key) as writable:
            value = self._load_existing(entry, load)
            if value is not None:
                return value[0], True
            if not writable:
                return self._build_uncached(build, load), False
            shared = Path(self.shared) / self.kind / key if self.shared is not None else None
            if (shared is not None and _present(shared, self.main_file)
                    and self._trusted(shared, "shared ")):
                log.info("copying %s %s from the shared cache %s", self.what, key, self.shared)
                try:
                    copy_entry(shared, entry, trusted_only=True)
                except OSError as exc:
                    log.warning("could not copy %s %s from the shared cache %s: %s", self.what,
                                key, self.shared, exc)
                else:
                    value = self._load_existing(entry, load)
                    if value is None:  # the shared copy is damaged too: replaced after the build
                        shutil.rmtree(shared, ignore_errors=True)
            if value is not None:
                return value[0], True
            built, installed = self._build(entry, build, load)
            if shared is not None and installed:
                self._publish(entry, key)
            return built, False

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[bool]:
        """Hold ``key``'s lock; yields whether the root can be written (False: no lock, and
        nothing is written there)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(exclusive_lock(self.lock_path(key)))
            except OSError as exc:
                self._unwritable(exc)
                yield False
                return
            yield True

    def _unwritable(self, exc: OSError) -> None:
        log.warning("the cache folder %s cannot be written (%s); the %s is built without "
                    "being cached", self.root, exc.strerror or exc, self.what)

    def verify(self, entry: Path) -> None:
        """Raise :class:`DamagedEntryError` unless every file the manifest lists has its
        SHA-256 (an entry without manifest, from before it, passes)."""
        manifest_path = entry / MANIFEST
        if not manifest_path.is_file():
            if not (entry / self.main_file).is_file():
                raise DamagedEntryError(entry / self.main_file, "missing")
            return
        try:
            manifest = json.loads(manifest_path.read_text())
            files = dict(manifest["files"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            raise DamagedEntryError(manifest_path, "unreadable manifest") from None
        if manifest.get("kind", self.kind) != self.kind or manifest.get("key",
                                                                       entry.name) != entry.name:
            raise DamagedEntryError(manifest_path, f"made for entry {manifest.get('kind')}/"
                                                   f"{manifest.get('key')}, not this one")
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
        if not self._trusted(entry, ""):
            self._set_aside(entry)
            return None
        try:
            self.verify(entry)
            return (load(entry),)
        except DamagedEntryError as exc:
            self._damaged(entry, exc.file, exc.reason)
        except Exception as exc:  # torch / pickle raise many kinds for a bad file
            self._damaged(entry, entry / self.main_file, str(exc))
        return None

    def _trusted(self, entry: Path, where: str) -> bool:
        found = untrusted_entry(entry)
        if found is None:
            return True
        path, reason = found
        log.warning("%s: %s; the %scache entry of this %s is not used (a cache is trusted no "
                    "more than its owner)", path, reason, where, self.what)
        return False

    def _set_aside(self, entry: Path) -> None:
        """Remove an untrusted entry from this cache if this user may (its folder may be
        another user's: then the artifact built here is used without being cached)."""
        shutil.rmtree(entry, ignore_errors=True)
        if entry.exists():
            with contextlib.suppress(OSError):
                os.replace(entry, entry.with_name(f".untrusted-{entry.name}-{os.getpid()}"))

    def _damaged(self, entry: Path, file: Path, reason: str) -> None:
        if self.on_damaged == "refuse":
            raise DataError(f"{file}: damaged {self.what} cache file ({reason}); delete "
                            f"{entry} to build it again") from None
        log.warning("%s: damaged %s cache file (%s); removing the entry and building the %s "
                    "again", file, self.what, reason, self.what)
        shutil.rmtree(entry, ignore_errors=True)

    def _build(self, entry: Path, build: Callable[[Path], T | None],
               load: Callable[[Path], T]) -> tuple[T, bool]:
        """The built value, and whether its entry is installed (an untrusted entry that
        could not be removed keeps the place: the value is then used uncached)."""
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        except OSError as exc:
            self._unwritable(exc)
            return self._build_uncached(build, load), False
        try:
            value = build(tmp)
            write_manifest(tmp, self.kind, entry.name)
            seal(tmp)
            shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover, if any
            try:
                os.replace(tmp, entry)  # atomic: the entry appears whole or not at all
            except OSError as exc:
                log.warning("%s: cannot install the %s built (%s); it is used without being "
                            "cached", entry, self.what, exc.strerror or exc)
                return (value if value is not None else load(tmp)), False
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return (value if value is not None else load(entry)), True

    def _build_uncached(self, build: Callable[[Path], T | None],
                        load: Callable[[Path], T]) -> T:
        """Build in a private temporary folder and load from it (the root is not writable)."""
        with tempfile.TemporaryDirectory(prefix=f"activegen-{self.kind}-") as tmp:
            value = build(Path(tmp))
            return value if value is not None else load(Path(tmp))

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


class UntrustedFileError(OSError):
    """A file of a shared entry changed hands while it was copied (named, with why)."""


def copy_entry(src: Path, target: Path, trusted_only: bool = False) -> None:
    """Copy entry folder ``src`` to ``target`` atomically (temporary folder, then rename).

    ``trusted_only``: each file is checked (:func:`untrusted_reason`) on the very descriptor
    it is copied from, so an entry swapped after it was checked (a shared folder others may
    write) cannot slip in; such a file raises :class:`UntrustedFileError`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for path in sorted(src.iterdir()):
            if not path.is_file() or path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with open(fd, "rb") as source, open(tmp / path.name, "wb") as copy:
                reason = _stat_reason(os.fstat(fd)) if trusted_only and os.name == "posix" \
                    else None
                if reason is not None:
                    raise UntrustedFileError(f"{path}: {reason}")
                shutil.copyfileobj(source, copy)  # contents only: modes are the cache's
        seal(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
