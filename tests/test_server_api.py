"""The labeling app's API: every route, every bad input, resuming, interchange, security."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from activegen.data.dataset import Dataset
from activegen.errors import ConfigError, DataError
from activegen.server.config import load_label_config
from activegen.server.core.pool import dataset_pool
from activegen.server.core.session import LabelSession
from activegen.server.opening import load_session_data, open_session
from activegen.server.web.app import create_app
from activegen.server.web.middleware import LOOPBACK_HOSTS
from label_support import FakeSynthesis, api_client, digits_config, make_session

ME = "alice"


@pytest.fixture
def setup(tmp_path: Path):
    session, pool = make_session(tmp_path / "s.sqlite")
    client = api_client(create_app(session))
    yield session, pool, client
    session.close()


def label_count(session: LabelSession) -> int:
    return session.store.read("SELECT COUNT(*) FROM labels")[0][0]


def snapshot(session: LabelSession) -> tuple:
    return (session.store.read("SELECT * FROM labels ORDER BY id"),
            session.store.read("SELECT id, status, assigned_to FROM queries ORDER BY id"))


def truth(pool: Dataset, query: dict) -> int:
    return int(pool.y[query["pool_index"]])


def answer_batch(client: TestClient, pool: Dataset, labeler: str = ME) -> list[dict]:
    queries = client.post("/api/batch", json={"labeler": labeler}).json()["queries"]
    for q in queries:
        r = client.post("/api/label", json={"query_id": q["id"], "label": truth(pool, q),
                                            "labeler": labeler})
        assert r.status_code == 200, r.text
    return queries


# -- page and state -----------------------------------------------------------------------
def test_page_and_script(setup) -> None:
    _, _, client = setup
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/api/label" in page.text and "pixelated" in page.text  # the script is inlined
    script = client.get("/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/label" in script.text


def test_state_before_any_answer(setup) -> None:
    _session, _, client = setup
    state = client.get("/api/state").json()
    assert state["classes"] == [str(c) for c in range(10)]
    assert state["round"] == 0 and state["asked"] == 4 and state["answered"] == 0
    assert state["budget"] == 24 and state["open"] == 4 and not state["finished"]
    assert state["test_sets"] == ["digits-test"] and state["curve"] == []


# -- batches and leases -------------------------------------------------------------------
def test_batch_is_leased_to_one_labeler(setup) -> None:
    session, _, client = setup
    first = client.post("/api/batch", json={"labeler": ME}).json()
    assert len(first["queries"]) == 4 and first["round"] == 0
    assert all(q["status"] == "assigned" for q in first["queries"])
    # Asking again returns the same lease; another labeler gets nothing meanwhile.
    again = client.post("/api/batch", json={"labeler": ME}).json()
    assert [q["id"] for q in again["queries"]] == [q["id"] for q in first["queries"]]
    assert client.post("/api/batch", json={"labeler": "bob"}).json()["queries"] == []
    # Bob cannot answer Alice's query while her lease lasts.
    qid = first["queries"][0]["id"]
    r = client.post("/api/label", json={"query_id": qid, "label": 1, "labeler": "bob"})
    assert r.status_code == 409 and "held by another labeler" in r.json()["detail"]
    assert label_count(session) == 0


def test_two_labelers_share_a_batch_without_overlap(tmp_path: Path) -> None:
    session, _pool = make_session(tmp_path / "s.sqlite", digits_config(lease_size=2))
    client = api_client(create_app(session))
    a = {q["id"] for q in client.post("/api/batch", json={"labeler": "a"}).json()["queries"]}
    b = {q["id"] for q in client.post("/api/batch", json={"labeler": "b"}).json()["queries"]}
    assert len(a) == 2 and len(b) == 2 and not a & b
    assert client.post("/api/batch", json={"labeler": "c"}).json()["queries"] == []
    session.close()


def test_expired_lease_is_handed_on(tmp_path: Path) -> None:
    session, _pool = make_session(tmp_path / "s.sqlite", digits_config(lease_seconds=0.05))
    client = api_client(create_app(session))
    a = client.post("/api/batch", json={"labeler": "a"}).json()["queries"]
    import time

    time.sleep(0.1)
    b = client.post("/api/batch", json={"labeler": "b"}).json()["queries"]
    assert {q["id"] for q in a} == {q["id"] for q in b}
    session.close()


@pytest.mark.parametrize("params", [{}, {"labeler": ""}, {"labeler": "x" * 65}])
def test_batch_needs_a_labeler(setup, params) -> None:
    _, _, client = setup
    assert client.post("/api/batch", json=params).status_code == 422


# -- images -------------------------------------------------------------------------------
def test_image_is_the_pool_image(setup) -> None:
    _session, pool, client = setup
    q = client.post("/api/batch", json={"labeler": ME}).json()["queries"][0]
    r = client.get(f"/api/image/{q['id']}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(r.content)))
    np.testing.assert_array_equal(pixels, pool.X[q["pool_index"], :, :, 0])


@pytest.mark.parametrize("path", ["/api/image/999.png", "/api/image/0.png",
                                  "/api/image/-1.png", "/api/image/abc.png",
                                  "/api/image/1", "/api/image/..%2F..%2Fs.sqlite",
                                  "/api/image/../../etc/passwd", "/static/../s.sqlite"])
def test_image_routes_cannot_reach_anything_else(setup, path) -> None:
    _, _, client = setup
    r = client.get(path)
    assert r.status_code == 404
    assert not r.content.startswith(b"SQLite")


# -- labels -------------------------------------------------------------------------------
def test_label_is_idempotent_and_conflicts_are_refused(setup) -> None:
    session, _pool, client = setup
    q = client.post("/api/batch", json={"labeler": ME}).json()["queries"][0]
    body = {"query_id": q["id"], "label": 2, "labeler": ME}
    first = client.post("/api/label", json=body)
    assert first.status_code == 200 and first.json()["status"] == "recorded"
    again = client.post("/api/label", json=body)
    assert again.status_code == 200 and again.json()["status"] == "already recorded"
    assert label_count(session) == 1
    other = client.post("/api/label", json={**body, "label": 3})
    assert other.status_code == 409 and "already answered with 2" in other.json()["detail"]
    assert session.store.read("SELECT label FROM labels")[0][0] == 2


@pytest.mark.parametrize(("body", "status"), [
    ({"label": 10}, 422),                       # outside the 10 classes
    ({"label": -2}, 422),
    ({"label": "3"}, 422),                      # strings are not coerced
    ({"label": 3.0}, 422),
    ({"label": True}, 422),
    ({"query_id": 999}, 404),                   # unknown query
    ({"query_id": 0}, 422),
    ({"query_id": "1"}, 422),
    ({"labeler": ""}, 422),
    ({"labeler": "x" * 65}, 422),
    ({"extra": 1}, 422),                        # unknown field
    ({"label": None}, 422),
])
def test_bad_label_posts_change_nothing(setup, body, status) -> None:
    session, _, client = setup
    q = client.post("/api/batch", json={"labeler": ME}).json()["queries"][0]
    before = snapshot(session)
    r = client.post("/api/label", json={"query_id": q["id"], "label": 1, "labeler": ME, **body})
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert snapshot(session) == before


def test_malformed_bodies(setup) -> None:
    session, _, client = setup
    before = snapshot(session)
    assert client.post("/api/label", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/api/label", content=b'{"query_id": 1, "label": 1, "labeler": "a"}',
                       headers={"content-type": "text/plain"}).status_code == 415
    form = client.post("/api/label", data={"query_id": "1", "label": "1", "labeler": "a"})
    assert form.status_code == 415
    assert client.post("/api/label", json=[1, 2]).status_code == 422
    assert snapshot(session) == before


def test_oversized_bodies_are_refused(setup) -> None:
    session, _, client = setup
    before = snapshot(session)
    big = json.dumps({"query_id": 1, "label": 1, "labeler": "a", "pad": "x" * 70_000})
    r = client.post("/api/label", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: the stream itself is counted
        for _ in range(20):
            yield b"x" * 8192

    r = client.post("/api/label", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    huge = json.dumps({"format": "csv", "data": "x" * (9 * 1024 * 1024)})
    r = client.post("/api/import", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert snapshot(session) == before


# -- rounds -------------------------------------------------------------------------------
def test_a_finished_batch_retrains_and_brings_the_next(setup) -> None:
    session, pool, client = setup
    first = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    replies = [client.post("/api/label", json={"query_id": q["id"], "label": truth(pool, q),
                                               "labeler": ME}).json() for q in first]
    assert [r["round_closed"] for r in replies] == [False, False, False, True]
    second = client.post("/api/batch", json={"labeler": ME}).json()
    assert second["round"] == 1 and len(second["queries"]) == 4
    assert not {q["pool_index"] for q in first} & {q["pool_index"] for q in second["queries"]}
    state = client.get("/api/state").json()
    assert state["answered"] == 4 and state["asked"] == 8
    assert [p["n_labels"] for p in state["curve"]] == [4]
    assert 0.0 <= state["curve"][0]["accuracy"]["digits-test"] <= 1.0
    # No pickle is written: nothing could read it safely.
    assert not [f for f in session.store_path.parent.rglob("*") if f.suffix == ".pkl"]


def test_session_finishes_at_the_budget_and_learns(tmp_path: Path) -> None:
    session, pool = make_session(tmp_path / "s.sqlite", digits_config(batch=10, budget=60))
    client = api_client(create_app(session))
    while not client.get("/api/state").json()["finished"]:
        assert answer_batch(client, pool)
    state = client.get("/api/state").json()
    assert state["answered"] == 60 and state["asked"] == 60
    assert client.post("/api/batch", json={"labeler": ME}).json()["queries"] == []
    curve = state["curve"]
    assert [p["n_labels"] for p in curve] == [10, 20, 30, 40, 50, 60]
    # Sixty true labels of ten digit classes: a linear SVM is far above chance (10%).
    assert curve[-1]["accuracy"]["digits-test"] > 0.6
    assert client.post("/api/undo", json={"labeler": ME}).status_code == 409
    session.close()


def test_the_pool_labels_are_never_read(tmp_path: Path) -> None:
    """Two pools with the same images but different labels ask the same queries."""
    config = digits_config()
    pool, tests = load_session_data(config)
    shuffled = Dataset(pool.X, np.random.default_rng(0).permutation(pool.y), pool.classes)
    a = open_session(config, tmp_path / "a.sqlite", pool=dataset_pool(pool, tests))
    b = open_session(config, tmp_path / "b.sqlite", pool=dataset_pool(shuffled, tests))
    assert not a.pool.y.any()
    ca, cb = api_client(create_app(a)), api_client(create_app(b))
    for _ in range(3):  # the same answers → the same next queries
        qa = ca.post("/api/batch", json={"labeler": ME}).json()["queries"]
        qb = cb.post("/api/batch", json={"labeler": ME}).json()["queries"]
        assert [q["pool_index"] for q in qa] == [q["pool_index"] for q in qb]
        for x, y in zip(qa, qb):
            label = int(pool.y[x["pool_index"]])
            ca.post("/api/label", json={"query_id": x["id"], "label": label, "labeler": ME})
            cb.post("/api/label", json={"query_id": y["id"], "label": label, "labeler": ME})
    a.close()
    b.close()


# -- undo ---------------------------------------------------------------------------------
def test_undo(setup) -> None:
    session, _pool, client = setup
    assert client.post("/api/undo", json={"labeler": ME}).status_code == 409
    queries = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    for q, label in zip(queries[:2], (1, -1)):
        client.post("/api/label", json={"query_id": q["id"], "label": label, "labeler": ME})
    r = client.post("/api/undo", json={"labeler": ME})
    assert r.status_code == 200 and r.json()["query"]["id"] == queries[1]["id"]
    assert label_count(session) == 1
    assert client.post("/api/undo", json={"labeler": "bob"}).status_code == 409
    assert client.post("/api/undo", json={"labeler": ""}).status_code == 422
    assert client.post("/api/undo", json={}).status_code == 422
    # The undone query can be answered again, differently.
    r = client.post("/api/label", json={"query_id": queries[1]["id"], "label": 4, "labeler": ME})
    assert r.json()["status"] == "recorded"
    # A closed round is final.
    for q in queries[2:]:
        client.post("/api/label", json={"query_id": q["id"], "label": 0, "labeler": ME})
    assert client.get("/api/state").json()["round"] == 1
    r = client.post("/api/undo", json={"labeler": ME})
    assert r.status_code == 409 and "final" in r.json()["detail"]


# -- resume -------------------------------------------------------------------------------
def test_resume_gives_the_same_session_and_learner(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    session, pool = make_session(store)
    client = api_client(create_app(session))
    answer_batch(client, pool)
    answer_batch(client, pool)
    held = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    client.post("/api/label", json={"query_id": held[0]["id"], "label": 1, "labeler": ME})
    X = session.X_pool[:50]
    before_scores = session.learner.decision_function(X)
    before = snapshot(session)
    with pytest.raises(DataError, match="another process"):
        make_session(store)
    session.close()
    again, _ = make_session(store)
    assert snapshot(again) == before
    np.testing.assert_array_equal(again.learner.decision_function(X), before_scores)
    rest = api_client(create_app(again)).post("/api/batch", json={"labeler": ME}).json()
    assert [q["id"] for q in rest["queries"]] == [q["id"] for q in held[1:]]
    again.close()


def test_crash_between_last_label_and_next_round_regenerates_it(tmp_path: Path) -> None:
    """The answer is committed, the process dies before the next round is stored: opening the
    session again stores exactly the round an uninterrupted session stores."""
    ref, pool = make_session(tmp_path / "ref.sqlite")
    crash, _ = make_session(tmp_path / "crash.sqlite")
    ref_client = api_client(create_app(ref))
    queries = answer_batch(ref_client, pool)
    for q in queries:  # straight into the store: no round advance, as if killed right after
        crash.store.record_label(q["id"], truth(pool, q), ME, 300)
    # the last answer told the round in its own transaction; the next round was never asked
    assert crash.store.round() == 1 and crash.store.open_round() is None
    crash.close()
    resumed, _ = make_session(tmp_path / "crash.sqlite")
    rows = "SELECT round, position, pool_index FROM queries ORDER BY id"
    assert resumed.store.read(rows) == ref.store.read(rows)
    ref.close()
    resumed.close()


def test_a_store_of_another_session_is_refused(tmp_path: Path) -> None:
    session, _ = make_session(tmp_path / "s.sqlite")
    session.close()
    with pytest.raises(ConfigError, match="other settings"):
        make_session(tmp_path / "s.sqlite", digits_config(batch=5))
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(DataError, match="not a usable label store"):
        make_session(tmp_path / "junk.sqlite")


def test_store_is_wal_with_full_sync(setup) -> None:
    session, _, _ = setup
    assert session.store.read("PRAGMA journal_mode")[0][0] == "wal"
    assert session.store.read("PRAGMA synchronous")[0][0] == 2  # FULL


def test_the_schema_forbids_doubles(setup) -> None:
    session, _, client = setup
    q = client.post("/api/batch", json={"labeler": ME}).json()["queries"][0]
    client.post("/api/label", json={"query_id": q["id"], "label": 1, "labeler": ME})
    with pytest.raises(sqlite3.IntegrityError), session.store.transaction() as conn:
        conn.execute("INSERT INTO labels (query_id, label, labeler, ts) VALUES (?, 2, 'x', 0)",
                     (q["id"],))
    with pytest.raises(sqlite3.IntegrityError), session.store.transaction() as conn:
        conn.execute("INSERT INTO queries (round, position, kind, source, pool_index, status, "
                     "created) VALUES (9, 0, 'pool', 'session', ?, 'pending', 0)",
                     (q["pool_index"],))
    with pytest.raises(sqlite3.IntegrityError), session.store.transaction() as conn:
        conn.execute("INSERT INTO events (kind, round, ts) VALUES ('asked', 0, 0)")  # twice
    with pytest.raises(sqlite3.IntegrityError), session.store.transaction() as conn:
        conn.execute("INSERT INTO queries (round, position, kind, source, pool_index, status, "
                     "created) VALUES (0, 0, 'pool', 'import', 1500, 'labeled', 0)")  # no event


# -- synthesized queries --------------------------------------------------------------------
def test_synthesized_queries_keep_image_latent_and_generator(tmp_path: Path) -> None:
    session, pool = make_session(tmp_path / "s.sqlite", strategy=FakeSynthesis())
    client = api_client(create_app(session))
    answer_batch(client, pool)  # round 0: random pool images (nothing labeled yet)
    synth = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    assert {q["kind"] for q in synth} == {"synth"} and all(q["pool_index"] is None for q in synth)
    assert {q["generator_id"] for q in synth} == {"fake-gen-v1"}
    for q in synth:
        png = client.get(f"/api/image/{q['id']}.png")
        assert png.status_code == 200
        stored_png, latent = session.store.read("SELECT image, latent FROM queries WHERE id=?",
                                                (q["id"],))[0]
        assert png.content == stored_png
        vector = np.load(io.BytesIO(latent))
        a, b, w = int(vector[0]), int(vector[1]), float(vector[2])
        expected = np.clip(np.rint((w * pool.X[a] + (1 - w) * pool.X[b]).astype(np.float32)),
                           0, 255)
        seen = np.asarray(Image.open(io.BytesIO(png.content)))
        assert np.abs(seen.astype(int) - expected[:, :, 0].astype(int)).max() <= 1
        client.post("/api/label", json={"query_id": q["id"], "label": 7, "labeler": ME})
    # The labeled synthesized images are training data of the next fit.
    assert session.store.read("SELECT n_labels FROM fits ORDER BY round")[-1][0] == 8
    export = json.loads(client.get("/api/export.json").text)
    synth_rows = [r for r in export["labels"] if r["kind"] == "synth"]
    assert len(synth_rows) == 4 and all(len(r["latent"]) == 3 for r in synth_rows)
    assert all(r["generator_id"] == "fake-gen-v1" and r["image_png_base64"] for r in synth_rows)
    session.close()


# -- export and import ----------------------------------------------------------------------
def test_exports(setup) -> None:
    session, _pool, client = setup
    queries = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    client.post("/api/label", json={"query_id": queries[0]["id"], "label": 3, "labeler": ME})
    client.post("/api/label", json={"query_id": queries[1]["id"], "label": -1, "labeler": ME})
    rows = list(csv.DictReader(io.StringIO(client.get("/api/export.csv").text)))
    assert [(int(r["query_id"]), int(r["label"]), r["class"]) for r in rows] == [
        (queries[0]["id"], 3, "3"), (queries[1]["id"], -1, "can't tell")]
    assert int(rows[0]["pool_index"]) == queries[0]["pool_index"]
    data = client.get("/api/export.json").json()
    assert data["classes"] == session.classes and len(data["labels"]) == 2
    tasks = client.get("/api/export.labelstudio.json").json()
    assert [t["annotations"][0]["result"][0]["value"]["choices"] for t in tasks] == [
        ["3"], ["can't tell"]]
    assert tasks[0]["data"]["image"].startswith("data:image/png;base64,")
    assert tasks[0]["data"]["pool_index"] == queries[0]["pool_index"]
    xml = client.get("/api/labelstudio-config.xml").text
    values = [c.get("value") for c in ElementTree.fromstring(xml).iter("Choice")]
    assert values == [*session.classes, "can't tell"]


@pytest.mark.parametrize("fmt", ["csv", "json", "labelstudio"])
def test_export_then_import_seeds_a_new_session(tmp_path: Path, fmt: str) -> None:
    old, pool = make_session(tmp_path / "old.sqlite")
    client = api_client(create_app(old))
    answer_batch(client, pool)
    answer_batch(client, pool)
    path = {"csv": "/api/export.csv", "json": "/api/export.json",
            "labelstudio": "/api/export.labelstudio.json"}[fmt]
    exported = client.get(path).text
    before = {(r[0], r[1]) for r in old.store.read(
        "SELECT q.pool_index, l.label FROM labels l JOIN queries q ON q.id = l.query_id")}
    new, _ = make_session(tmp_path / "new.sqlite", digits_config(strategy="random"))
    new_client = api_client(create_app(new))
    r = new_client.post("/api/import", json={"format": fmt, "data": exported})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] + r.json()["already"] == 8
    after = {(r[0], r[1]) for r in new.store.read(
        "SELECT q.pool_index, l.label FROM labels l JOIN queries q ON q.id = l.query_id")}
    assert after == before
    # Imported images are never asked; importing twice records nothing new.
    asked = {r[0] for r in new.store.read(
        "SELECT pool_index FROM queries WHERE source='session'")}
    imported = {r[0] for r in new.store.read(
        "SELECT pool_index FROM queries WHERE source='import'")}
    assert not asked & imported
    again = new_client.post("/api/import", json={"format": fmt, "data": exported}).json()
    assert again["imported"] == 0 and again["already"] == 8
    old.close()
    new.close()


def test_seed_labels_shape_the_first_batch(tmp_path: Path) -> None:
    config = digits_config()
    pool, _ = load_session_data(config)
    seeds = [(int(i), int(pool.y[i])) for i in range(0, 40, 2)]
    seeded, _ = make_session(tmp_path / "a.sqlite", config, seed_labels=seeds)
    plain, _ = make_session(tmp_path / "b.sqlite", config)
    assert seeded.learner is not None and plain.learner is None
    fit = seeded.store.read("SELECT round, n_labels FROM fits")
    assert fit == [(0, 20)]  # round 0 is the strategy's choice, by a learner of 20 labels
    first = {r[0] for r in seeded.store.read(
        "SELECT pool_index FROM queries WHERE source='session'")}
    assert not first & {i for i, _ in seeds}
    seeded.close()
    plain.close()


def _ls_task(choices: list[str]) -> str:
    return json.dumps([{"data": {"pool_index": 3}, "annotations": [
        {"result": [{"type": "choices", "value": {"choices": choices}}]}]}])


@pytest.mark.parametrize(("payload", "message"), [
    ({"format": "csv", "data": "pool_index,class\n3,seven\n"}, "class 'seven' is not one of"),
    ({"format": "csv", "data": "pool_index,label\n3,12\n"}, "outside -1..9"),
    ({"format": "csv", "data": "pool_index,label\n3,x\n"}, "not an integer"),
    ({"format": "csv", "data": "pool_index,label\n99999,1\n"}, "outside the pool"),
    ({"format": "csv", "data": "index,label\n3,1\n"}, "needs a header"),
    ({"format": "csv", "data": "pool_index,label\n,1\n"}, "no pool_index"),
    ({"format": "labelstudio", "data": "{not json"}, "not JSON"),
    ({"format": "labelstudio", "data": "{}"}, "list of tasks"),
    ({"format": "labelstudio", "data": _ls_task(["1", "2"])}, "has 2 choices, expected one"),
    ({"format": "labelstudio", "data": _ls_task(["x"])}, "task 0: class 'x' is not one of"),
    ({"format": "json", "data": '{"labels": [], "classes": ["a", "b"]}'}, "classes"),
])
def test_bad_imports_change_nothing(setup, payload, message) -> None:
    session, _, client = setup
    before = snapshot(session)
    # a valid first row must not be imported when a later row is bad
    if payload["format"] == "csv" and payload["data"].startswith("pool_index,"):
        header, rest = payload["data"].split("\n", 1)
        payload = {**payload, "data": f"{header}\n5,1\n{rest}"}
    r = client.post("/api/import", json=payload)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert snapshot(session) == before


def test_a_label_studio_export_from_label_studio(setup) -> None:
    """A task list as Label Studio writes it (ids, cancelled annotations, extra keys)."""
    session, _pool, client = setup
    tasks = [
        {"id": 11, "data": {"image": "/data/upload/1/a.png", "pool_index": 40},
         "annotations": [{"id": 1, "completed_by": 1, "was_cancelled": False,
                          "result": [{"id": "r1", "from_name": "label", "to_name": "image",
                                      "type": "choices", "origin": "manual",
                                      "value": {"choices": ["8"]}}]}],
         "predictions": [], "meta": {}},
        {"id": 12, "data": {"image": "/data/upload/1/b.png", "pool_index": 41},
         "annotations": [{"id": 2, "was_cancelled": True, "result": []}]},
        {"id": 13, "data": {"image": "/data/upload/1/c.png", "pool_index": 42},
         "annotations": [{"id": 3, "result": [{"type": "choices", "from_name": "label",
                                               "to_name": "image",
                                               "value": {"choices": ["can't tell"]}}]}]},
    ]
    r = client.post("/api/import", json={"format": "labelstudio", "data": json.dumps(tasks)})
    assert r.json() == {"status": "imported", "imported": 2, "already": 0, "conflicts": 0,
                        "skipped": 1}
    stored = session.store.read("SELECT q.pool_index, l.label, q.source FROM labels l "
                                "JOIN queries q ON q.id = l.query_id ORDER BY q.pool_index")
    assert stored == [(40, 8, "import"), (42, -1, "import")]
    state = client.get("/api/state").json()
    assert state["imported"] == 2 and state["answered"] == 0  # imports are not budget


def test_import_with_an_unknown_format(setup) -> None:
    _, _, client = setup
    assert client.post("/api/import", json={"format": "xml", "data": ""}).status_code == 422


def test_an_import_that_answers_the_open_queries_closes_the_round(setup) -> None:
    """Imported labels for the open round's queries are their answers (the last one tells the
    round); a label for an image not asked is taught, before the round is told."""
    session, pool, client = setup
    queries = client.post("/api/batch", json={"labeler": ME}).json()["queries"]
    for q in queries[:2]:
        client.post("/api/label", json={"query_id": q["id"], "label": truth(pool, q),
                                        "labeler": ME})
    asked = {q["pool_index"] for q in queries}
    extra = next(i for i in range(len(pool)) if i not in asked)
    rows = [(q["pool_index"], truth(pool, q)) for q in queries[2:]] + [(extra, 1)]
    data = "pool_index,label\n" + "".join(f"{i},{y}\n" for i, y in rows)
    r = client.post("/api/import", json={"format": "csv", "data": data})
    assert r.json()["imported"] == 3
    assert [(e.kind, e.round) for _, e in session.store.events()] == [
        ("asked", 0), ("taught", 0), ("told", 0), ("asked", 1)]
    taught = session.store.events()[1][1]
    assert taught.indices.tolist() == [extra] and not taught.charged
    state = client.get("/api/state").json()
    assert state["round"] == 1 and state["answered"] == 4 and state["imported"] == 1
    assert state["curve"][0]["n_labels"] == 5  # round 1's learner: 4 answers and the import
    assert session.worker.engine.state.n_spent == 4  # imports are not charged


def test_import_conflicts_are_counted_not_applied(setup) -> None:
    session, _pool, client = setup
    q = client.post("/api/batch", json={"labeler": ME}).json()["queries"][0]
    client.post("/api/label", json={"query_id": q["id"], "label": 2, "labeler": ME})
    r = client.post("/api/import", json={"format": "csv",
                                         "data": f"pool_index,label\n{q['pool_index']},5\n"})
    assert r.json() == {"status": "imported", "imported": 0, "already": 0, "conflicts": 1,
                        "skipped": 0}
    assert session.store.read("SELECT label FROM labels")[0][0] == 2


# -- who may label ---------------------------------------------------------------------------
def test_token_is_required_on_every_route(tmp_path: Path) -> None:
    session, _ = make_session(tmp_path / "s.sqlite")
    token = "t0ken-for-the-tests-0123456789"
    client = api_client(create_app(session, token=token))
    routes = ["/", "/app.js", "/api/state", "/api/image/1.png",
              "/api/export.csv", "/api/export.json", "/api/export.labelstudio.json"]
    for route in routes:
        assert client.get(route).status_code == 401, route
        assert client.get(route, headers={"X-Activegen-Token": "wrong"}).status_code == 401
        assert client.get(route, headers={"X-Activegen-Token": token}).status_code == 200, route
    assert client.get(f"/api/state?token={token}").status_code == 200
    assert client.get("/api/state", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 200
    for route, body in [("/api/batch", {"labeler": "a"}),
                        ("/api/label", {"query_id": 1, "label": 1, "labeler": "a"}),
                        ("/api/undo", {"labeler": "a"}),
                        ("/api/import", {"format": "csv", "data": "pool_index,label\n1,1\n"})]:
        assert client.post(route, json=body).status_code == 401
    assert session.store.read("SELECT COUNT(*) FROM labels")[0][0] == 0
    session.close()


def test_loopback_app_refuses_foreign_host_headers(tmp_path: Path) -> None:
    session, _ = make_session(tmp_path / "s.sqlite")
    client = api_client(create_app(session, allowed_hosts=LOOPBACK_HOSTS),
                        base_url="http://127.0.0.1:8765")
    assert client.get("/api/state").status_code == 200
    assert client.get("/api/state", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/api/state", headers={"host": "attacker.example"}).status_code == 400
    session.close()


def test_prepare_server_requires_a_token_beyond_loopback(tmp_path: Path) -> None:
    from activegen.server.run import prepare_server

    config = digits_config(store=str(tmp_path / "s.sqlite"))
    prepared = prepare_server(config, host="0.0.0.0", port=0)
    try:
        assert prepared.token and len(prepared.token) >= 24
    finally:
        prepared.session.close()
        prepared.sock.close()
    prepared = prepare_server(config, host="127.0.0.1", port=0)
    try:
        assert prepared.token is None and prepared.url.startswith("http://127.0.0.1:")
    finally:
        prepared.session.close()
        prepared.sock.close()
    with pytest.raises(ConfigError, match="at least 16"):
        prepare_server(config, host="0.0.0.0", port=0, token="short")


# -- config and CLI --------------------------------------------------------------------------
def test_shipped_config_is_valid() -> None:
    from activegen.cli import demo_config_path

    config = load_label_config(demo_config_path().with_name("label-digits.toml"))
    assert config.data.dataset == "digits" and config.loop.batch == 10
    assert config.labeling.host == "127.0.0.1"


LOOP = '[loop]\ninitial = 10\nbatch = 10\nbudget = 50\n'


@pytest.mark.parametrize(("text", "message"), [
    ('[loop]\ninitial = 10\nbatch = 10\nbudget = 5\n', "below the initial labeled set"),
    (f'{LOOP}[labeling]\nport = 70000\n', "labeling.port"),
    (f'{LOOP}[labeling]\nspeed = 1\n', "labeling.speed: unknown key"),
    (f'[strategy]\nname = "nope"\n{LOOP}', "nope"),
    (f'seeds = [1]\n{LOOP}', "seeds: unknown key"),
    ('[labeling]\nbudget = 50\n', "labeling.budget: unknown key"),  # [loop] holds it
    (f'oracle = "pool"\n{LOOP}', "oracle: unknown key"),
])
def test_bad_configs(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_label_config(path)


def test_cli_names_the_extra_when_fastapi_is_missing(monkeypatch, capsys) -> None:
    import importlib.util

    from activegen import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert cli.main(["label", "whatever.toml"]) == 2
    assert "pip install 'activegen[label]'" in capsys.readouterr().err


def test_cli_label_export(tmp_path: Path, capsys) -> None:
    from activegen import cli

    session, pool = make_session(tmp_path / "s.sqlite")
    answer_batch(api_client(create_app(session)), pool)
    out = tmp_path / "labels.csv"
    assert cli.main(["label-export", str(tmp_path / "s.sqlite"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    assert cli.main(["label-export", str(tmp_path / "s.sqlite"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["labels"]) == 4
    assert cli.main(["label-export", str(tmp_path / "missing.sqlite")]) == 2
    session.close()


def test_cli_import_file_seeds_the_session(tmp_path: Path) -> None:
    from activegen.server.interop.interchange import read_labels_file as read_import_file
    from activegen.server.run import prepare_server

    config = digits_config(store=str(tmp_path / "s.sqlite"))
    pool, _ = load_session_data(config)
    labels_csv = tmp_path / "old.csv"
    labels_csv.write_text("pool_index,class\n" + "".join(
        f"{i},{pool.classes[pool.y[i]]}\n" for i in range(12)))
    prepared = prepare_server(config, host="127.0.0.1", port=0, import_file=labels_csv)
    try:
        state = prepared.session.state()
        assert state["imported"] == 12 and state["curve"][0]["n_labels"] == 12
    finally:
        prepared.session.close()
        prepared.sock.close()
    bad = tmp_path / "bad.csv"
    bad.write_text("pool_index,class\n1,eleven\n")
    with pytest.raises(DataError, match=r"bad.csv: CSV line 2: class 'eleven'"):
        read_import_file(bad, list(pool.classes))
    with pytest.raises(DataError, match="no such file"):
        read_import_file(tmp_path / "missing.csv", list(pool.classes))
