"""An experiment's wall time with 1 and with 2 local jobs (2 strategies × 4 seeds, mnist5k).

Measured as a user meets it: ``run_experiment`` from loading the data to ``results.csv``
(worker start-up and each worker's data loading included; the report excluded), in a fresh
folder each time. The two must give the same rows; the speedup is reported with its median
over ``--repeats`` alternating repetitions.

    python benchmarks/bench_parallel.py [--quick] [--repeats 3] [--budget 500]
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

from activegen.experiments.config import with_overrides
from activegen.experiments.results import TIMING_COLUMNS
from activegen.experiments.runner import run_experiment

try:
    from _common import mnist5k_config, row
except ImportError:  # pragma: no cover
    from benchmarks._common import mnist5k_config, row

SEEDS = [0, 1, 2, 3]


def wall_time(config: Any, jobs: int) -> tuple[float, pd.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as out:
        t0 = time.perf_counter()
        run_experiment(with_overrides(config, jobs=jobs), Path(out), progress=False)
        seconds = time.perf_counter() - t0
        rows = pd.read_csv(Path(out) / "results.csv").drop(columns=TIMING_COLUMNS)
    return seconds, rows


def run(quick: bool = False, repeats: int = 3, budget: int = 500) -> list[dict[str, Any]]:
    if quick:
        repeats, budget = 1, 100
    config = mnist5k_config(SEEDS, budget=budget)
    times: dict[int, list[float]] = {1: [], 2: []}
    reference: pd.DataFrame | None = None
    for _ in range(repeats):
        for jobs in (1, 2):
            seconds, rows = wall_time(config, jobs)
            times[jobs].append(seconds)
            if reference is None:
                reference = rows
            elif not rows.equals(reference):
                raise AssertionError(f"jobs={jobs} gave different rows than jobs=1")
    one, two = statistics.median(times[1]), statistics.median(times[2])
    load = os.getloadavg()[0]
    case = (f"mnist5k, 2 strategies × {len(SEEDS)} seeds, budget {budget}, "
            f"median of {repeats} (load {load:.1f} on {os.cpu_count()} cores)")
    return [
        row("experiment wall time, 2 jobs", case, two, "s", "1 job", one, ratio=one / two,
            all_1_job=times[1], all_2_jobs=times[2]),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=500)
    args = parser.parse_args()
    for r in run(args.quick, args.repeats, args.budget):
        print(r)
