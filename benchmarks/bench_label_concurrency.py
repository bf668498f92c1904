"""The labeling app under 20 concurrent labelers while a slow learner retrains, with the
background worker (``labeling.background = true``, the default) and with the round computed
inside the request that closed it (``false``, the app before the worker), in one run.

    python benchmarks/bench_label_concurrency.py               # the docs' numbers
    python benchmarks/bench_label_concurrency.py --rounds 3    # a quick smoke run

Each mode gets its own server process, served exactly as ``activegen label`` serves (uvicorn,
the FastAPI app, a SQLite store with WAL and ``synchronous=FULL``). The learner is a linear
SVM behind a wrapper that sleeps ``--fit-seconds`` (default 2 s) in every fit; it is
registered here only, in the server process. The pool is the embedded digits (1,797 images,
10 classes), the strategy margin sampling, ``--batch`` queries a round (default 40), leases
of 2, so that the 20 labelers share every round. Each labeler asks for a batch
(``POST /api/batch``, the next-batch request), answers it with the true labels
(``POST /api/label``), and asks again (when the batch is empty: after ``--poll`` seconds,
0.5 s as the page does) until the session is finished.

Printed per mode: p50/p99/max latency of the label posts and of the batch requests, the wall
time of the whole session, and the check that the store holds every acknowledged label
exactly once and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
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

CLIENTS = 20


def config(background: bool, batch: int, rounds: int) -> dict:
    return {
        "name": "concurrency", "seed": 0, "data": {"dataset": "digits"},
        "learner": {"name": "slow-linear-svm"}, "strategy": {"name": "margin"},
        "loop": {"initial": batch, "batch": batch, "budget": batch * rounds},
        "labeling": {"lease_size": 2, "background": background},
    }


def serve(port: int, store: str, settings: dict, fit_seconds: float) -> None:
    """The server process: registers the slow learner, then serves as ``activegen label``."""
    from typing import Any

    import uvicorn

    from activegen.models import LEARNERS, LinearSVM
    from activegen.server.config import parse_label_config
    from activegen.server.opening import open_session
    from activegen.server.run import bind
    from activegen.server.web.app import create_app
    from activegen.server.web.middleware import LOOPBACK_HOSTS

    @LEARNERS.register("slow-linear-svm")
    class SlowLinearSVM(LinearSVM):
        """A linear SVM whose every fit takes ``fit_seconds`` longer (a stand-in for a CNN)."""

        def fit(self, X: np.ndarray, y: np.ndarray, context: Any = None) -> Any:
            time.sleep(fit_seconds)
            return super().fit(X, y, context)

    session = open_session(parse_label_config(settings), Path(store))
    app = create_app(session, allowed_hosts=list(LOOPBACK_HOSTS))
    sock = bind("127.0.0.1", port)
    print("ready", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[sock])
    session.close()


def labeler(name: str, base: str, truth: np.ndarray, deadline: float, poll: float,
            out: dict) -> None:
    import httpx

    from activegen.server.web.middleware import REQUEST_HEADERS

    label_s, batch_s, acked, errors = [], [], {}, []
    with httpx.Client(headers=REQUEST_HEADERS, base_url=base, timeout=120.0) as http:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            reply = http.post("/api/batch", json={"labeler": name})
            batch_s.append(time.perf_counter() - t0)
            if reply.status_code != 200:
                errors.append(f"batch {reply.status_code} {reply.text}")
                break
            body = reply.json()
            if body["finished"]:
                break
            if not body["queries"]:
                time.sleep(poll)
                continue
            for q in body["queries"]:
                label = int(truth[q["pool_index"]])
                t0 = time.perf_counter()
                r = http.post("/api/label", json={"query_id": q["id"], "label": label,
                                                  "labeler": name})
                label_s.append(time.perf_counter() - t0)
                if r.status_code != 200 or r.json()["status"] != "recorded":
                    errors.append(f"label {r.status_code} {r.text}")
                    continue
                acked[q["id"]] = label
    out[name] = {"label": label_s, "batch": batch_s, "acked": acked, "errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 1) if values else float("nan")


def run_mode(background: bool, args: argparse.Namespace, truth: np.ndarray) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-label-concurrency-"))
    store = tmp / "s.sqlite"
    port = free_port()
    settings = config(background, args.batch, args.rounds)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(store), json.dumps(settings),
         str(args.fit_seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        results: dict = {}
        deadline = time.monotonic() + args.timeout
        threads = [threading.Thread(target=labeler, args=(f"labeler-{i:02d}",
                                    f"http://127.0.0.1:{port}", truth, deadline, args.poll,
                                    results))
                   for i in range(CLIENTS)]
        elapsed = run_clients(threads, timeout=args.timeout + 120)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    label_s = [x for r in results.values() for x in r["label"]]
    batch_s = [x for r in results.values() for x in r["batch"]]
    audit = audit_store(results, store)
    with sqlite3.connect(store) as conn:
        fits = conn.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
    errors, rounds = audit.errors, audit.rounds
    lost, doubled, unacked = audit.lost, audit.doubled, audit.unacked
    ok = audit.ok and audit.n_stored == args.batch * args.rounds
    return {
        "mode": "background worker" if background else "inline (in the request)",
        "labels": len(label_s), "rounds": rounds, "fits": fits,
        "session_seconds": round(elapsed, 1),
        "label_ms": {"p50": ms(label_s, 50), "p99": ms(label_s, 99),
                     "max": round(max(label_s) * 1000, 1) if label_s else None},
        "batch_requests": len(batch_s),
        "batch_ms": {"p50": ms(batch_s, 50), "p99": ms(batch_s, 99),
                     "max": round(max(batch_s) * 1000, 1) if batch_s else None},
        "errors": len(errors), "lost": lost, "doubled": doubled,
        "stored_but_not_acknowledged": unacked, "ok": ok, "first_errors": errors[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--fit-seconds", type=float, default=2.0)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, store, settings, fit_seconds = args.serve
        serve(int(port), store, json.loads(settings), float(fit_seconds))
        return 0
    if not 1 <= args.rounds <= 100 or not 1 <= args.batch <= 200 or args.fit_seconds < 0:
        parser.error("use 1..100 rounds, batches of 1..200 and a fit time >= 0")
    from activegen.data.registry import load_dataset

    truth = load_dataset("digits").y
    report = {"clients": CLIENTS, "fit_seconds": args.fit_seconds, "batch": args.batch,
              "poll_seconds": args.poll,
              "rounds": args.rounds, "cpu_count": os.cpu_count(),
              "after": run_mode(True, args, truth), "before": run_mode(False, args, truth)}
    after, before = report["after"], report["before"]
    report["p99_label_before_over_after"] = round(before["label_ms"]["p99"]
                                                  / after["label_ms"]["p99"], 1)
    report["p99_batch_before_over_after"] = round(before["batch_ms"]["p99"]
                                                  / after["batch_ms"]["p99"], 1)
    print(json.dumps(report, indent=1))
    ok = after["ok"] and before["ok"]
    print("check:", "OK: in both modes every acknowledged label stored exactly once, nothing "
          "else" if ok else "FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
