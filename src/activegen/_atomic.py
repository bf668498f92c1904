"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Results, checkpoints and labels are the user's work; a crash mid-write must not corrupt them.
We write to a temporary file in the same directory, fsync it, then ``os.replace`` it over the
target (atomic on POSIX), and fsync the directory so that the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w",
                durable_rename: bool = True, sync: bool = True,
                permissions: int | None = None) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only if the block exits cleanly.

    The data is always fsynced before the rename, so even after a power cut ``path`` holds
    the old or the new content, complete. ``durable_rename=False`` skips the directory fsync
    that makes the rename itself survive a power cut (a crash of the process never loses it):
    for files rewritten every round whose previous version is an acceptable fallback, like
    checkpoints, it halves the fsyncs. ``sync=False`` skips every fsync: the replacement is
    still atomic for readers and survives the writer being killed, but not a power cut.
    ``permissions`` sets the file's mode (default: what an ordinary ``open()`` gives under the
    umask).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports 'w' and 'wb', not {mode!r}")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    try:
        # mkstemp makes the file private (0600); give it the mode an ordinary open() would,
        # so results on a shared machine or cluster are readable as the user's umask allows.
        os.fchmod(fd, 0o666 & ~_UMASK if permissions is None else permissions)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.errno is not None:
            # the file the caller asked for, not the temporary one it never sees
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    if durable_rename and sync:
        _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes,
                       durable_rename: bool = True, sync: bool = True,
                       permissions: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb", durable_rename=durable_rename, sync=sync,
                     permissions=permissions) as handle:
        handle.write(data)


def sync_directory(directory: str | os.PathLike[str]) -> None:
    """Make the renames done in ``directory`` durable (after ``durable_rename=False`` writes)."""
    _fsync_dir(Path(directory))


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread starts.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive POSIX advisory lock on ``path`` (created if needed), waiting for it.

    Caches use it so that parallel runs wait for the first one's trained artifact instead of
    each training their own; the kernel releases the lock if the holder dies.
    """
    import fcntl

    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
