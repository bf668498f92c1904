"""A real browser labels: headless Chromium (Debian's ``chromium``) driven by Playwright.

It labels one batch by clicking the class buttons and the next by pressing keys (with an undo
in between), sees each next batch appear without a page reload, and saves a screenshot
(``docs/img/labeling-app.png`` when ``ACTIVEGEN_SCREENSHOT=docs``, else in a temporary folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activegen.server.opening import load_session_data
from activegen.server.run import PreparedServer, prepare_server
from activegen.server.web.middleware import REQUEST_HEADERS
from label_support import digits_config

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def running(prepared: PreparedServer) -> Iterator[PreparedServer]:
    """Serve ``prepared`` (from :func:`prepare_server`) in a thread until the block ends, then
    stop it and close its session and socket."""
    thread = threading.Thread(target=prepared.server.run, kwargs={"sockets": [prepared.sock]},
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not prepared.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield prepared
    finally:
        prepared.server.should_exit = True
        thread.join(timeout=10)
        prepared.session.close()
        prepared.sock.close()


def launch(playwright):  # type: ignore[no-untyped-def]
    """Debian's headless chromium, as every browser test drives it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)

def shown_query_id(page: Any) -> str:
    """The id of the query the page shows, read in the same tick as the check that one is
    shown (between a wait and a second read the page may move on and clear it)."""
    return page.wait_for_function(
        "() => document.getElementById('big').dataset.queryId || false").json_value()

def open_labeler_page(browser, url: str):  # type: ignore[no-untyped-def]
    """A 1100×720 page at ``url`` and the list its JavaScript errors are collected in (the
    tests drive the page by eval, hence ``bypass_csp``)."""
    page = browser.new_page(viewport={"width": 1100, "height": 720}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors


DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "labeling-app.png"


@pytest.fixture
def server(tmp_path: Path, request):
    token = getattr(request, "param", None)
    config = digits_config(batch=8, budget=80, store=str(tmp_path / "browser.sqlite"),
                           name="digits: label all 10 classes")
    prepared = prepare_server(config, host="127.0.0.1", port=0, token=token)
    with running(prepared):
        pool, _ = load_session_data(config)
        yield prepared, pool


def playwright_api():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: apt-get install -y chromium (.ci/run does this)")
    return sync_api


def test_a_person_labels_in_the_browser(server, tmp_path: Path) -> None:
    sync_api = playwright_api()
    prepared, pool = server
    session = prepared.session

    def truth(query_id: int) -> int:
        return int(pool.y[session.store.query(query_id).pool_index])

    # Two rounds answered beforehand through the API, so the learning curve has points.
    with httpx.Client(headers=REQUEST_HEADERS, base_url=prepared.url) as client:
        for _ in range(2):
            for q in client.post("/api/batch", json={"labeler": "earlier"}).json()["queries"]:
                client.post("/api/label", json={"query_id": q["id"], "label": truth(q["id"]),
                                                "labeler": "earlier"})
    assert session.store.round() == 2

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=browser")
        page.wait_for_selector("body[data-round='2']")
        page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

        def current_query() -> int:
            return int(shown_query_id(page))

        def wait_enabled() -> None:
            page.wait_for_selector("#buttons button.cls:not([disabled])")

        # Round 2 by clicking.
        assert page.locator(".thumb").count() == 8
        for _ in range(8):
            wait_enabled()
            qid = current_query()
            page.click(f"#buttons button.cls[data-label='{truth(qid)}']")
            page.wait_for_function(
                f"document.getElementById('big').dataset.queryId !== '{qid}'")
        page.wait_for_selector("body[data-round='3']")
        assert page.evaluate("window.__sameDocument") is True

        # Round 3 by keys: a wrong key, undo with "u", then the right key.
        wait_enabled()
        qid = current_query()
        wrong = (truth(qid) + 1) % 10
        page.keyboard.press(str(wrong))
        page.wait_for_selector(f".thumb[data-query-id='{qid}'].done")
        page.keyboard.press("u")
        page.wait_for_selector(f".thumb[data-query-id='{qid}']:not(.done)")
        for i in range(8):
            wait_enabled()
            qid = current_query()
            page.keyboard.press(str(truth(qid)))
            if i < 7:
                page.wait_for_function(
                    f"document.getElementById('big').dataset.queryId !== '{qid}'")
            if i == 4:  # mid-batch: answered thumbnails, the curve, the budget
                page.wait_for_selector("#curve svg polyline")
                shot = (DOCS_SCREENSHOT if os.environ.get("ACTIVEGEN_SCREENSHOT") == "docs"
                        else tmp_path / "labeling-app.png")
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
        page.wait_for_selector("body[data-round='4']")
        assert page.evaluate("window.__sameDocument") is True
        assert page.locator(".thumb").count() == 8
        assert not errors, errors
        browser.close()

    rows = session.store.read(
        "SELECT q.round, q.pool_index, l.label, l.labeler FROM labels l "
        "JOIN queries q ON q.id = l.query_id WHERE l.labeler = 'browser' ORDER BY l.id")
    assert [r[0] for r in rows] == [2] * 8 + [3] * 8
    assert all(label == int(pool.y[index]) for _, index, label, _ in rows)  # undo took


TOKEN = "browser-test-token-0123456789"


@pytest.mark.parametrize("server", [TOKEN], indirect=True)
def test_the_page_works_with_a_token(server) -> None:
    """With a token required, the page (opened with ?token=) loads its batch and images and
    labels; without the token nothing loads."""
    sync_api = playwright_api()
    prepared, _pool = server
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(bypass_csp=True)  # the test drives the page by eval
        assert page.goto(prepared.url).status == 401
        page.goto(prepared.url + f"?token={TOKEN}&labeler=tok")
        page.wait_for_selector("body[data-round='0']")
        page.wait_for_function("document.getElementById('big').complete && "
                               "document.getElementById('big').naturalWidth === 8")
        # an 8×8 digit enlarged 40 times is drawn as blocks, at its aspect ratio
        page.wait_for_function("document.getElementById('big').classList.contains('pixelated')")
        box = page.locator("#big").bounding_box()
        assert box["width"] == box["height"] == 320
        qid = int(page.get_attribute("#big", "data-query-id"))
        page.keyboard.press("x")
        page.wait_for_selector(f".thumb[data-query-id='{qid}'].done")
        browser.close()
    assert prepared.session.store.read("SELECT query_id, label, labeler FROM labels") == [
        (qid, -1, "tok")]


def test_the_page_shows_the_stop_notice_once_the_criterion_fires(tmp_path: Path) -> None:
    """With a ``[stopping]`` budget criterion of 8 labels at batch 4, the notice is hidden in
    rounds 0-1 and visible, naming the criterion, from round 2 (the fit on 8 labels)."""
    sync_api = playwright_api()
    from activegen.server.config import parse_label_config

    config = parse_label_config({
        "name": "stop", "seed": 3, "data": {"dataset": "digits", "test_fraction": 0.3},
        "loop": {"initial": 4, "batch": 4, "budget": 24},
        "labeling": {"store": str(tmp_path / "stop.sqlite")},
        "stopping": {"criteria": {"budget": {"budget": 8}}, "stop_on": "budget"}})
    prepared = prepare_server(config, host="127.0.0.1", port=0, token=None)
    pool, _ = load_session_data(config)
    session = prepared.session
    with running(prepared), sync_api.sync_playwright() as p, httpx.Client(
            headers=REQUEST_HEADERS, base_url=prepared.url) as client:
        browser = launch(p)
        page = browser.new_page()
        seen = []
        for _ in range(3):
            page.goto(prepared.url + "?labeler=viewer")
            page.wait_for_selector(f"body[data-round='{session.store.round()}']")
            seen.append(page.is_visible("#stopnotice"))
            # as the page's labeler: the page leased this batch to it
            for q in client.post("/api/batch", json={"labeler": "viewer"}).json()["queries"]:
                label = int(pool.y[session.store.query(q["id"]).pool_index])
                client.post("/api/label", json={"query_id": q["id"], "label": label,
                                                "labeler": "viewer"})
        page.goto(prepared.url + "?labeler=viewer")
        page.wait_for_selector("#stopnotice", state="visible")
        text = page.inner_text("#stopnotice")
        browser.close()
    assert seen == [False, False, True]
    assert text.startswith("You can stop here: budget is satisfied")
