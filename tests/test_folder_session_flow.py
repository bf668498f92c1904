"""What a practitioner labeling a folder met, fixed: the audit interleaved with the labeling
(an estimate and its curve before the budget is spent), the model's guess beside each query,
a finished session extended by a larger budget on the same store, the page's export read
back by ``--labels`` (audit answers included), ``label-export`` equal to the page's export,
and ``--audit 0`` without an audit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from activegen.cli import _images_label_config, build_parser, main
from activegen.errors import ConfigError
from activegen.server.core.session import LabelSession
from activegen.server.opening import open_session
from activegen.server.run import PreparedServer, prepare_server, startup_message
from activegen.server.web.app import create_app
from label_support import api_client
from test_image_folder_labeling import NAMES, make_folders


def _session(tmp_path: Path, pool_dir: Path, *flags: str, store: str = "s.sqlite"
             ) -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "12",
         "--channels", "1", *flags])
    return open_session(_images_label_config(args), tmp_path / store)


def _answer_round(client, session: LabelSession, truth: dict[str, int]) -> list[dict]:
    """Answer the open batch with the truth; then the audit images due."""
    while True:
        reply = client.post("/api/batch", json={"labeler": "me"}).json()
        if reply["queries"] or reply["finished"]:
            break
        assert session.wait_ready(60)
    for q in reply["queries"]:
        client.post("/api/label", json={"query_id": q["id"], "label": truth[q["path"]],
                                        "labeler": "me"})
    session.wait_ready(60)
    due = client.get("/api/audit/batch", params={"labeler": "me"}).json()["queries"]
    for a in due:
        client.post("/api/audit/label", json={"audit_id": a["audit_id"],
                                              "label": truth[a["path"]], "labeler": "me"})
    return reply["queries"]


def test_the_audit_is_interleaved_and_its_estimate_is_there_before_the_budget(
        tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=120, n_held=0)
    session = _session(tmp_path, pool_dir, "--audit", "20", "--budget", "40")
    client = api_client(create_app(session))
    try:
        state = client.get("/api/state").json()
        assert state["audit"]["due"] == 0 and state["audit"]["accuracy"] is None
        _answer_round(client, session, truth)  # 10 of 40: a quarter of the audit is due
        state = client.get("/api/state").json()
        audit = state["audit"]
        assert not state["finished"] and state["answered"] == 10
        assert audit["due"] == 5 and audit["answered"] == 5
        assert audit["accuracy"] is not None and audit["counted"] == 5
        assert audit["low"] <= audit["accuracy"] <= audit["high"]
        assert [p["n_labels"] for p in audit["curve"]] == [10]  # the model of 10 labels
        # an audit answer is taken back like a query's (it is not training data: any time)
        undone = client.post("/api/audit/undo", json={"labeler": "me"}).json()["audit_id"]
        state = client.get("/api/state").json()["audit"]
        assert state["answered"] == 4 and state["counted"] == 4
        assert [a["audit_id"] for a in client.get(
            "/api/audit/batch", params={"labeler": "me"}).json()["queries"]] == [undone]
        assert client.post("/api/audit/undo", json={"labeler": "other"}).status_code == 409
        client.post("/api/audit/label", json={"audit_id": undone, "labeler": "me",
                                              "label": truth[session.audit.files[undone]]})
        _answer_round(client, session, truth)
        audit = client.get("/api/state").json()["audit"]
        assert audit["answered"] == 10 and [p["n_labels"] for p in audit["curve"]] == [10, 20]
        while not client.get("/api/state").json()["finished"]:
            _answer_round(client, session, truth)
        audit = client.get("/api/state").json()["audit"]
        assert audit["answered"] == audit["size"] == 20 and audit["due"] == 20
        assert audit["to_halve"] == 4 * audit["counted"]
        assert audit["half_width"] == pytest.approx((audit["high"] - audit["low"]) / 2)
    finally:
        session.close()


def test_each_query_carries_the_models_guess_but_no_audit_image_does(tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=60, n_held=0)
    session = _session(tmp_path, pool_dir, "--audit", "10", "--budget", "30")
    client = api_client(create_app(session))
    try:
        first = _answer_round(client, session, truth)
        assert all("guess" not in q for q in first)  # nothing was fitted for round 0
        second = client.post("/api/batch", json={"labeler": "me"}).json()["queries"]
        proba = session.learner.predict_proba(
            session.X_pool[[q["pool_index"] for q in second]])
        for q, p in zip(second, proba, strict=True):
            assert q["guess"]["label"] == int(p.argmax())
            assert q["guess"]["class"] == NAMES[int(p.argmax())]
            assert q["guess"]["confidence"] == pytest.approx(p.max(), abs=1e-4)
        for q in second:
            client.post("/api/label", json={"query_id": q["id"], "label": truth[q["path"]],
                                            "labeler": "me"})
        audit = client.get("/api/audit/batch", params={"labeler": "me"}).json()["queries"]
        assert audit and all("guess" not in a for a in audit)
    finally:
        session.close()


def test_a_finished_session_continues_with_a_larger_budget(tmp_path: Path) -> None:
    """`--budget 150` on the same store was refused as "other settings"."""
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=80, n_held=0)
    session = _session(tmp_path, pool_dir, "--audit", "5", "--budget", "20")
    client = api_client(create_app(session))
    try:
        while not client.get("/api/state").json()["finished"]:
            _answer_round(client, session, truth)
        asked = session.store.n_asked()
    finally:
        session.close()
    assert asked == 20
    more = _session(tmp_path, pool_dir, "--audit", "5", "--budget", "40")
    client = api_client(create_app(more))
    try:
        state = client.get("/api/state").json()
        assert not state["finished"] and state["budget"] == 40 and state["answered"] == 20
        while not client.get("/api/state").json()["finished"]:
            _answer_round(client, more, truth)
        assert more.store.n_asked() == 40
        assert json.loads(more.store.get_meta("config"))["loop"]["budget"] == 40
    finally:
        more.close()
    # a setting that decides the queries is refused, named
    with pytest.raises(ConfigError, match=r"other settings \(images\.features is \"pixels\" "
                                          r"there, \"vae\" here\)"):
        _session(tmp_path, pool_dir, "--audit", "5", "--budget", "40", "--features", "vae")


def test_the_pages_export_seeds_a_new_store_through_labels_audit_included(
        tmp_path: Path) -> None:
    """`--labels` refused the page's own export.csv (its label column is the class index);
    the audit answers were exported nowhere."""
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=80, n_held=0)
    session = _session(tmp_path, pool_dir, "--audit", "10", "--budget", "20")
    client = api_client(create_app(session))
    try:
        while not client.get("/api/state").json()["finished"]:
            _answer_round(client, session, truth)
        audit_files = list(session.audit.files)
        exports = {"csv": client.get("/api/export.csv").text,
                   "json": client.get("/api/export.json").text,
                   "labelstudio.json": client.get("/api/export.labelstudio.json").text}
        pool_answers = {session.files[r["pool_index"]]: r["label"]
                        for r in session.store.answered()}
    finally:
        session.close()
    rows = list(csv.DictReader(io.StringIO(exports["csv"])))
    assert {r["path"]: int(r["label"]) for r in rows if r["source"] == "audit"} == {
        p: truth[p] for p in audit_files}
    for ext, text in exports.items():
        (tmp_path / f"export.{ext}").write_text(text)
        again = _session(tmp_path, pool_dir, "--audit", "10", "--budget", "20", "--labels",
                         str(tmp_path / f"export.{ext}"), store=f"new-{ext}.sqlite")
        try:
            state = again.state()
            assert state["imported"] == 20 and state["answered"] == 0  # the budget is anew
            imported = {again.files[r["pool_index"]]: r["label"]
                        for r in again.store.answered()}
            assert imported == pool_answers
            assert {again.audit.files[j]: a["label"] for j, a in again.audit.answers().items()
                    } == {p: truth[p] for p in audit_files}
        finally:
            again.close()


def test_label_export_is_the_pages_export(tmp_path: Path, capsys) -> None:
    """`activegen label-export STORE` dropped a folder session's path column and the audit."""
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=60, n_held=0)
    session = _session(tmp_path, pool_dir, "--audit", "10", "--budget", "20")
    client = api_client(create_app(session))
    try:
        _answer_round(client, session, truth)
        page = {"csv": client.get("/api/export.csv").text,
                "json": client.get("/api/export.json").text}
        for fmt, text in page.items():
            assert main(["label-export", str(tmp_path / "s.sqlite"), "--format", fmt]) == 0
            assert capsys.readouterr().out == text  # while the server holds the store
    finally:
        session.close()
    exported = json.loads(page["json"])
    assert exported["session"]["audit"]["counted"] == 5
    assert {r["source"] for r in exported["labels"]} == {"session", "audit"}
    assert all(r["path"] for r in exported["labels"])


def test_no_audit_means_no_audit(tmp_path: Path) -> None:
    """`--audit 0` said "audit: 0 of 0 random images labeled; no estimate yet", and the
    start "1 unreadable files skipped"."""
    pool_dir, _, _, _ = make_folders(tmp_path, n_pool=30, n_held=0)
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "12",
         "--audit", "0", "--budget", "20"])
    prepared = prepare_server(_images_label_config(args), host="127.0.0.1", port=0,
                              store=tmp_path / "s.sqlite")
    session = prepared.session
    client = api_client(create_app(session))
    try:
        assert session.audit is None and "audit" not in client.get("/api/state").json()
        assert client.get("/api/audit/batch", params={"labeler": "me"}).status_code == 404
        assert client.get("/api/model.npz").status_code == 409  # no model before a fit
        message = startup_message(prepared)
        assert ("30 to label, no audit sample (no accuracy estimate), 1 unreadable file "
                "skipped") in message
        assert "budget: 0 of 20 answered\n" in message
    finally:
        session.close()
        prepared.sock.close()
    again = _session(tmp_path, pool_dir, "--audit", "4", "--budget", "20", store="b.sqlite")
    try:
        again.wait_ready(60)
        prepared = PreparedServer(again, None, None, "http://127.0.0.1:1/", None)
        assert "4 images in the audit sample (labeled on top of the budget)" in (
            startup_message(prepared))
        assert "; audit: 0 of 4" in startup_message(prepared)
    finally:
        again.close()


def test_a_config_sessions_budget_is_raised_by_the_flag(tmp_path: Path) -> None:
    """`activegen label CONFIG --budget N` on a session file without [images] sets its budget
    (it asked for an image folder); the same store then goes on past the old budget."""
    from activegen.cli import demo_config_path
    from label_support import digits_config, make_session

    args = build_parser().parse_args(
        ["label", str(demo_config_path().with_name("label-digits.toml")), "--budget", "300"])
    raised = _images_label_config(args)
    assert raised.images is None and raised.loop.budget == 300
    session, pool = make_session(tmp_path / "d.sqlite", digits_config(batch=4, budget=8))
    try:
        for _ in range(2):
            session.wait_ready(60)
            for row in session.batch("me").queries:
                session.label(row.id, int(pool.y[row.pool_index]), "me")
        session.wait_ready(60)
        assert session.finished and session.store.finished() == "budget"
    finally:
        session.close()
    more, _ = make_session(tmp_path / "d.sqlite", digits_config(batch=4, budget=12))
    try:
        more.wait_ready(60)
        assert not more.finished and len(more.batch("me").queries) == 4
    finally:
        more.close()
