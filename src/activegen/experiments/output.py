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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activegen._atomic import atomic_write_bytes, atomic_write_text
from activegen.errors import ConfigError, DataError
from activegen.experiments.config import (
    FINGERPRINT_VERSION,
    DataConfig,
    ExperimentConfig,
    ReportConfig,
    _format_validation_error,
    default_baseline,
)
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


class _SavedStrategy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    label: str | None = None


class SavedConfig(BaseModel):
    """What a reader of an output folder takes from its ``config.json``: plain data.

    A results folder may come from someone else, and a config names code (an estimator's or a
    module's import path), so reading results never validates the saved config through the
    component registries: nothing is imported or built. Only the fields the report and the
    gallery read are checked; the rest of the file is ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = "experiment"
    strategies: list[_SavedStrategy] = Field(min_length=1)
    report: ReportConfig = ReportConfig()
    data: DataConfig = DataConfig()

    @property
    def labels(self) -> list[str]:
        return [s.label or s.name for s in self.strategies]

    @property
    def baseline(self) -> str:
        return default_baseline(self.labels, self.report.baseline)


def saved_config(out_dir: Path) -> SavedConfig | None:
    """The configuration an output folder was made with, read as data (:class:`SavedConfig`);
    None when the folder has no ``config.json``.

    Raises:
        DataError: the file is not a configuration written by ``activegen run``.
        ConfigError: its fields are not those this version reads (a report can do without).
    """
    stamp = Path(out_dir) / CONFIG_FILE
    if not stamp.exists():
        return None
    try:
        payload = json.loads(stamp.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{stamp}: not a configuration written by 'activegen run' "
                        f"({reason})") from None
    try:
        return SavedConfig.model_validate(payload)
    except ValidationError as exc:  # e.g. another version's: the results stay readable
        raise ConfigError(f"{stamp}: {_format_validation_error(exc, 'saved config')}") from None


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

