"""The labeling session's background worker: the next round is computed off the request path.

A gated strategy (it blocks in ``query`` until the test opens the gate) holds the worker in
the middle of a round, so the tests see exactly what labelers see then, without timing
anything: the request that closed the round has returned, the app answers every other
request, the page is told the next batch is being prepared, and an import arriving meanwhile
makes the worker drop the round it chose without those labels and choose again. The rounds
are the ones an inline session asks.
A subprocess test kills the server with SIGKILL while its worker fits a slow learner.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest

from activegen.engine import replay
from activegen.server.core.events import StoredEvents
from activegen.server.web.app import create_app
from activegen.server.web.middleware import REQUEST_HEADERS
from activegen.strategies import Query, QueryState
from activegen.strategies.uncertainty import MarginSampling
from label_support import api_client, digits_config, make_session

ME = "worker-test"
TESTS = str(Path(__file__).resolve().parent)
SRC = str(Path(__file__).resolve().parents[1] / "src")


class GatedMargin(MarginSampling):
    """Margin sampling that waits in ``query`` until :attr:`gate` is set."""

    name: ClassVar[str] = "margin"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.calls = 0

    def query(self, state: QueryState, k: int) -> Query:
        self.calls += 1
        self.entered.release()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().query(state, k)


def _answer(client, queries, truth) -> list[dict]:
    return [client.post("/api/label", json={"query_id": q["id"],
                                            "label": int(truth[q["pool_index"]]),
                                            "labeler": ME}).json() for q in queries]


def _batch_when_ready(session, client) -> dict:
    assert session.wait_ready(60)
    return client.post("/api/batch", json={"labeler": ME}).json()


def _session_rounds(session) -> list[tuple[int, int]]:
    return [(r, p) for r, p in session.store.read(
        "SELECT round, pool_index FROM queries WHERE source='session' ORDER BY id")]


def test_a_closing_label_returns_while_the_worker_computes_the_next_round(tmp_path: Path
                                                                          ) -> None:
    strategy = GatedMargin()
    config = digits_config(classes=[3, 8], background=True)
    session, pool = make_session(tmp_path / "bg.sqlite", config, strategy=strategy)
    client = api_client(create_app(session))
    try:
        first = _batch_when_ready(session, client)
        assert first["round"] == 0 and len(first["queries"]) == 4 and not first["preparing"]
        replies = _answer(client, first["queries"], pool.y)
        # The last answer closed the round and was acknowledged: the strategy of round 1 is
        # still waiting at the gate, so the round was not computed inside the request.
        assert [r["round_closed"] for r in replies] == [False, False, False, True]
        assert strategy.entered.acquire(timeout=60)
        assert not strategy.gate.is_set()
        stored = session.store.read("SELECT COUNT(*) FROM labels")[0][0]
        assert stored == 4  # committed before the acknowledgement
        # Everything else is served meanwhile, and says the next batch is being prepared.
        state = client.get("/api/state").json()
        assert state["preparing"] and state["round"] == 1 and state["answered"] == 4
        waiting = client.post("/api/batch", json={"labeler": ME}).json()
        assert waiting["queries"] == [] and waiting["preparing"] and not waiting["finished"]
        assert client.get(f"/api/image/{first['queries'][0]['id']}.png").status_code == 200
        # Answers of the answered round are final, as when the round was computed inline.
        assert client.post("/api/undo", json={"labeler": ME}).status_code == 409
        # An import arriving now is acknowledged and makes the worker choose round 1 again.
        asked = {q["pool_index"] for q in first["queries"]}
        extra = next(i for i in range(len(pool)) if i not in asked)
        r = client.post("/api/import", json={
            "format": "csv", "data": f"pool_index,label\n{extra},{int(pool.y[extra])}\n"})
        assert r.status_code == 200 and r.json()["imported"] == 1
        strategy.gate.set()
        second = _batch_when_ready(session, client)
        assert session.worker is not None and session.worker.error is None
        assert strategy.calls == 2  # the first computation was dropped, the second stored
        assert second["round"] == 1 and len(second["queries"]) == 4 and not second["preparing"]
        assert not client.get("/api/state").json()["preparing"]
        _answer(client, second["queries"], pool.y)
        assert _batch_when_ready(session, client)["round"] == 2
        rounds = _session_rounds(session)
    finally:
        strategy.gate.set()
        session.close()

    # An inline session given the same answers and the same import asks the same rounds.
    inline, _ = make_session(tmp_path / "inline.sqlite", digits_config(classes=[3, 8]),
                             strategy=MarginSampling())
    try:
        inline_client = api_client(create_app(inline))
        for round_ in (0, 1):
            queries = inline_client.post("/api/batch", json={"labeler": ME}).json()["queries"]
            if round_ == 0:
                for q in queries[:-1]:
                    _answer(inline_client, [q], pool.y)
                inline.import_labels([(extra, int(pool.y[extra]))])
                _answer(inline_client, queries[-1:], pool.y)
            else:
                _answer(inline_client, queries, pool.y)
        assert _session_rounds(inline) == rounds
    finally:
        inline.close()


def test_background_and_inline_sessions_ask_the_same_rounds(tmp_path: Path) -> None:
    asked = {}
    for background in (True, False):
        config = digits_config(strategy="entropy", batch=5, budget=25, background=background)
        session, pool = make_session(tmp_path / f"{background}.sqlite", config)
        client = api_client(create_app(session))
        try:
            while True:
                reply = _batch_when_ready(session, client)
                if reply["finished"]:
                    break
                _answer(client, reply["queries"], pool.y)
            asked[background] = (_session_rounds(session), session.store.fits())
        finally:
            session.close()
    assert len(asked[True][0]) == 25
    assert asked[True][0] == asked[False][0]
    assert ([f["accuracy"] for f in asked[True][1]] == [f["accuracy"] for f in asked[False][1]])


class FailingMargin(MarginSampling):
    name: ClassVar[str] = "margin"

    def query(self, state: QueryState, k: int) -> Query:
        raise RuntimeError("the strategy broke")


def test_a_failing_round_is_reported_and_loses_no_answer(tmp_path: Path) -> None:
    session, pool = make_session(tmp_path / "fail.sqlite", digits_config(background=True),
                                 strategy=FailingMargin())
    client = api_client(create_app(session))
    try:
        first = _batch_when_ready(session, client)
        _answer(client, first["queries"], pool.y)
        assert session.wait_ready(60)
        state = client.get("/api/state").json()
        assert state["preparing"] and "the strategy broke" in state["worker_error"]
        assert state["answered"] == 4
        assert session.store.read("SELECT COUNT(*) FROM labels")[0][0] == 4
    finally:
        session.close()


# -- SIGKILL while the worker fits ------------------------------------------------------------
SERVER = r"""
import json, os, sys, time
from typing import ClassVar
from activegen.models import LEARNERS, LinearSVM

@LEARNERS.register("slow-linear-svm")
class SlowLinearSVM(LinearSVM):
    name: ClassVar[str] = "slow-linear-svm"
    def fit(self, X, y, context=None):
        open(os.environ["FIT_MARK"], "a").close()  # the worker's window for the kill
        time.sleep(float(os.environ["FIT_SECONDS"]))
        return super().fit(X, y, context)

from activegen.server.config import parse_label_config
from activegen.server.run import prepare_server
config = parse_label_config(json.loads(sys.argv[1]))
prepared = prepare_server(config, host="127.0.0.1", port=0, store=sys.argv[2])
print(f"ready {prepared.sock.getsockname()[1]}", flush=True)
prepared.server.run(sockets=[prepared.sock])
"""


def _start(config: dict, store: Path, mark: Path, seconds: float) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "FIT_MARK": str(mark), "FIT_SECONDS": str(seconds)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(config), str(store)],
                            stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().split()
    assert line[:1] == ["ready"], line
    return proc, f"http://127.0.0.1:{line[1]}"


def _ready_batch(client: httpx.Client) -> dict:
    deadline = time.monotonic() + 120
    while True:
        reply = client.post("/api/batch", json={"labeler": ME}).json()
        if not reply["preparing"]:
            return reply
        assert time.monotonic() < deadline, "the worker never finished"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_while_the_worker_fits_loses_no_acknowledged_label(tmp_path: Path) -> None:
    config = {"name": "kill", "seed": 5, "data": {"dataset": "digits", "classes": [3, 8]},
              "learner": {"name": "slow-linear-svm"}, "strategy": {"name": "margin"},
              "loop": {"initial": 4, "batch": 4, "budget": 12}}
    store, mark = tmp_path / "kill.sqlite", tmp_path / "fitting"
    from activegen.server.config import parse_label_config
    from activegen.server.opening import load_session_data

    pool, _ = load_session_data(parse_label_config({**config, "learner": {"name": "linear-svm"}}))
    acked: dict[int, int] = {}
    proc, base = _start(config, store, mark, seconds=60.0)
    try:
        with httpx.Client(headers=REQUEST_HEADERS, base_url=base, timeout=10.0) as client:
            first = _ready_batch(client)
            for q in first["queries"]:
                label = int(pool.y[q["pool_index"]])
                r = client.post("/api/label", json={"query_id": q["id"], "label": label,
                                                    "labeler": ME})
                assert r.status_code == 200
                acked[q["id"]] = label
            # The worker is fitting round 1's learner (the learner left a mark): an import
            # is acknowledged meanwhile, then the server is killed.
            deadline = time.monotonic() + 60
            while not mark.exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert client.get("/api/state").json()["preparing"]
            asked = {q["pool_index"] for q in first["queries"]}
            extra = next(i for i in range(len(pool)) if i not in asked)
            r = client.post("/api/import", json={
                "format": "csv", "data": f"pool_index,label\n{extra},{int(pool.y[extra])}\n"})
            assert r.status_code == 200 and r.json()["imported"] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT MAX(round) FROM queries WHERE source='session'"
                            ).fetchone()[0] == 0  # killed before round 1 was stored
    # Restarted: every acknowledged answer is there once, and the session resumes.
    proc, base = _start(config, store, mark, seconds=0.0)
    try:
        with httpx.Client(headers=REQUEST_HEADERS, base_url=base, timeout=10.0) as client:
            second = _ready_batch(client)
            assert second["round"] == 1 and len(second["queries"]) == 4
            assert not {q["pool_index"] for q in second["queries"]} & (asked | {extra})
            for q in second["queries"]:
                label = int(pool.y[q["pool_index"]])
                assert client.post("/api/label", json={"query_id": q["id"], "label": label,
                                                       "labeler": ME}).status_code == 200
                acked[q["id"]] = label
            assert _ready_batch(client)["round"] == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    with sqlite3.connect(store) as conn:
        stored = conn.execute("SELECT query_id, label FROM labels").fetchall()
        pool_rows = conn.execute("SELECT COUNT(pool_index), COUNT(DISTINCT pool_index) "
                                 "FROM queries").fetchone()
        imported = conn.execute("SELECT q.pool_index, l.label FROM labels l JOIN queries q "
                                "ON q.id = l.query_id WHERE q.source='import'").fetchall()
    by_query: dict[int, list[int]] = {}
    for qid, label in stored:
        by_query.setdefault(qid, []).append(label)
    assert all(by_query.get(qid) == [label] for qid, label in acked.items())
    assert len(stored) == len(acked) + 1 and imported == [(extra, int(pool.y[extra]))]
    assert pool_rows[0] == pool_rows[1]  # no pool image asked twice
    assert np.unique(list(by_query)).size == len(by_query)


def test_the_store_read_as_the_engines_state(tmp_path: Path) -> None:
    """The store's events folded by the engine's replay: what a run's state would hold."""
    session, pool = make_session(tmp_path / "state.sqlite", digits_config())
    try:
        def load():
            checkpoint = StoredEvents(session.store).load()
            return replay(checkpoint.events, len(pool), session.X_pool.shape[1:],
                          session.n_classes)

        state = load()  # round 0 (asked when the session opened) is open: nothing told
        assert state.round == 0 and state.n_spent == 0 and state.queried.sum() == 0
        assert state.pending is not None and len(state.pending.indices) == 4
        first = session.batch(ME).queries
        answers = {r.pool_index: (-1 if j == 0 else int(pool.y[r.pool_index]))
                   for j, r in enumerate(first)}
        for row in first[:-1]:
            session.label(row.id, answers[row.pool_index], ME)
        open_state = load()  # round 0 still open: its answers are not told yet
        assert open_state.round == 0 and len(open_state.labeled_y) == 0
        assert open_state.pending is not None
        session.label(first[-1].id, answers[first[-1].pool_index], ME)
        state = load()
        kept = {i: y for i, y in answers.items() if y >= 0}
        assert state.round == 1 and state.n_spent == 4 and state.n_abstained == 1
        assert dict(zip(state.labeled_indices.tolist(), state.labeled_y.tolist())) == kept
        assert state.queried.sum() == 4 and state.empty_rounds == 0
        assert state.pending is not None and state.pending.round == 1  # round 1 is asked
        for row in session.batch(ME).queries:
            session.label(row.id, -1, ME)  # a round of "can't tell"
        state = load()
        assert state.round == 2 and state.empty_rounds == 1 and state.n_abstained == 5
        assert len(state.labeled_y) == 3
        # the live engine holds the same state
        live = session.worker.engine.state
        assert (live.round, live.n_spent, live.n_abstained, live.empty_rounds) == \
            (state.round, state.n_spent, state.n_abstained, state.empty_rounds)
    finally:
        session.close()
