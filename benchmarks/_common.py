"""Helpers shared by this folder's benchmarks: the row format and small experiment configs."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activegen.experiments.config import ExperimentConfig, parse_config


def row(benchmark: str, case: str, value: float, unit: str, baseline: str,
        baseline_value: float, ratio: float | None = None, **extra: Any) -> dict[str, Any]:
    """One result row in the convention of ``benchmarks/README.md``.

    ``ratio`` defaults to ``value / baseline_value``.
    """
    if ratio is None:
        ratio = value / baseline_value if baseline_value else float("nan")
    return {"benchmark": benchmark, "case": case, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": baseline_value, "ratio": ratio, **extra}


def mnist5k_config(seeds: list[int], budget: int, batch: int = 20, **changes: Any
                   ) -> ExperimentConfig:
    """Uncertainty (margin) against random on all ten MNIST digits of mnist5k, linear SVM.

    4,000 pool images, 1,000 held out; each round refits a 10-class linear SVM on up to
    ``budget`` images and scores the whole pool, so per-run compute dominates start-up.
    """
    data: dict[str, Any] = {
        "name": "bench mnist5k",
        "seeds": seeds,
        "supervised": False,
        "data": {"dataset": "mnist5k", "test_fraction": 0.2},
        "learner": {"name": "linear-svm"},
        "loop": {"initial": 20, "batch": batch, "budget": budget},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "device": "cpu",
        **changes,
    }
    return parse_config(data, "benchmark")


@dataclass
class StoreAudit:
    """What labelers were told against what the label store holds, after a labeling run."""

    acked: dict[int, int]  # query id -> label acknowledged to a labeler
    n_stored: int  # label rows in the store
    rounds: int | None  # rounds the session asked
    lost: int  # acknowledged but not stored (or stored with another label)
    doubled: int  # stored twice
    unacked: int  # stored but never acknowledged
    errors: list[str]  # the labelers' errors, and queries acknowledged to two labelers

    @property
    def ok(self) -> bool:
        """Every acknowledged label stored exactly once, and nothing else."""
        return (not self.errors and self.lost == 0 and self.doubled == 0 and self.unacked == 0
                and self.n_stored == len(self.acked))


def audit_store(results: dict[str, dict[str, Any]], store: Path) -> StoreAudit:
    """Merge the labelers' ``acked`` and ``errors`` and compare them with the store's labels
    (the check both labeling benchmarks end with)."""
    errors = [e for r in results.values() for e in r["errors"]]
    acked: dict[int, int] = {}
    for name, r in results.items():
        for qid, label in r["acked"].items():
            if qid in acked:
                errors.append(f"query {qid} acknowledged twice (the second time to {name})")
            acked[qid] = label
    with sqlite3.connect(store) as conn:
        stored = conn.execute("SELECT query_id, label FROM labels").fetchall()
        rounds = conn.execute("SELECT COUNT(DISTINCT round) FROM queries "
                              "WHERE source = 'session'").fetchone()[0]
    stored_map: dict[int, int] = {}
    doubled = 0
    for qid, label in stored:
        doubled += qid in stored_map
        stored_map[qid] = label
    lost = sum(1 for qid, label in acked.items() if stored_map.get(qid) != label)
    unacked = len(set(stored_map) - set(acked))
    return StoreAudit(acked, len(stored), rounds, lost, doubled, unacked, errors)


def run_clients(threads: list[threading.Thread], timeout: float) -> float:
    """Start every client thread at once, wait up to ``timeout`` s for each; the wall seconds."""
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return time.perf_counter() - t0

