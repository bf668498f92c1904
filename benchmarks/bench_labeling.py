"""Load test of the labeling server on loopback: concurrent clients posting labels.

    python benchmarks/bench_labeling.py                  # 20 clients, 60 s (the docs' numbers)
    python benchmarks/bench_labeling.py --seconds 5      # a quick smoke run

The server runs in its own process (``--serve``, started by this script) exactly as
``activegen label`` serves: uvicorn, the FastAPI app, a SQLite store with WAL and
``synchronous=FULL`` (every label fsynced before its 200). Its pool is the embedded digits
tiled to 40,000 images (so the pool does not run dry within the minute); the learner (linear
SVM) is retrained on every answer each time a round of 200 closes. Each client leases 10
queries at a time, answers them with their true label, and repeats until the time is up.

Printed: labels per second, p50/p90/p99/max latency of the label POSTs (and of the posts that
closed a round, which include the retraining), and the check that the store holds every
acknowledged label exactly once and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

try:  # run as a script from benchmarks/, or imported as benchmarks.<name>
    from _common import audit_store, run_clients
except ImportError:  # pragma: no cover
    from benchmarks._common import audit_store, run_clients

POOL_SIZE = 40_000
CONFIG = {
    "name": "load test", "seed": 0, "data": {"dataset": "digits"},
    "learner": {"name": "linear-svm"}, "strategy": {"name": "random"},
    "loop": {"initial": 200, "batch": 200, "budget": POOL_SIZE},
    "labeling": {"lease_size": 10},
}


def big_pool():
    """The embedded digits tiled to POOL_SIZE images, each with a little seeded noise."""
    from activegen.data.dataset import Dataset
    from activegen.data.registry import load_dataset

    digits = load_dataset("digits")
    rng = np.random.default_rng(0)
    rows = np.resize(np.arange(len(digits)), POOL_SIZE)
    noise = rng.integers(0, 16, size=(POOL_SIZE, *digits.X.shape[1:]), dtype=np.uint8)
    X = np.maximum(digits.X[rows], noise)
    return Dataset(X, digits.y[rows], digits.classes, "digits-x40k")


def serve(port: int, store: str) -> None:
    import uvicorn

    from activegen.server.config import parse_label_config
    from activegen.server.core.pool import dataset_pool
    from activegen.server.opening import open_session
    from activegen.server.run import bind
    from activegen.server.web.app import create_app
    from activegen.server.web.middleware import LOOPBACK_HOSTS

    session = open_session(parse_label_config(CONFIG), Path(store),
                           pool=dataset_pool(big_pool(), {}))
    app = create_app(session, allowed_hosts=list(LOOPBACK_HOSTS))
    sock = bind("127.0.0.1", port)
    print("ready", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[sock])
    session.close()


def client(name: str, base: str, truth: np.ndarray, deadline: float, out: dict) -> None:
    import httpx

    from activegen.server.web.middleware import REQUEST_HEADERS

    latencies, closing, acked, errors, waits = [], [], {}, [], 0
    with httpx.Client(headers=REQUEST_HEADERS, base_url=base, timeout=30.0) as http:
        while time.monotonic() < deadline:
            reply = http.post("/api/batch", json={"labeler": name})
            if reply.status_code != 200:
                errors.append(f"batch {reply.status_code} {reply.text}")
                break
            queries = reply.json()["queries"]
            if not queries:
                waits += 1
                time.sleep(0.01)
                continue
            for q in queries:
                if time.monotonic() >= deadline:
                    break
                label = int(truth[q["pool_index"]])
                t0 = time.perf_counter()
                r = http.post("/api/label", json={"query_id": q["id"], "label": label,
                                                  "labeler": name})
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(f"label {r.status_code} {r.text}")
                    continue
                body = r.json()
                if body["status"] != "recorded":
                    errors.append(f"query {q['id']}: {body['status']}")
                latencies.append(dt)
                if body["round_closed"]:
                    closing.append(dt)
                acked[q["id"]] = label
    out[name] = {"latencies": latencies, "closing": closing, "acked": acked, "errors": errors,
                 "waits": waits}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    if not 1 <= args.clients <= 200 or not 0 < args.seconds <= 600:
        parser.error("use 1..200 clients and 0..600 seconds")

    tmp = Path(tempfile.mkdtemp(prefix="bench-labeling-"))
    store = tmp / "load.sqlite"
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(store)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        truth = big_pool().y
        results: dict = {}
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client, args=(f"client-{i:02d}",
                                    f"http://127.0.0.1:{port}", truth, deadline, results))
                   for i in range(args.clients)]
        elapsed = run_clients(threads, timeout=args.seconds + 120)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    latencies = [x for r in results.values() for x in r["latencies"]]
    closing = [x for r in results.values() for x in r["closing"]]
    audit = audit_store(results, store)
    errors, rounds = audit.errors, audit.rounds
    lost, doubled, unacked = audit.lost, audit.doubled, audit.unacked
    report = {
        "clients": args.clients, "seconds": round(elapsed, 1), "labels": len(latencies),
        "labels_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {"p50": round(pct(latencies, 50), 2), "p90": round(pct(latencies, 90), 2),
                       "p99": round(pct(latencies, 99), 2),
                       "max": round(max(latencies) * 1000, 2) if latencies else None},
        "round_closing_posts": len(closing),
        "round_closing_latency_ms": {"p50": round(pct(closing, 50), 1),
                                     "max": round(max(closing) * 1000, 1) if closing else None},
        "rounds": rounds, "errors": len(errors), "lost": lost, "doubled": doubled,
        "stored_but_not_acknowledged": unacked, "empty_batch_waits":
        sum(r["waits"] for r in results.values()), "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    ok = audit.ok
    print("check:", "OK: every acknowledged label stored exactly once, nothing else"
          if ok else "FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
