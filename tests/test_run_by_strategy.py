"""scripts/run_by_strategy.py: the named strategies and seeds only, the same rows as
``activegen run`` for them, and a bad seed or strategy refused before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from _experiments import SMALL, small_config, write_toml
from activegen.experiments.runner import run_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_by_strategy.py"


def _script(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_only_the_named_strategy_and_seeds_run(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", SMALL)
    done = _script(config, tmp_path / "out", "--only-seeds", "1", "--only", "margin")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "runs").glob("*.csv")) == [
        "margin__seed1.csv"]
    run_experiment(small_config(), tmp_path / "all", progress=False)
    timings = ["fit_seconds", "query_seconds", "label_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "out" / "runs" / "margin__seed1.csv").drop(columns=timings),
        pd.read_csv(tmp_path / "all" / "runs" / "margin__seed1.csv").drop(columns=timings))


def test_a_seed_or_strategy_the_config_lacks_is_refused_before_writing(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", SMALL)
    for args, message in ((["--only-seeds", "7", "margin"], "no seed [7]"),
                          (["--only", "bald"], "no strategy ['bald']"),
                          (["--only-seeds", "x"], "not a number")):
        done = _script(config, tmp_path / "out", *args)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert not (tmp_path / "out").exists()
