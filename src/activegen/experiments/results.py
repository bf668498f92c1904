"""The tidy results table: one row per (run, round, test set), written atomically.

Each finished run writes its own CSV under ``runs/``; ``results.csv`` is rebuilt from them,
so a crash can lose at most the run in progress (whose rounds are in its checkpoint) and
parallel runs never write the same file.
"""

from __future__ import annotations

import io
from pathlib import Path

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


def combine_runs(out_dir: Path) -> pd.DataFrame:
    """Concatenate every finished run under ``out_dir/runs`` in a stable order."""
    files = sorted((out_dir / "runs").glob("*.csv"))
    if not files:
        return frame_from_rows([])
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
    return frame
