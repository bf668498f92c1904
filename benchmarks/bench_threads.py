"""Thread counts on the in-process path against a ``--jobs 1`` worker with capped threads.

A BLAS-heavy learner (10-class logistic regression on mnist5k) in three settings, measured
in one run, alternating, in fresh folders, from loading the data to ``results.csv``:

- ``in-process, uncapped``: the runs in this process with whatever thread pools numpy and
  torch start with (what the in-process path did before it chose thread counts);
- ``in-process, threads=1``: the default in-process path with ``execution.threads = 1``;
- ``worker, threads=1``: one worker process (``ProcessExecutor(jobs=1)``), threads capped.

The two capped settings must give the same rows; the uncapped one may not (a learner's sums
depend on the thread count), so its largest accuracy difference is reported. The ratios are
against the capped worker.

    python benchmarks/bench_threads.py [--quick] [--repeats 3] [--budget 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from activegen.experiments.config import ExperimentConfig, parse_config
from activegen.experiments.executors import ProcessExecutor
from activegen.experiments.results import TIMING_COLUMNS, write_results
from activegen.experiments.runner import (
    load_experiment_data,
    prepare_output,
    run_experiment,
    run_one,
    run_specs,
)

try:
    from _common import row
except ImportError:  # pragma: no cover
    from benchmarks._common import row


def config(budget: int, threads: int) -> ExperimentConfig:
    execution: dict[str, Any] = {"threads": threads}
    return parse_config({
        "name": "bench threads",
        "seeds": [0, 1],
        "supervised": False,
        "data": {"dataset": "mnist5k", "test_fraction": 0.2},
        "learner": {"name": "logistic-regression"},
        "loop": {"initial": 20, "batch": 20, "budget": budget},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "device": "cpu",
        "execution": execution,
    }, "benchmark")


def uncapped(cfg: ExperimentConfig, out: Path) -> None:
    """The runs in this process without any thread limit (the old in-process path)."""
    data = load_experiment_data(cfg)
    prepare_output(cfg, out)
    for spec in run_specs(cfg):
        run_one(cfg, spec, out, data)
    write_results(out)


def timed(setting: str, budget: int) -> tuple[float, pd.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as folder:
        out = Path(folder)
        t0 = time.perf_counter()
        if setting == "in-process, uncapped":  # threads=1 in the config, but not applied
            uncapped(config(budget, 1), out)
        elif setting == "in-process, threads=1":
            run_experiment(config(budget, 1), out, progress=False)
        else:
            cfg = config(budget, 1)
            run_experiment(cfg, out, progress=False, executor=ProcessExecutor(1))
        seconds = time.perf_counter() - t0
        rows = pd.read_csv(out / "results.csv").drop(columns=TIMING_COLUMNS)
    return seconds, rows


SETTINGS = ("in-process, uncapped", "in-process, threads=1", "worker, threads=1")


def run(quick: bool = False, repeats: int = 3, budget: int = 300) -> list[dict[str, Any]]:
    if quick:
        repeats, budget = 1, 60
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    rows: dict[str, pd.DataFrame] = {}
    for _ in range(repeats):
        for setting in SETTINGS:
            seconds, rows[setting] = timed(setting, budget)
            times[setting].append(seconds)
        if not rows["in-process, threads=1"].equals(rows["worker, threads=1"]):
            raise AssertionError("in-process and worker with threads=1 gave different rows")
    drift = float((rows["in-process, uncapped"]["accuracy"]
                   - rows["worker, threads=1"]["accuracy"]).abs().max())
    base = statistics.median(times["worker, threads=1"])
    case = (f"mnist5k, logistic regression, 2 strategies × 2 seeds, budget {budget}, median "
            f"of {repeats} (load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    return [row(f"experiment wall time, {s}", case, statistics.median(times[s]), "s",
                "worker, threads=1", base, all_times=times[s],
                max_accuracy_difference=drift if s == SETTINGS[0] else 0.0)
            for s in SETTINGS[:2]]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=300)
    args = parser.parse_args()
    for r in run(args.quick, args.repeats, args.budget):
        print(r)
