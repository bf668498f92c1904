"""Crash test: a real server process killed with SIGKILL at random moments while a client
labels, restarted each time; no acknowledged label may be lost or doubled, no query asked
twice, and the session must end up asking exactly what an uninterrupted session asks.

Starting Python with torch costs seconds, so the restarts fork from a "zygote" process that
has imported activegen once: each child loads the data, opens the store and serves with
uvicorn exactly as ``activegen label`` does, and is killed with SIGKILL. One more test runs
the real ``activegen label`` command twice around a SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from activegen.server.opening import load_session_data, open_session
from activegen.server.web.middleware import REQUEST_HEADERS
from label_support import digits_config

pytestmark = pytest.mark.slow

SRC = str(Path(__file__).resolve().parents[1] / "src")
KILLS = 50

ZYGOTE = r"""
import json, os, signal, sys
from activegen.server.config import parse_label_config
from activegen.server.run import prepare_server
import uvicorn  # noqa: F401  (imported once, before forking)
config = parse_label_config(json.loads(sys.argv[1]))
store, port = sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
print("zygote", flush=True)
for line in sys.stdin:
    if line.strip() != "start":
        break
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        prepared = prepare_server(config, host="127.0.0.1", port=port, store=store)
        print(f"ready {os.getpid()}", flush=True)
        prepared.server.run(sockets=[prepared.sock])
        os._exit(0)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Labeler(threading.Thread):
    """Labels as fast as the server lets it (with small random pauses), retrying through
    crashes; remembers every acknowledged answer."""

    def __init__(self, base: str, truth: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.base, self.truth = base, truth
        self.acked: dict[int, int] = {}
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.rng = random.Random(7)

    def run(self) -> None:
        with httpx.Client(headers=REQUEST_HEADERS, base_url=self.base, timeout=5.0) as client:
            while not self.stop.is_set():
                try:
                    reply = client.post("/api/batch", json={"labeler": "crash"})
                    if reply.status_code != 200:
                        self.errors.append(f"batch {reply.status_code}: {reply.text}")
                        return
                    queries = reply.json()["queries"]
                    if not queries:
                        time.sleep(0.02)
                        continue
                    for q in queries:
                        if self.stop.is_set():
                            return
                        self._answer(client, q)
                        time.sleep(self.rng.uniform(0.0, 0.01))
                except httpx.TransportError:
                    time.sleep(0.02)  # the server is down: try again

    def _answer(self, client: httpx.Client, q: dict) -> None:
        label = int(self.truth[q["pool_index"]])
        reply = client.post("/api/label", json={"query_id": q["id"], "label": label,
                                                "labeler": "crash"})
        if reply.status_code != 200:
            self.errors.append(f"label {reply.status_code}: {reply.text}")
            self.stop.set()
            return
        if q["id"] in self.acked and self.acked[q["id"]] != label:
            self.errors.append(f"query {q['id']} acknowledged with two labels")
        self.acked[q["id"]] = label


def replay_matches(config, store: Path, tmp: Path) -> None:
    """An uninterrupted in-process session given the same answers asks the same queries."""
    with sqlite3.connect(store) as conn:
        crashed = conn.execute("SELECT q.round, q.pool_index, l.label FROM queries q "
                               "LEFT JOIN labels l ON l.query_id = q.id ORDER BY q.id").fetchall()
    answers = {pool_index: label for _, pool_index, label in crashed if label is not None}
    reference = open_session(config, tmp / "reference.sqlite")
    try:
        asked = []
        while (round_ := reference.store.open_round()) is not None:
            rows = reference.store.read("SELECT id, round, pool_index FROM queries "
                                        "WHERE round=? ORDER BY id", (round_,))
            asked.extend((r, p) for _, r, p in rows)
            if len(asked) >= len(crashed) or not all(p in answers for _, _, p in rows):
                break
            for qid, _, pool_index in rows:
                reference.label(qid, answers[pool_index], "replay")
        assert asked[: len(crashed)] == [(r, p) for r, p, _ in crashed]
    finally:
        reference.close()


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    # The server computes rounds in its background worker (the default); the in-process
    # replay computes them inline: both must ask the same queries.
    config = digits_config(batch=10, budget=1200, background=True)
    store = tmp_path / "crash.sqlite"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, json.dumps(config.model_dump(mode="json")), str(store),
         str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    pool, _ = load_session_data(config)
    labeler = Labeler(f"http://127.0.0.1:{port}", pool.y)
    rng = random.Random(2026)
    pid = None
    try:
        assert zygote.stdout.readline().strip() == "zygote"
        labeler.start()
        for kill in range(KILLS + 1):
            zygote.stdin.write("start\n")
            zygote.stdin.flush()
            line = zygote.stdout.readline().split()
            assert line[:1] == ["ready"], f"restart {kill}: {line}"
            pid = int(line[1])
            if kill == KILLS:
                break
            time.sleep(rng.uniform(0.02, 0.8))  # the worker may use part of it
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not gone(pid):
                assert time.monotonic() < deadline, "the killed server did not die"
                time.sleep(0.005)
        time.sleep(0.5)  # the last server lives: let the client finish what is in flight
        labeler.stop.set()
        labeler.join(timeout=10)
    finally:
        labeler.stop.set()
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGKILL)
        zygote.stdin.close()
        zygote.wait(timeout=10)
    assert not labeler.errors, labeler.errors[:5]
    # Enough work happened for the kills to land in every phase (labels, retrains).
    assert len(labeler.acked) >= 100
    with sqlite3.connect(store) as conn:
        stored = conn.execute("SELECT query_id, label FROM labels").fetchall()
        n_pool = conn.execute("SELECT COUNT(pool_index), COUNT(DISTINCT pool_index) "
                              "FROM queries").fetchone()
        rounds = conn.execute("SELECT COUNT(DISTINCT round) FROM queries").fetchone()[0]
    by_query: dict[int, list[int]] = {}
    for qid, label in stored:
        by_query.setdefault(qid, []).append(label)
    for qid, label in labeler.acked.items():
        assert by_query.get(qid) == [label], f"query {qid}: acknowledged {label}, stored " \
            f"{by_query.get(qid)}"
    assert all(len(v) == 1 for v in by_query.values())
    assert n_pool[0] == n_pool[1]  # no pool image asked twice
    assert rounds >= 10
    print(f"\n{KILLS} kills: {len(labeler.acked)} acknowledged answers, {len(stored)} stored, "
          f"{rounds} rounds")
    replay_matches(digits_config(batch=10, budget=1200), store, tmp_path)


def test_the_same_command_resumes_after_sigkill(tmp_path: Path) -> None:
    """``activegen label CONFIG`` killed with SIGKILL and started again continues the session."""
    config_path = tmp_path / "session.toml"
    port = free_port()
    config_path.write_text(
        '[data]\ndataset = "digits"\nclasses = [5, 7]\n'
        '[loop]\ninitial = 4\nbatch = 4\nbudget = 40\n'
        f'[labeling]\nport = {port}\nstore = "{tmp_path / "s.sqlite"}"\n')
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = f"http://127.0.0.1:{port}"
    seen: list[list[int]] = []
    for attempt in range(2):
        server = subprocess.Popen([sys.executable, "-m", "activegen.cli", "label",
                                   str(config_path)], env=env, stdout=subprocess.PIPE, text=True)
        try:
            for line in server.stdout:
                if "open:" in line:
                    break
            with httpx.Client(headers=REQUEST_HEADERS, base_url=base, timeout=5.0) as client:
                reply = {"preparing": True}
                while reply["preparing"]:  # the background worker prepares the round
                    reply = client.post("/api/batch", json={"labeler": "cli"}).json()
                    time.sleep(0.05)
                state = client.get("/api/state").json()
                queries = reply["queries"]
                seen.append([q["id"] for q in queries])
                if attempt == 0:
                    for q in queries[:3]:
                        r = client.post("/api/label", json={"query_id": q["id"], "label": 1,
                                                            "labeler": "cli"})
                        assert r.status_code == 200
                else:
                    assert state["answered"] == 3 and state["round"] == 0
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
            server.stdout.close()
    assert seen[1] == seen[0][3:]
