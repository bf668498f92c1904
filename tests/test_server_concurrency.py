"""Several people label one session at once through a real server: nobody is handed a query
someone else holds, and no answer is lost or doubled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from activegen.server.opening import load_session_data
from activegen.server.run import prepare_server
from activegen.server.web.middleware import REQUEST_HEADERS
from label_support import digits_config

LABELERS = 8


def test_concurrent_labelers_never_share_a_query(tmp_path: Path) -> None:
    config = digits_config(batch=24, lease_size=3, budget=600, strategy="random",
                           store=str(tmp_path / "c.sqlite"))
    prepared = prepare_server(config, host="127.0.0.1", port=0)
    thread = threading.Thread(target=prepared.server.run, kwargs={"sockets": [prepared.sock]},
                              daemon=True)
    thread.start()
    while not prepared.server.started:
        time.sleep(0.01)
    pool, _ = load_session_data(config)
    acked: dict[str, dict[int, int]] = {}
    problems: list[str] = []
    deadline = time.monotonic() + 3.0

    def work(name: str) -> None:
        mine: dict[int, int] = {}
        with httpx.Client(headers=REQUEST_HEADERS, base_url=prepared.url, timeout=30) as client:
            while time.monotonic() < deadline:
                queries = client.post("/api/batch", json={"labeler": name}).json()["queries"]
                if not queries:
                    time.sleep(0.005)
                    continue
                for q in queries:
                    label = int(pool.y[q["pool_index"]])
                    r = client.post("/api/label", json={"query_id": q["id"], "label": label,
                                                        "labeler": name})
                    if r.status_code != 200 or r.json()["status"] != "recorded":
                        problems.append(f"{name} q{q['id']}: {r.status_code} {r.text}")
                    else:
                        mine[q["id"]] = label
        acked[name] = mine

    workers = [threading.Thread(target=work, args=(f"person-{i}",)) for i in range(LABELERS)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
    finally:
        prepared.server.should_exit = True
        thread.join(timeout=10)
    store = prepared.session.store
    try:
        # Had two people been handed one query, the second answer would be a 409 (held by
        # another labeler) or an "already recorded": either lands in problems.
        assert not problems, problems[:5]
        all_acked = [(qid, name, label) for name, m in acked.items() for qid, label in m.items()]
        assert len(all_acked) >= 50 and len({a[0] for a in all_acked}) == len(all_acked)
        assert len({name for _, name, _ in all_acked}) == LABELERS  # everyone got work
        stored = store.read("SELECT query_id, labeler, label FROM labels")
        assert sorted(stored) == sorted(all_acked)  # nothing lost, doubled or extra
    finally:
        prepared.session.close()
        prepared.sock.close()
