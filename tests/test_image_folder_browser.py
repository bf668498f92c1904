"""The practitioner's flow in a real browser: label an unlabeled folder with keys, then the
audit images, see the audit accuracy, and find the model and predictions links on the result
card."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from activegen.cli import _images_label_config, build_parser
from activegen.server.core.store import read_answers
from activegen.server.run import prepare_server
from test_image_folder_labeling import NAMES, make_folders
from test_server_browser import launch, open_labeler_page, playwright_api, running, shown_query_id

pytestmark = pytest.mark.slow
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "labeling-folder.png"


def test_label_a_folder_and_its_audit_with_keys(tmp_path: Path) -> None:
    sync_api = playwright_api()
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=40, n_held=0)
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "16",
         "--audit", "4", "--budget", "10", "--store", str(tmp_path / "b.sqlite")])
    config = _images_label_config(args)
    prepared = prepare_server(config, host="127.0.0.1", port=0,
                              store=tmp_path / "b.sqlite")
    session = prepared.session

    def path_of(query_id: str) -> str:
        if query_id.startswith("a"):
            return session.audit.files[int(query_id[1:])]
        return session.files[session.store.query(int(query_id)).pool_index]

    with running(prepared), sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=browser")
        for i in range(14):  # 10 pool queries, then 4 audit images
            page.wait_for_selector("#buttons button.cls:not([disabled])")
            qid = shown_query_id(page)
            assert path_of(qid) in page.text_content("#meta")
            page.keyboard.press(str(truth[path_of(qid)] + 1))  # keys 1, 2, 3
            page.wait_for_function(
                f"document.getElementById('big').dataset.queryId !== '{qid}'")
            if i == 11:  # mid-audit: the estimate so far, the links to leave with
                page.wait_for_function("document.getElementById('auditline')"
                                       ".textContent.includes('Audit accuracy')")
                shot = (SCREENSHOT if os.environ.get("ACTIVEGEN_SCREENSHOT") == "docs"
                        else tmp_path / "shot.png")
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
        page.wait_for_function(
            "document.getElementById('auditline').textContent.includes('4 of 4 labeled')")
        line = page.text_content("#auditline")
        assert "4 of 4 labeled" in line
        page.wait_for_selector("#result", state="visible")  # the result card
        assert page.get_attribute("#result-model", "href").endswith("/api/model.npz")
        assert not errors, errors
        browser.close()
    rows = read_answers(tmp_path / "b.sqlite").rows
    assert len(rows) == 10
    assert all(r["label"] == truth[session.files[r["pool_index"]]] for r in rows)
    with sqlite3.connect(tmp_path / "b.sqlite") as conn:
        (raw,), = conn.execute("SELECT value FROM meta WHERE key = 'audit_answers'").fetchall()
    audit = json.loads(raw)
    assert {session.audit.files[int(k)]: v["label"] for k, v in audit.items()} == {
        p: truth[p] for p in session.audit.files}
