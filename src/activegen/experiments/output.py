"""An output folder's bookkeeping: the config stamp that claims it, the lock that keeps two
``activegen run`` out of it, temporary files a killed writer left, and files a remote worker
handed back."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from activegen._atomic import atomic_write_bytes, atomic_write_text
from activegen.errors import ConfigError, DataError
from activegen.experiments.config import FINGERPRINT_VERSION, ExperimentConfig
from activegen.experiments.executors import FinishedRun
from activegen.experiments.results import is_finished_run, write_run_csv

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


def prepare_output(config: ExperimentConfig, out_dir: Path, fresh: bool = False) -> None:
    """Claim ``out_dir`` for ``config``; refuse a folder that holds another experiment.

    ``fresh`` deletes earlier results first.
    """
    out_dir = Path(out_dir)
    stamp = out_dir / CONFIG_FILE
    if fresh and out_dir.exists():
        for sub in ("runs", "checkpoints", "queries"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        for name in (CONFIG_FILE, "results.csv"):
            (out_dir / name).unlink(missing_ok=True)
    if stamp.exists():
        try:
            previous = json.loads(stamp.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
        if not isinstance(previous, dict):
            raise DataError(f"{stamp}: unreadable; delete the folder or use --fresh")
        if previous.get("fingerprint_version", 1) != FINGERPRINT_VERSION:
            raise ConfigError(
                f"{out_dir} holds results of an older activegen (configuration format "
                f"{previous.get('fingerprint_version', 1)}, this one reads "
                f"{FINGERPRINT_VERSION}): its finished rows stay readable by 'activegen report "
                f"{out_dir}'; run into another --out folder, or --fresh to delete them"
            )
        if previous.get("fingerprint") != config.fingerprint():
            raise ConfigError(
                f"{out_dir} holds results of a different configuration; use another --out "
                "folder, or --fresh to delete them"
            )
        if previous.get("config") == config.model_dump(mode="json"):
            return
        # Same results, new [report] settings: keep them for 'activegen report DIR'.
    else:
        if any((out_dir / "runs").glob("*.csv")):  # results of unknown origin: never mix
            raise ConfigError(
                f"{out_dir} holds runs but no {CONFIG_FILE} saying which configuration made "
                "them; use another --out folder, or --fresh to delete them"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": config.fingerprint(), "fingerprint_version": FINGERPRINT_VERSION,
               "config": config.model_dump(mode="json")}
    atomic_write_text(stamp, json.dumps(payload, indent=2))


def saved_config(out_dir: Path) -> ExperimentConfig | None:
    """The configuration an output folder was made with, if any."""
    from activegen.experiments.config import parse_config

    stamp = Path(out_dir) / CONFIG_FILE
    if not stamp.exists():
        return None
    try:
        payload = json.loads(stamp.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{stamp}: not a configuration written by 'activegen run'") from None
    return parse_config(payload, str(stamp))


def store_finished(out_dir: Path, finished: FinishedRun) -> None:
    """Write what a worker returned but could not write itself (no shared file system)."""
    for relative, payload in finished.files.items():
        target = out_dir / relative
        if not target.exists():
            atomic_write_bytes(target, payload)
    result_path = out_dir / "runs" / f"{finished.run_id}.csv"
    if not is_finished_run(result_path):
        write_run_csv(result_path, finished.csv_text, finished.machine, finished.resumed_from,
                      finished.artefacts)


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete the temporary files a killed writer left (``.<name>.<random>.tmp``, never
    renamed over anything); call it only while holding :func:`output_lock`."""
    stale = list(out_dir.glob(".*.tmp"))
    for sub in ("runs", "checkpoints", "queries"):
        if (out_dir / sub).is_dir():
            stale += (out_dir / sub).rglob(".*.tmp")
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    return stale


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` so that two ``activegen run`` never write one
    folder at once. The OS releases it when the process ends, however it ends."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; run one experiment per folder
        yield
        return
    with open(out_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{out_dir} is in use by another 'activegen run'; wait for it to finish or "
                "choose another --out folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

