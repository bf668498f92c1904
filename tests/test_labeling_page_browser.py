"""The labeling page as a practitioner labeling a folder meets it, in a real Chromium: photos
at their aspect ratio, the audit interleaved with a live estimate drawn before the budget is
spent, the model's guess (toggled, never on audit images), a progress card while the next
batch is prepared with undo disabled, a result card at the end, and the page's export read
back by ``--labels`` into a new store."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from activegen.cli import _images_label_config, build_parser
from activegen.server.opening import open_session
from activegen.server.run import PreparedServer, prepare_server
from activegen.server.web.app import create_app
from activegen.server.web.middleware import LOOPBACK_HOSTS
from activegen.strategies import STRATEGIES
from test_server_browser import (
    launch,
    open_labeler_page,
    playwright_api,
    running,
    shown_query_id,
)

pytestmark = pytest.mark.slow
NAMES = ("zero", "one", "two")
#: width × height of the photos: a 100×427 crop (4.3 times taller than wide), its transpose,
#: a tiny 28×28 one and a landscape photo
SIZES = ((100, 427), (427, 100), (28, 28), (160, 120))


def photo_folder(root: Path, n: int = 60) -> tuple[Path, dict[str, int]]:
    """Digits 0-2 drawn into non-square photos of the :data:`SIZES`, in nested folders."""
    digits = load_digits()
    keep = np.flatnonzero(digits.target < 3)[:n]
    folder, truth = root / "crops", {}
    for j, i in enumerate(keep):
        w, h = SIZES[j % len(SIZES)]
        grey = Image.fromarray((digits.images[i] * (255 / 16)).astype(np.uint8), "L")
        rel = f"site{j % 3}/crop{j:03d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        grey.resize((w, h), Image.Resampling.BILINEAR).convert("RGB").save(folder / rel)
        truth[rel] = int(digits.target[i])
    return folder, truth


def _config(folder: Path, store: Path, *flags: str):  # type: ignore[no-untyped-def]
    """The session of ``activegen label --images folder ... flags`` on ``store``."""
    args = build_parser().parse_args(
        ["label", "--images", str(folder), "--classes", ",".join(NAMES), "--size", "16",
         *flags])
    config = _images_label_config(args)
    return config.model_copy(update={"labeling": config.labeling.model_copy(
        update={"store": store})})


def _loopback_server(session) -> PreparedServer:  # type: ignore[no-untyped-def]
    """A server for ``session`` on a free loopback port (start it with ``running``)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = create_app(session, allowed_hosts=list(LOOPBACK_HOSTS))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    return PreparedServer(session, server, sock,
                          f"http://127.0.0.1:{sock.getsockname()[1]}/", None)


def _path_of(session, query_id: str) -> str:  # type: ignore[no-untyped-def]
    if query_id.startswith("a"):
        return session.audit.files[int(query_id[1:])]
    return session.files[session.store.query(int(query_id)).pool_index]


def _answer_current(page, session, truth: dict[str, int]) -> str:  # type: ignore[no-untyped-def]
    """Press the right key for the image shown; its query id."""
    page.wait_for_selector("#buttons button.cls:not([disabled])")
    qid = shown_query_id(page)
    page.keyboard.press(str(truth[_path_of(session, qid)] + 1))  # keys 1, 2, 3
    return qid


def _wait_next(page, qid: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"document.getElementById('big').dataset.queryId !== '{qid}' || "
                           "!document.getElementById('result').hidden")


def test_photos_are_drawn_at_their_aspect_ratio(tmp_path: Path) -> None:
    """A 100×427 crop was drawn 4.3 times too wide (a fixed square, no object-fit) and
    pixelated like a digit."""
    sync_api = playwright_api()
    folder, _ = photo_folder(tmp_path)
    prepared = prepare_server(_config(folder, tmp_path / "s.sqlite", "--audit", "0",
                                      "--budget", "20"), host="127.0.0.1", port=0)
    session = prepared.session
    with running(prepared), sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=shape")
        page.wait_for_selector(".thumb")
        seen = set()
        for i in range(page.locator(".thumb").count()):
            page.click(f".thumb >> nth={i}")
            qid = page.get_attribute(".thumb.current", "data-query-id")
            page.wait_for_function(
                f"(() => {{ const b = document.getElementById('big'); return "
                f"b.dataset.queryId === '{qid}' && b.complete && b.naturalWidth > 0 && "
                "!document.getElementById('stage').classList.contains('loading'); })()")
            page.wait_for_function(
                f"(() => {{ const t = document.querySelector(\".thumb[data-query-id='{qid}'] "
                "img\"); return t.complete && t.style.width !== ''; })()")
            box = page.locator("#big").bounding_box()
            thumb = page.locator(f".thumb[data-query-id='{qid}'] img").bounding_box()
            with Image.open(folder / _path_of(session, qid)) as image:
                w, h = image.size
            seen.add((w, h))
            assert max(box["width"], box["height"]) == pytest.approx(320, abs=1)
            assert box["width"] / box["height"] == pytest.approx(w / h, rel=0.02), (w, h, box)
            assert thumb["width"] / thumb["height"] == pytest.approx(w / h, rel=0.06)
            # the server enlarged the photos to 384 px smoothly (the tiny one as blocks); the
            # page scales 384 down to 320: no pixelated drawing of a photo
            assert not page.evaluate("document.getElementById('big').classList"
                                     ".contains('pixelated')")
        assert {(100, 427), (427, 100)} <= seen
        # while an image loads, its stage is a light placeholder, not a black square
        background = page.evaluate(
            "getComputedStyle(document.getElementById('stage')).backgroundColor")
        assert background not in ("rgb(0, 0, 0)", "rgba(0, 0, 0, 0)")
        assert not errors, errors
        browser.close()


def test_the_live_estimate_is_drawn_before_the_budget_is_spent(tmp_path: Path) -> None:
    """There was no quality feedback while labeling a folder: the audit came after the budget
    and the model's guess was never shown."""
    sync_api = playwright_api()
    folder, truth = photo_folder(tmp_path)
    prepared = prepare_server(_config(folder, tmp_path / "s.sqlite", "--audit", "12",
                                      "--budget", "30"), host="127.0.0.1", port=0)
    session = prepared.session
    with running(prepared), sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=live")
        page.wait_for_selector("body[data-round='0']")
        assert page.is_visible("#auditstat")  # the header counts the audit on top
        assert page.text_content("#guess") == "no model guess yet"
        for _ in range(10):  # round 0
            _wait_next(page, _answer_current(page, session, truth))
        # the audit images due after a third of the budget: 4 of 12, with no guess
        page.wait_for_function("document.getElementById('big').dataset.queryId"
                               ".startsWith('a')")
        assert page.text_content("#guess") == "no guess on audit images"
        for _ in range(4):
            _wait_next(page, _answer_current(page, session, truth))
        # the estimate and its 95% interval, off the frame
        page.wait_for_selector("#curve svg line.ci", state="attached")
        assert page.is_visible("#curvecard")
        x = float(page.get_attribute("#curve svg circle", "cx"))
        assert x > float(page.get_attribute("#curve svg line.axis >> nth=1", "x1")) + 5
        assert page.text_content("#curvetitle") == "audit accuracy (95% CI)"
        assert "on 4 audit images, model of 10 labels" in page.text_content("#curvenote")
        assert int(page.text_content("#asked")) == 10 < int(page.text_content("#budget"))
        assert page.text_content("#audited") == "4"
        # round 1: the model's guess beside each image, toggled with g
        page.wait_for_function("!document.getElementById('big').dataset.queryId"
                               ".startsWith('a') && "
                               "document.getElementById('guess').textContent.startsWith('model:')")
        qid = page.get_attribute("#big", "data-query-id")
        row = session.store.query(int(qid))
        guess = session.guesses([row])[row.id]
        assert page.text_content("#guess") == (
            f"model: {guess['class']} ({100 * guess['confidence']:.1f}%)")
        page.keyboard.press("g")
        assert page.text_content("#guess") == "model's guess hidden"
        page.keyboard.press("g")
        assert page.text_content("#guess").startswith("model:")
        assert not errors, errors
        browser.close()


class SlowMargin(STRATEGIES.get("margin")):  # type: ignore[misc]
    """Margin sampling that takes its time, as a big pool under load does."""

    def query(self, state, k):  # type: ignore[no-untyped-def]
        if state.round > 0:
            time.sleep(2.5)
        return super().query(state, k)


def test_between_rounds_a_progress_card_and_no_undo(tmp_path: Path) -> None:
    """Between rounds the page was an empty white card for seconds, and undo stayed enabled
    though undoing an answer of a closed round is refused (409)."""
    sync_api = playwright_api()

    folder, truth = photo_folder(tmp_path)
    config = _config(folder, tmp_path / "s.sqlite", "--audit", "0", "--budget", "30")
    session = open_session(config, tmp_path / "s.sqlite", strategy=SlowMargin())
    prepared = _loopback_server(session)
    with running(prepared), sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=wait")
        page.wait_for_selector("body[data-round='0']")
        assert page.is_disabled("#undo")  # nothing answered yet
        qid = _answer_current(page, session, truth)
        _wait_next(page, qid)
        assert page.is_enabled("#undo")
        for _ in range(9):
            _wait_next(page, _answer_current(page, session, truth))
        # the round is closed and the next one is being chosen: a card that says so
        page.wait_for_selector("#waiting", state="visible")
        assert page.is_hidden("#query")
        line = page.text_content("#waitline")
        assert line.startswith("Retraining on 10 labels and choosing the next 10 images")
        assert page.is_disabled("#undo")
        page.wait_for_selector("body[data-round='1']")
        page.wait_for_selector("#query", state="visible")
        assert page.is_disabled("#undo")  # the new batch: nothing of it answered
        assert "The last round took" in page.text_content("#waitdetail")
        assert not errors, errors
        browser.close()


def test_the_result_card_and_the_export_read_back_by_labels(tmp_path: Path) -> None:
    """The result was small grey text beside an empty card, its interval unexplained, and the
    page's own export.csv was refused by --labels."""
    sync_api = playwright_api()
    folder, truth = photo_folder(tmp_path)
    flags = ("--audit", "6", "--budget", "20")
    prepared = prepare_server(_config(folder, tmp_path / "s.sqlite", *flags),
                              host="127.0.0.1", port=0)
    session = prepared.session
    with running(prepared), sync_api.sync_playwright() as p:
        browser = launch(p)
        page, errors = open_labeler_page(browser, prepared.url + "?labeler=end")
        for _ in range(26):  # 20 queries and 6 audit images, interleaved
            _wait_next(page, _answer_current(page, session, truth))
        page.wait_for_selector("#result", state="visible")
        assert page.is_hidden("#query")
        audit = session.audit_state()
        assert audit["counted"] == 6
        text = page.text_content("#result")
        assert page.text_content("#result-accuracy") == f"{100 * audit['accuracy']:.1f}%"
        assert f"95% CI {100 * audit['low']:.1f}%–{100 * audit['high']:.1f}%" in text
        assert "measured on 6 random images the model never trained on" in text
        assert "--audit 24 --labels labels.csv" in text  # how to narrow the interval
        assert "larger --budget" in text  # how to go on
        for link in ("#result-model", "#result-preds", "#result-csv", "#result-json"):
            assert page.is_visible(link)
        with page.expect_download() as download:
            page.click("#result-csv")
        exported = tmp_path / "labels.csv"
        download.value.save_as(exported)
        assert not errors, errors
        browser.close()
    again = open_session(_config(folder, tmp_path / "new.sqlite", *flags, "--labels",
                                 str(exported)), tmp_path / "new.sqlite")
    try:
        assert again.state()["imported"] == 20
        assert {again.files[r["pool_index"]]: r["label"] for r in again.store.answered()} == {
            p: truth[p] for p in (again.files[r["pool_index"]] for r in again.store.answered())}
        assert {again.audit.files[j]: a["label"] for j, a in again.audit.answers().items()} == {
            p: truth[p] for p in again.audit.files}
    finally:
        again.close()


def test_the_page_shows_the_features_training_and_waits_for_them(tmp_path: Path) -> None:
    """``--features self-supervised`` trains while the first batch is labeled: the page says
    so beside the batch, and between the rounds names the training as what it waits for."""
    import dataclasses
    import threading

    from activegen.server.core.preparation import FeaturePreparation, PreparedFeatures
    from activegen.server.images.folder import folder_pool

    sync_api = playwright_api()

    folder, truth = photo_folder(tmp_path)
    config = _config(folder, tmp_path / "s.sqlite", "--audit", "0", "--budget", "30")
    pool = folder_pool(config, tmp_path / "s.sqlite")
    release = threading.Event()

    def prepare(progress):  # type: ignore[no-untyped-def]
        progress(1, 3, 2.5)
        assert release.wait(120)
        return PreparedFeatures(inputs=pool.inputs[:, ::2].copy(), info={"features": "half"})

    pool = dataclasses.replace(pool, preparing=FeaturePreparation("self-supervised", 3, prepare))
    session = open_session(config, tmp_path / "s.sqlite", pool=pool)
    prepared = _loopback_server(session)
    try:
        with running(prepared), sync_api.sync_playwright() as p:
            browser = launch(p)
            page, errors = open_labeler_page(browser, prepared.url + "?labeler=f")
            page.wait_for_selector("body[data-round='0']")
            page.wait_for_selector("#featurenotice", state="visible")
            notice = page.text_content("#featurenotice")
            assert notice.startswith("preparing features: epoch 1 of 3")
            assert "You can label this batch meanwhile" in notice
            for _ in range(10):
                _wait_next(page, _answer_current(page, session, truth))
            page.wait_for_selector("#waiting", state="visible")
            page.wait_for_function("document.getElementById('waitline').textContent"
                                   ".startsWith('preparing features: epoch 1 of 3')")
            assert "the next 10 images are chosen on them" in page.text_content("#waitline")
            release.set()
            page.wait_for_selector("body[data-round='1']")
            page.wait_for_selector("#query", state="visible")
            page.wait_for_selector("#featurenotice", state="hidden")
            assert not errors, errors
            browser.close()
    finally:
        release.set()
