"""k-center greedy: activegen vs a plain vectorised loop vs scikit-activeml, same run.

    PYTHONPATH=src nice -n 10 python benchmarks/bench_kcenter.py   # N = 100k and 25k, 3 repeats

Each (method, data, N, repeat) runs in a fresh subprocess that loads the features from .npy
and then times the selection alone (wall clock, ``time.perf_counter``). Peak memory is the
process's peak resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
after the data are loaded) minus the resident size at that moment: the extra memory the
method needed, torch and numpy allocations alike. Methods run interleaved, repeats take the
median. Every method gets the same thread count (``--threads``, default 1: with more threads
than free cores, OpenMP spin-waiting made scikit-learn's distance kernels, which
scikit-activeml uses, about 7x slower on our shared machine). The machine is shared, so
times are noisy; the ratios within one run are what count.

Data (d = 512, 3,000 labeled at random, 1,000 picks):
- clustered: a Gaussian mixture, 50 components with random means, each spread along its
  own 16-dimensional subspace plus small isotropic noise (like a CNN's class clusters);
- unstructured: i.i.d. standard normal.

Methods:
- activegen: ``kcenter_greedy`` (float32 screen + float64 refinement, lazy exact greedy);
- plain: float32 torch, chunked gemm for the initial distances, then one matrix-vector
  product over all N·d features per pick (``m = min(m, ||x||² + ||c||² − 2 X c)``);
- skactiveml: ``skactiveml.pool.CoreSet().query(X, y, batch_size=k)`` (at N = 25,000 only by
  default: it keeps a [k, N] float64 utilities matrix and takes minutes at 100,000).

Picks are compared with a float64 brute force run once per data set (``--verify``, default on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from activegen.strategies.coreset import kcenter_greedy

try:
    from skactiveml.pool import CoreSet
except ImportError:  # optional: pip install -e '.[bench]'
    CoreSet = None

D = 512
N_LABELED = 3000
K = 1000
THREADS = 1


def make_data(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "unstructured":
        return rng.standard_normal((n, D), dtype=np.float32)
    n_components, rank = 50, 16
    means = rng.standard_normal((n_components, D)).astype(np.float32) * 2.0
    bases = rng.standard_normal((n_components, rank, D)).astype(np.float32) / np.sqrt(rank)
    spread = rng.uniform(0.5, 1.5, n_components).astype(np.float32)
    label = rng.integers(0, n_components, n)
    X = np.empty((n, D), dtype=np.float32)
    for c in range(n_components):
        rows = np.flatnonzero(label == c)
        z = rng.standard_normal((len(rows), rank), dtype=np.float32) * spread[c]
        X[rows] = means[c] + z @ bases[c] + 0.05 * rng.standard_normal((len(rows), D),
                                                                         dtype=np.float32)
    return X


def plain_loop(X: np.ndarray, labeled: np.ndarray, k: int, dtype: str = "float32") -> np.ndarray:
    """The baseline: initial minima by chunked gemm, then one mat-vec over all points per pick."""
    t = torch.from_numpy(X).to(getattr(torch, dtype))
    sq = (t * t).sum(dim=1)
    C = t[torch.from_numpy(labeled)]
    c_sq = sq[torch.from_numpy(labeled)]
    m = torch.empty(len(t), dtype=t.dtype)
    step = max(1, (1 << 24) // len(C))
    for s in range(0, len(t), step):
        block = torch.addmm(c_sq[None, :] + sq[s : s + step, None], t[s : s + step], C.T,
                            alpha=-2.0)
        m[s : s + step] = block.min(dim=1).values
    m[torch.from_numpy(labeled)] = -float("inf")
    picks = []
    for _ in range(k):
        j = int(torch.argmax(m))
        picks.append(j)
        dist = torch.addmv(sq + sq[j], t, t[j], alpha=-2.0)
        torch.minimum(m, dist, out=m)
        m[j] = -float("inf")
    return np.asarray(picks)


def skactiveml_coreset(X: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
    y = np.full(len(X), np.nan)
    y[labeled] = 0
    return np.asarray(CoreSet(random_state=0).query(X, y, batch_size=k))


def activegen_kcenter(X: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
    return kcenter_greedy(X, labeled, k, device="cpu")


METHODS = {"activegen": activegen_kcenter, "plain": plain_loop, "skactiveml": skactiveml_coreset,
           "float64-brute": lambda X, lab, k: plain_loop(X, lab, k, "float64")}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(method: str, data_path: str, labeled_path: str, out_path: str, threads: str) -> None:
    torch.set_num_threads(int(threads))
    X = np.load(data_path)
    labeled = np.load(labeled_path)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    picks = METHODS[method](X, labeled, K)
    wall = time.perf_counter() - start
    peak_mb = (_rss_kib("VmHWM") - before) / 1024
    np.save(out_path, picks)
    print(json.dumps({"wall_s": wall, "peak_mb": peak_mb}))


def run_child(method: str, data: Path, labeled: Path, out: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads)}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, __file__, "--child", method, str(data), str(labeled), str(out),
         str(threads)],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 25_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skactiveml-max-n", type=int, default=25_000,
                        help="run scikit-activeml only up to this N (it is slow at 100,000)")
    parser.add_argument("--no-verify", action="store_true", help="skip the float64 brute force")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads for every method (1 avoids OpenMP oversubscription, which "
                             "slows scikit-learn's distance kernels badly on a busy machine)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for n in args.sizes:
            for kind in ("clustered", "unstructured"):
                X = make_data(kind, n)
                labeled = np.random.default_rng(1).choice(n, N_LABELED, replace=False)
                data, lab = tmpdir / f"{kind}{n}.npy", tmpdir / f"{kind}{n}_labeled.npy"
                np.save(data, X)
                np.save(lab, labeled)
                del X
                methods = ["activegen", "plain"]
                if CoreSet is None:
                    print("scikit-activeml not installed (pip install -e '.[bench]'): skipped")
                elif n <= args.skactiveml_max_n:
                    methods.append("skactiveml")
                times: dict[str, list[dict]] = {m: [] for m in methods}
                picks: dict[str, np.ndarray] = {}
                for _ in range(args.repeats):
                    for method in methods:
                        out = tmpdir / f"{method}.npy"
                        times[method].append(run_child(method, data, lab, out, args.threads))
                        picks[method] = np.load(out)
                if not args.no_verify:
                    out = tmpdir / "brute.npy"
                    run_child("float64-brute", data, lab, out, args.threads)
                    picks["float64-brute"] = np.load(out)
                medians = {m: statistics.median(r["wall_s"] for r in times[m]) for m in methods}
                for method in methods:
                    row = {
                        "N": n, "data": kind, "method": method,
                        "wall_s": medians[method],
                        "peak_mb": statistics.median(r["peak_mb"] for r in times[method]),
                        "plain_over_method": medians["plain"] / medians[method],
                        "skactiveml_over_method": (medians["skactiveml"] / medians[method]
                                                   if "skactiveml" in medians else None),
                        "same_picks_as_float64": (
                            int((picks[method] == picks["float64-brute"]).sum())
                            if "float64-brute" in picks else None),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    print(f"d = {D}, {N_LABELED} labeled, {K} picks; median of {args.repeats} runs; "
          f"{args.threads} thread(s)")
    print("| N | data | method | wall s | peak MB | plain ÷ method | skactiveml ÷ method "
          "| picks equal to float64 brute force |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sk = f"{r['skactiveml_over_method']:.1f}×" if r["skactiveml_over_method"] else "–"
        same = (f"{r['same_picks_as_float64']}/{K}" if r["same_picks_as_float64"] is not None
                else "–")
        print(f"| {r['N']:,} | {r['data']} | {r['method']} | {r['wall_s']:.2f} | "
              f"{r['peak_mb']:.0f} | {r['plain_over_method']:.1f}× | {sk} | {same} |")


if __name__ == "__main__":
    main()
