"""Small experiments on the embedded digits, shared by the resume, executor and Ray tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from activegen.experiments.config import ExperimentConfig, parse_config
from activegen.experiments.results import TIMING_COLUMNS

#: 2 strategies × 2 seeds, all ten digits, a linear SVM: ≈30 rounds per run, about half a
#: second of compute per run here, so a kill lands mid-experiment with room to spare.
SMALL: dict[str, Any] = {
    "name": "small",
    "seeds": [0, 1],
    "supervised": False,
    "data": {"dataset": "digits", "test_fraction": 0.3},
    "learner": {"name": "linear-svm"},
    "loop": {"initial": 20, "batch": 4, "budget": 120},
    "strategies": [{"name": "random"}, {"name": "margin"}],
}


def small_config(**changes: Any) -> ExperimentConfig:
    data = {**SMALL, **changes}
    return parse_config(data, "test")


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A TOML file for ``data`` (the subset of TOML these configs need)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{k} = {_toml(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                tables.append(f"[[{key}]]")
                tables += [f"{k} = {_toml(v)}" for k, v in item.items()]
        else:
            lines.append(f"{key} = {_toml(value)}")
    path.write_text("\n".join(lines + tables) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def results_without_timings(out_dir: Path) -> pd.DataFrame:
    """``results.csv`` without the columns that depend on the machine's speed."""
    frame = pd.read_csv(Path(out_dir) / "results.csv")
    return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])


def copy_output(finished: Path, tmp_path: Path) -> Path:
    """A private copy of a module's finished output folder, for a test that edits it."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out
