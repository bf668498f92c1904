"""The tidy results table: one row per (run, round, test set), written atomically.

Each finished run writes its own CSV under ``runs/``; ``results.csv`` is rebuilt from them,
so a crash can lose at most the run in progress (whose rounds are in its checkpoint) and
parallel runs never write the same file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activegen._atomic import atomic_write_text
from activegen.errors import DataError

#: The columns every results table has, in order; timing columns follow.
RESULT_COLUMNS = ["dataset", "strategy", "seed", "round", "n_labels", "test_set", "accuracy"]
EXTRA_COLUMNS = [
    "n_classes", "n_train", "n_abstained", "fit_seconds", "query_seconds", "label_seconds"
]
#: Columns that depend on the machine's speed, not on the experiment.
TIMING_COLUMNS = ["fit_seconds", "query_seconds", "label_seconds"]

SUPERVISED = "supervised"

#: Suffix of the manifest written next to each finished run's CSV.
MANIFEST_SUFFIX = ".manifest.json"

log = logging.getLogger("activegen")


def frame_from_rows(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for col in RESULT_COLUMNS + EXTRA_COLUMNS:
        if col not in frame:
            frame[col] = pd.NA
    return frame[RESULT_COLUMNS + EXTRA_COLUMNS]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV atomically."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.10g")
    atomic_write_text(path, buffer.getvalue())


def manifest_path(run_csv: Path) -> Path:
    """Where the manifest of the finished run ``runs/<run>.csv`` lives."""
    return run_csv.with_name(run_csv.name + MANIFEST_SUFFIX)


def write_run_csv(path: Path, csv_text: str, machine: dict[str, str] | None = None,
                  resumed_from: Sequence[dict[str, str]] = (),
                  artefacts: Sequence[dict[str, Any]] = ()) -> None:
    """Write a finished run's manifest (row count, sha256 and the machine that computed it),
    then its CSV, each atomically.

    A kill between the two leaves a manifest without a CSV: the run is not finished and runs
    again. A CSV that does not match its manifest was damaged later; :func:`run_csv_problem`
    says how. ``machine``: :func:`~activegen.experiments.machine.machine_record` of the
    process that computed the run (a remote worker's, not the driver's); left out if unknown.
    ``resumed_from``: the other kinds of machine that computed rounds of it before it was
    resumed (:func:`~activegen.experiments.machine.other_kinds`); left out if none.
    ``artefacts``: the trained artefacts the run's strategy used
    (:meth:`~activegen.strategies.Strategy.provenance`: a generator's key and trainer); left
    out if none.
    """
    frame = pd.read_csv(io.StringIO(csv_text))
    manifest: dict[str, object] = {"file": path.name, "rows": len(frame),
                                   "sha256": hashlib.sha256(csv_text.encode()).hexdigest()}
    if machine is not None:
        manifest["machine"] = machine
    if resumed_from:
        manifest["resumed_from"] = list(resumed_from)
    if artefacts:
        manifest["artefacts"] = list(artefacts)
    # The manifest first: a CSV that exists always has its manifest, so a reader that sees
    # the CSV (results.csv rebuilt while other runs finish) never takes it for a damaged one.
    atomic_write_text(manifest_path(path), json.dumps(manifest, indent=2))
    atomic_write_text(path, csv_text)


def write_run_frame(frame: pd.DataFrame, path: Path,
                    machine: dict[str, str] | None = None,
                    resumed_from: Sequence[dict[str, str]] = (),
                    artefacts: Sequence[dict[str, Any]] = ()) -> None:
    """Write a finished run's rows with their manifest (see :func:`write_run_csv`)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.10g")
    write_run_csv(path, buffer.getvalue(), machine, resumed_from, artefacts)


def run_csv_problem(path: Path) -> str | None:
    """Why the finished run ``path`` cannot be trusted, or ``None`` if it matches its manifest
    (same bytes, same row count, the required columns)."""
    if not path.is_file():
        return "missing"
    manifest_file = manifest_path(path)
    try:
        manifest = json.loads(manifest_file.read_text())
        rows, digest = int(manifest["rows"]), str(manifest["sha256"])
    except FileNotFoundError:
        return (f"no manifest {manifest_file.name} (deleted, or written by an activegen "
                "without manifests)")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"its manifest {manifest_file.name} is unreadable"
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        return "its content does not match the sha256 in its manifest (damaged after writing)"
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return f"not a readable CSV ({exc})"
    if len(frame) != rows:
        return f"{len(frame)} rows, its manifest says {rows}"
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        return f"missing column(s) {missing}"
    return None


def is_finished_run(path: Path) -> bool:
    """Whether ``path`` is a finished run that matches its manifest."""
    return run_csv_problem(path) is None


def discard_damaged_run(path: Path) -> bool:
    """Delete a finished-run CSV that fails its manifest (warning naming it and why) so that
    the run is recomputed; returns whether it did. Call it only while holding the output
    lock."""
    if not path.exists():
        return False
    problem = run_csv_problem(path)
    if problem is None:
        return False
    log.warning("%s: damaged finished run (%s); running it again", path, problem)
    path.unlink()
    manifest_path(path).unlink(missing_ok=True)
    return True


def combine_runs(out_dir: Path) -> pd.DataFrame:
    """Concatenate every finished run under ``out_dir/runs`` in a stable order.

    Raises:
        DataError: a run's CSV does not match its manifest (named, with what is wrong);
            nothing is silently merged.
    """
    files = sorted((out_dir / "runs").glob("*.csv"))
    if not files:
        return frame_from_rows([])
    for f in files:
        problem = run_csv_problem(f)
        if problem is not None:
            raise DataError(f"{f}: damaged finished run: {problem}; run the experiment again "
                            "to recompute it")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return frame.sort_values(["strategy", "seed", "test_set", "round"], kind="stable").reset_index(
        drop=True
    )


def write_results(out_dir: Path) -> Path:
    """Rebuild ``out_dir/results.csv`` from the finished runs; returns its path."""
    path = out_dir / "results.csv"
    write_csv(combine_runs(out_dir), path)
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results table, checking that it has the required columns."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise DataError(f"{path}: no results table here (run an experiment first)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV table: {exc}") from None
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {RESULT_COLUMNS}")
    if frame.empty:
        raise DataError(f"{path}: the results table has no rows")
    for col in ("seed", "round", "n_labels", "accuracy"):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna() | frame[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {col!r} must hold numbers; row {row + 2} has "
                f"{frame[col].iloc[row]!r}"
            )
        frame[col] = values
    out_of_range = ~frame["accuracy"].between(0.0, 1.0)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range.to_numpy())[0])
        raise DataError(f"{path}: column 'accuracy' must lie in [0, 1]; row {row + 2} has "
                        f"{float(frame['accuracy'].iloc[row])}")
    negative = (frame["n_labels"] < 0) | (frame["round"] < 0)
    if negative.any():
        row = int(np.flatnonzero(negative.to_numpy())[0])
        raise DataError(f"{path}: columns 'round' and 'n_labels' must be non-negative; row "
                        f"{row + 2} is not")
    return frame
