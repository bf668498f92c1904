"""A Label Studio server is not trusted to behave: the token never leaves its origin, and
garbage, trickles, endless pages and a zero interval neither traceback nor hang the sync."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from activegen.cli import main
from activegen.errors import ConfigError
from activegen.server.interop import label_studio
from activegen.server.interop.label_studio import (
    LabelStudioClient,
    LabelStudioError,
    LabelStudioSync,
    check_interval,
)
from activegen.server.interop.label_studio_tasks import choice_result
from fake_label_studio import FakeLabelStudio, project_then, send
from label_support import digits_config, make_session

TOKEN = "secret-token-0123456789"


# -- 4. the token never goes to another origin ------------------------------------------------
def test_4_a_redirect_to_another_origin_is_refused_and_gets_no_token() -> None:
    with FakeLabelStudio(lambda h, m, p: send(h, {"id": 1})) as elsewhere:
        def redirect(handler: BaseHTTPRequestHandler, method: str, path: str) -> None:
            if path.startswith("/api/projects/1"):
                send(handler, b"", 302, {"Location": f"{elsewhere.url}/steal"})
            else:  # a redirect within the origin is followed, with the token
                send(handler, b"", 302, {"Location": "/api/projects/1"})

        with FakeLabelStudio(redirect) as server:
            client = LabelStudioClient(server.url, TOKEN, deadline=10)
            with pytest.raises(LabelStudioError, match=r"redirected to http://127\.0\.0\.1:"
                                                       r"\d+/steal .*another origin; the token "
                                                       "is not sent there"):
                client.project(1)
            with pytest.raises(LabelStudioError, match="another origin"):
                client.request("GET", "/api/other")  # same origin first, then elsewhere
            assert [p for _, p, _ in server.requests] == ["/api/projects/1", "/api/other",
                                                          "/api/projects/1"]
            assert all(h.get("Authorization") == f"Token {TOKEN}"
                       for _, _, h in server.requests)
        assert elsewhere.requests == []


# -- 8. garbage, trickles, endless pages, intervals -------------------------------------------
GARBAGE = {
    "not JSON": b"<html>502 Bad Gateway</html>",
    "truncated JSON": b'{"tasks": [{"id": 1,',
    "a list of numbers": [1, 2, 3],
    "tasks without ids": {"tasks": [{"data": {}}]},
    "ids that are strings": {"tasks": [{"id": "7", "data": {}}]},
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "a string": "tasks",
}


@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_8_a_garbage_listing_is_named_not_a_traceback(body: object) -> None:
    with FakeLabelStudio(project_then(lambda page: body)) as server:
        client = LabelStudioClient(server.url, TOKEN, deadline=10)
        with pytest.raises(LabelStudioError, match=r"GET /api/tasks\?page=1: the answer is "
                                                   "not"):
            client.tasks(1)


@pytest.mark.parametrize("project", [b"nonsense", [], {"id": "x"}, {"id": True}, {}])
def test_8_a_garbage_project_is_named_not_a_traceback(project: object) -> None:
    with FakeLabelStudio(lambda h, m, p: send(h, project)) as server:
        client = LabelStudioClient(server.url, TOKEN, deadline=10)
        with pytest.raises(LabelStudioError, match="POST /api/projects: the answer is not"):
            client.create_project("t", "<View/>")


def test_8_garbage_tasks_of_activegen_are_named_and_the_sync_goes_on(tmp_path: Path) -> None:
    bad = [{"id": 1, "data": {"activegen_query_id": "one"}},
           {"id": 2, "data": {"activegen_query_id": 1}, "annotations": "yes"},
           {"id": 3, "data": {"activegen_query_id": 2},
            "annotations": [{"id": "z", "result": [{"type": "choices", "value": "3"}]}]},
           {"id": 4, "data": {"activegen_query_id": 99999},
            "annotations": [{"id": 1, "result": choice_result("3")}]},
           {"id": 5, "data": "not a table"}]
    session, _ = make_session(tmp_path / "s.sqlite", digits_config([3, 8]))
    try:
        with FakeLabelStudio(project_then(lambda page: bad)) as server:
            sync = LabelStudioSync(session, LabelStudioClient(server.url, TOKEN, deadline=10), 1)
            report = sync.sync()
        assert report.pulled == 0 and report.pushed == 2  # queries 1 and 2 have tasks
        text = "\n".join(report.unreadable)
        for needle in ("task 1: activegen_query_id 'one' is not an integer",
                       "task 2: its annotations are not a list",
                       "task 3: its annotation has 0 choices",
                       "task 4: activegen_query_id 99999 is no query of this session"):
            assert needle in text, text
    finally:
        session.close()


def _trickle(at: str):  # type: ignore[no-untyped-def]
    def respond(handler: BaseHTTPRequestHandler, method: str, path: str) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        if at == "headers":
            for _ in range(100):
                handler.wfile.write(b"X")
                handler.wfile.flush()
                time.sleep(0.3)
        handler.wfile.write(b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.3)

    return respond


@pytest.mark.parametrize("at", ["headers", "body"])
def test_8_a_trickling_server_meets_the_overall_deadline(at: str) -> None:
    with FakeLabelStudio(_trickle(at)) as server:
        client = LabelStudioClient(server.url, TOKEN, timeout=5, deadline=1.5)
        start = time.monotonic()
        with pytest.raises(LabelStudioError, match=r"no complete answer to GET "
                                                   r"/api/projects/1 within 1\.5 s"):
            client.project(1)
        assert time.monotonic() - start < 4


def test_8_endless_pagination_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    def endless(page: int) -> dict:
        return {"tasks": [{"id": page * 100 + i, "data": {"image": "x" * 1000}}
                          for i in range(100)], "total": 10**9}

    monkeypatch.setattr(label_studio, "MAX_PAGES", 20)
    with FakeLabelStudio(project_then(endless)) as server:
        client = LabelStudioClient(server.url, TOKEN, deadline=10)
        with pytest.raises(LabelStudioError, match="more than 20 pages of tasks"):
            client.tasks(1)
        monkeypatch.setattr(label_studio, "MAX_LISTING_BYTES", 300_000)
        with pytest.raises(LabelStudioError, match="its tasks exceed"):
            client.tasks(1)
        monkeypatch.setattr(label_studio, "MAX_ANSWER_BYTES", 50_000)
        with pytest.raises(LabelStudioError, match="the answer exceeds"):
            client.tasks(1)

    def same_page(page: int) -> dict:  # a server that ignores the page number
        return {"tasks": [{"id": i, "data": {"image": "x"}} for i in range(100)]}

    with FakeLabelStudio(project_then(same_page)) as server:
        tasks = LabelStudioClient(server.url, TOKEN, deadline=10).tasks(1)
        assert [t["id"] for t in tasks] == list(range(100))
        assert all("image" not in t["data"] for t in tasks)  # images are not kept
        assert len(server.requests) == 2


@pytest.mark.parametrize("interval", ["0", "-1", "0.01", "nan"])
def test_8_an_interval_below_a_second_is_refused_before_any_work(
        interval: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "s.sqlite"
    rc = main(["label-studio", "--images", str(tmp_path), "--classes", "a,b",
               "--url", "http://127.0.0.1:9", "--ls-token", TOKEN, "--store", str(store),
               "--interval", interval])
    assert rc == 2
    assert "syncs must be at least 1 s apart" in capsys.readouterr().err
    assert not store.exists()
    with pytest.raises(ConfigError):
        check_interval(float(interval))
