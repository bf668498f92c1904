"""Loop overhead per round, next to the learner's training time.

A round's wall time (from one round's end to the next, as the runner runs it: checkpoint and
query files written atomically with fsync) minus the time spent fitting the learner,
evaluating it, querying and labeling is what the loop itself costs: bookkeeping, building
the training set, writing the checkpoint and the query. Goal: under 5% of a round.

    python benchmarks/bench_loop.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch

import activegen.engine as engine_module
import activegen.experiments.one_run as one_run_module
from activegen.experiments.config import ExperimentConfig, parse_config
from activegen.experiments.runner import RunSpec, load_experiment_data, run_one

try:  # run as a script or imported by run_all
    from _common import mnist5k_config, row
except ImportError:  # pragma: no cover
    from benchmarks._common import mnist5k_config, row

#: Where the runs write (checkpoints and queries, fsynced as in real experiments); set
#: ACTIVEGEN_BENCH_DIR to measure another disk. Default: the system's temporary folder.
OUT_ROOT = os.environ.get("ACTIVEGEN_BENCH_DIR")


def measure(config: ExperimentConfig, strategy: str, seed: int = 0) -> dict[str, float]:
    """Seconds per round: wall, fit, eval, query, label, and the loop's own remainder."""
    data = load_experiment_data(config)
    stamps: list[float] = []
    records: list[Any] = []

    def on_round(record: Any) -> None:
        stamps.append(time.perf_counter())
        records.append(record)

    writes: list[float] = []  # seconds spent in each checkpoint and query write

    def timed_write(original: Any) -> Any:
        def write(*args: Any, **kwargs: Any) -> None:
            t0 = time.perf_counter()
            original(*args, **kwargs)
            if stamps:  # only the writes inside timed rounds
                writes.append(time.perf_counter() - t0)
        return write

    with tempfile.TemporaryDirectory(prefix="bench-loop-", dir=OUT_ROOT) as out, \
            mock.patch.object(engine_module, "atomic_write_bytes",
                              timed_write(engine_module.atomic_write_bytes)), \
            mock.patch.object(one_run_module, "atomic_write_bytes",
                              timed_write(one_run_module.atomic_write_bytes)):
        run_one(config, RunSpec(strategy, seed), Path(out), data, on_round=on_round)
    # Round 0's interval would include start-up (building the strategy, the first fit is
    # timed anyway), so intervals start at round 0's end: they cover rounds 1..n, and each
    # includes the previous round's checkpoint write.
    timed = records[1:]
    wall = stamps[-1] - stamps[0]
    parts = {
        "fit": sum(r.fit_seconds for r in timed),
        "eval": sum(r.eval_seconds for r in timed),
        "query": sum(r.query_seconds for r in timed),
        "label": sum(r.label_seconds for r in timed),
    }
    n = len(timed)
    overhead = wall - sum(parts.values())
    return {"rounds": n, "wall": wall / n, "overhead": overhead / n, "writes": sum(writes) / n,
            **{k: v / n for k, v in parts.items()}}


#: The demo as docs/performance.md measured it (the shipped demo is now ten classes): its
#: rounds are tiny, so the loop's own cost shows.
DIGITS_5V7 = {
    "name": "digits 5 vs 7, linear SVM", "seeds": [0],
    "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.4},
    "learner": {"name": "linear-svm", "C": 1.0},
    "loop": {"initial": 4, "batch": 2, "budget": 40},
    "strategies": [{"name": "random"}, {"name": "svm-active"}],
}


def cases(quick: bool) -> list[tuple[str, ExperimentConfig, str]]:
    found = [("demo (digits 5 vs 7, 8x8)", parse_config(DIGITS_5V7, "benchmark"),
              "svm-active")]
    if not quick:
        found.append(("mnist5k (10 digits, 28x28)", mnist5k_config([0], budget=400), "margin"))
    return found


def without_fsync(config: ExperimentConfig) -> ExperimentConfig:
    data = config.model_dump(mode="json")
    data["execution"]["fsync"] = False
    return parse_config(data, "benchmark")


def run(quick: bool = False) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    rows = []
    for name, base, strategy in cases(quick):
        for fsync in (True, False):
            config = base if fsync else without_fsync(base)
            m = measure(config, strategy)
            case = f"{name}, {strategy}, {m['rounds']} rounds, fsync={'on' if fsync else 'off'}"
            rows.append(row("loop overhead per round", case, m["overhead"] * 1e3, "ms",
                            "learner fit per round", m["fit"] * 1e3))
            rows.append(row("loop overhead share", case, 100 * m["overhead"] / m["wall"],
                            "% of round", "whole round (ms)", m["wall"] * 1e3,
                            ratio=m["overhead"] / m["wall"]))
            rest = m["overhead"] - m["writes"]
            rows.append(row("  of which checkpoint+query writes", case, m["writes"] * 1e3, "ms",
                            "whole round (ms)", m["wall"] * 1e3))
            rows.append(row("  of which the rest (bookkeeping)", case, rest * 1e3, "ms",
                            "whole round (ms)", m["wall"] * 1e3))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo only")
    args = parser.parse_args()
    for r in run(args.quick):
        print(r)
