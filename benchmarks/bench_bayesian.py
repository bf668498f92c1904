"""BatchBALD against BALD, and the peak memory of chunked MC dropout.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_bayesian.py [--quick] [--reference]

1. Selection time per batch of 10 from given posterior samples, N = 10,000 pool points,
   T = 20 passes, K = 10 classes (random Dirichlet-like samples): ``batchbald_select``
   (exact joint entropy for the first picks, 1,000 sampled configurations beyond) against
   ``bald_scores`` + top 10, interleaved, median of 3 repeats; the ratio is what counts (the
   machine is shared).
2. Peak extra resident memory of BALD scoring through ``iter_proba_samples`` (chunks of 512)
   at N = 100,000 8×8 images with a fitted small CNN (dropout 0.5, T = 20), against the size of
   the full ``[N, T, K]`` float64 tensor that an unchunked implementation would hold. Linux
   ``VmHWM`` after a ``/proc/self/clear_refs`` reset; elsewhere the row is skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from activegen.strategies.base import top_k
from activegen.strategies.bayesian import bald_scores, batchbald_select

try:  # run as a script or imported by run_all
    from _common import row
except ImportError:  # pragma: no cover
    from benchmarks._common import row


def _samples(n: int, t: int, k: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, t, k)) * 2.0
    p = np.exp(logits)
    return p / p.sum(axis=2, keepdims=True)


def _reference() -> Any:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from batchbald_reference import batchbald_select_reference

    return batchbald_select_reference


def time_selection(n: int = 10_000, t: int = 20, k: int = 10, batch: int = 10,
                   repeats: int = 3, reference: bool = False
                   ) -> tuple[float, float, float | None]:
    """Median seconds of (BatchBALD, BALD top-k, the reference BatchBALD or None)."""
    samples = _samples(n, t, k)
    old_select = _reference() if reference else None
    bald, batchbald, old = [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        top_k(bald_scores(samples), np.arange(n), batch, np.random.default_rng(r))
        t1 = time.perf_counter()
        picks, _ = batchbald_select(samples, batch, np.random.default_rng(r))
        t2 = time.perf_counter()
        bald.append(t1 - t0)
        batchbald.append(t2 - t1)
        if old_select is not None:
            t3 = time.perf_counter()
            old_picks, _ = old_select(samples, batch, np.random.default_rng(r))
            old.append(time.perf_counter() - t3)
            if not np.array_equal(picks, old_picks):
                raise AssertionError("the vectorised BatchBALD picked differently")
    return (statistics.median(batchbald), statistics.median(bald),
            statistics.median(old) if old else None)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(field)


def mc_dropout_peak(n: int = 100_000, t: int = 20) -> tuple[float, float] | None:
    """(peak extra MiB of chunked BALD scoring, MiB of the full [N, T, K] float64 tensor)."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    from activegen._settings import BuildContext
    from activegen.data import load_dataset
    from activegen.models import LEARNERS

    data = load_dataset("digits")
    X_small = data.to_float()
    learner = LEARNERS.build("small-cnn", {"dropout": 0.5, "epochs": 2, "schedule": "fixed"},
                             BuildContext(n_classes=10, seed=0, device="cpu"))
    learner.fit(X_small[:500], data.y[:500])
    X = X_small[np.random.default_rng(0).integers(len(X_small), size=n)]
    scores = np.empty(n)
    learner.predict_proba_samples(X[:600], t, np.random.default_rng(0))  # warm-up
    Path("/proc/self/clear_refs").write_text("5")
    base = _rss_kib("VmRSS")
    start = 0
    for chunk in learner.iter_proba_samples(X, t, np.random.default_rng(0), chunk_size=512):
        scores[start:start + len(chunk)] = bald_scores(chunk)
        start += len(chunk)
    peak = _rss_kib("VmHWM")
    return (peak - base) / 1024, n * t * 10 * 8 / 2**20


def run(quick: bool = False, reference: bool = False) -> list[dict[str, Any]]:
    n = 2_000 if quick else 10_000
    batchbald, bald, old = time_selection(n=n, repeats=1 if quick else 3, reference=reference)
    rows = [row("bayesian", f"batchbald batch 10, N={n}, T=20, K=10", batchbald, "s",
                "bald top-10", bald)]
    if old is not None:
        rows.append(row("bayesian", f"batchbald batch 10, N={n}, T=20, K=10", batchbald, "s",
                        "previous numpy batchbald", old))
    peak = mc_dropout_peak(n=20_000 if quick else 100_000)
    if peak is not None:
        rows.append(row("bayesian", f"mc-dropout BALD peak memory, N={20_000 if quick else 100_000}"
                        ", T=20, chunks of 512", peak[0], "MiB", "full [N,T,K] float64",
                        peak[1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reference", action="store_true",
                        help="also time the previous BatchBALD implementation")
    args = parser.parse_args()
    for r in run(args.quick, args.reference):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
