"""A live active-learning loop with Label Studio, synced through its REST API.

activegen stays the loop (the session's store, learner and strategy); Label Studio is where
the person labels. One :meth:`LabelStudioSync.sync` does, in this order:

1. **pull**: read the project's tasks; every task made by activegen (``data.activegen_query_id``)
   with a finished answer (read by the one Label Studio reader,
   :func:`~activegen.server.interop.label_studio_tasks.task_answer`) is recorded in the
   session's store as that query's answer, by the labeler ``label-studio``. Answering the last
   open query of a round retrains the learner and chooses the next round, as in the web app.
2. **push**: the open queries of the current round that the project does not hold yet become
   tasks, imported in the strategy's order (so Label Studio's default order, by task id, is
   the strategy's), each with the image as a PNG data URI, its file (``data.path``) and, once
   a model exists, a pre-annotation: the model's class and its probability as the prediction's
   ``score`` (sort by it in the Data Manager to review the least sure first).

The project itself is the record of what was pushed (a task's ``activegen_query_id``), so a
sync interrupted anywhere pushes nothing twice. Talks to Label Studio with the standard
library only (``urllib``): no SDK whose pins would clash with ours. The project id and server
are kept in the store's meta table, so the same store always syncs with the same project.

The server is not trusted to behave: the token is never sent to another origin (a redirect
elsewhere is refused, since urllib would forward ``Authorization``); every request has an
overall deadline, not only a per-read timeout (a server that trickles a byte at a time would
hang the sync for ever); an answer is read up to :data:`MAX_ANSWER_BYTES`, a listing up to
:data:`MAX_LISTING_BYTES` and :data:`MAX_PAGES` pages (a server that paginates without end
would fill the memory); every answer is checked for the shape the sync reads, so a garbage
body is a :class:`LabelStudioError` naming the request, never a traceback; and syncs are at
least :data:`MIN_INTERVAL` seconds apart (each reads every task of the project).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activegen.errors import ActivegenError, ConfigError
from activegen.models.capabilities import Probabilistic, has_capability
from activegen.server.core.errors import Conflict, InvalidImport, NotFound, SessionError
from activegen.server.core.session import LabelSession
from activegen.server.core.store import QueryRow
from activegen.server.interop.interchange import label_studio_config
from activegen.server.interop.label_studio_tasks import choice_result, task_answer

#: the labeler id under which Label Studio's answers are stored
LABELER = "label-studio"
_META_KEY = "label_studio"


#: The most bytes one answer may have (a page of tasks carries their images).
MAX_ANSWER_BYTES = 64 << 20
#: The most bytes, and pages, one listing of a project's tasks may read.
MAX_LISTING_BYTES = 512 << 20
MAX_PAGES = 10_000
#: The fewest seconds between two syncs.
MIN_INTERVAL = 1.0


class LabelStudioError(ActivegenError):
    """Label Studio refused a request, could not be reached, or answered what the sync cannot
    read (the request is named)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme.lower())
    try:
        port = parsed.port or default
    except ValueError:
        port = None
    return parsed.scheme.lower(), (parsed.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect within the server's origin only: urllib would send the token's
    ``Authorization`` header wherever a redirect points."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            raise LabelStudioError(
                f"Label Studio {req.get_method()} {urllib.parse.urlsplit(req.full_url).path}: "
                f"redirected to {newurl} (HTTP {code}), another origin; the token is not sent "
                "there (if that is the server, give it as --url)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """Shuts the sockets of one request when its overall time is up, so that a server
    trickling a byte at a time (which never trips a per-read timeout) cannot hang a sync."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = threading.Event()
        self._timers: list[threading.Timer] = []

    def watch(self, sock: socket.socket) -> None:
        def expire() -> None:
            self.expired.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(0.0, self.end - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def handlers(self) -> list[urllib.request.BaseHandler]:
        deadline = self

        def watched(base: type[http.client.HTTPConnection]) -> type:
            class Connection(base):  # type: ignore[misc,valid-type]
                def connect(self) -> None:
                    super().connect()
                    deadline.watch(self.sock)

            return Connection

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(watched(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(watched(http.client.HTTPSConnection), req,
                                    context=self._context)  # type: ignore[attr-defined]

        return [HTTP(), HTTPS(), _SameOriginRedirects()]


class LabelStudioClient:
    """The few Label Studio REST calls the sync needs (``Authorization: Token <token>``).

    Args:
        url: the server, e.g. ``http://127.0.0.1:8080``.
        token: a user's API token (Account & Settings → Access Token; a legacy token).
        timeout: seconds per read.
        deadline: seconds per request, in all (connecting, redirects and reading included).
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0,
                 deadline: float = 300.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"Label Studio URL {url!r}: needs http:// or https:// and a host")
        if not token:
            raise ConfigError("Label Studio token is empty: give --ls-token or "
                              "LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.deadline = deadline

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:
        """One JSON request; a non-2xx answer, an unreachable or too slow server, an answer
        over :data:`MAX_ANSWER_BYTES` or one that is not JSON is a LabelStudioError."""
        return self._json(self.request_bytes(method, path, body, query), method, path)

    def request_bytes(self, method: str, path: str, body: Any = None,
                      query: dict[str, Any] | None = None) -> bytes:
        """One request's answer body (see :meth:`request`)."""
        target = self.url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(target, data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Accept": "application/json",
            **({} if data is None else {"Content-Type": "application/json"})})
        deadline = _Deadline(self.deadline)
        opener = urllib.request.build_opener(*deadline.handlers())
        try:
            with opener.open(req, timeout=self.timeout) as response:
                return self._read(response, deadline, method, path)
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(500).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                detail = ""
            raise LabelStudioError(f"Label Studio {method} {path}: HTTP {exc.code}: "
                                   f"{detail}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException,
                ValueError) as exc:
            if deadline.expired.is_set():
                raise LabelStudioError(f"Label Studio at {self.url} gave no complete answer to "
                                       f"{method} {path} within {self.deadline:g} s") from None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise LabelStudioError(f"Label Studio at {self.url} unreachable ({method} {path}): "
                                   f"{reason or type(exc).__name__}") from None
        finally:
            deadline.cancel()

    def _read(self, response: Any, deadline: _Deadline, method: str, path: str) -> bytes:
        chunks, size = [], 0
        while chunk := response.read1(1 << 16):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise LabelStudioError(f"Label Studio {method} {path}: the answer exceeds "
                                       f"{MAX_ANSWER_BYTES >> 20} MiB; not read further")
            chunks.append(chunk)
        if deadline.expired.is_set():  # the socket was shut: what was read is cut short
            raise OSError("deadline")
        return b"".join(chunks)

    @staticmethod
    def _json(raw: bytes, method: str, path: str) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise LabelStudioError(f"Label Studio {method} {path}: the answer is not JSON "
                                   f"({str(exc)[:120]})") from None

    @staticmethod
    def _shape(what: str, method: str, path: str) -> LabelStudioError:
        return LabelStudioError(f"Label Studio {method} {path}: the answer is not {what}")

    def create_project(self, title: str, label_config: str) -> int:
        project = self.request("POST", "/api/projects", {"title": title,
                                                         "label_config": label_config})
        project_id = project.get("id") if isinstance(project, dict) else None
        if not _is_id(project_id):
            raise self._shape("a project with an integer id", "POST", "/api/projects")
        return int(project_id)

    def project(self, project_id: int) -> dict[str, Any]:
        path = f"/api/projects/{project_id}"
        project = self.request("GET", path)
        if not isinstance(project, dict):
            raise self._shape("a project (a JSON object)", "GET", path)
        return project

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> None:
        if tasks:
            self.request("POST", f"/api/projects/{project_id}/import", list(tasks))

    def tasks(self, project_id: int, page_size: int = 100) -> list[dict[str, Any]]:
        """Every task of the project, by task id: its id, ``data.activegen_query_id`` and
        its answer (annotations, or a JSON-MIN row's fields); the images are not kept.

        Raises:
            LabelStudioError: a page that is not a list of tasks with integer ids, or a
                listing beyond :data:`MAX_PAGES` pages or :data:`MAX_LISTING_BYTES`.
        """
        out: dict[int, dict[str, Any]] = {}
        read = 0
        for page in range(1, MAX_PAGES + 1):
            try:
                raw = self.request_bytes("GET", "/api/tasks", query={
                    "project": project_id, "page": page, "page_size": page_size,
                    "fields": "all"})
            except LabelStudioError as exc:
                if page > 1 and "HTTP 404" in str(exc):  # past the last page
                    break
                raise
            read += len(raw)
            if read > MAX_LISTING_BYTES:
                raise LabelStudioError(f"Label Studio project {project_id}: its tasks exceed "
                                       f"{MAX_LISTING_BYTES >> 20} MiB; not read further")
            answer = self._json(raw, "GET", f"/api/tasks?page={page}")
            batch = answer.get("tasks") if isinstance(answer, dict) else answer
            if not isinstance(batch, list) or not all(
                    isinstance(t, dict) and _is_id(t.get("id")) for t in batch):
                raise self._shape("a list of tasks with integer ids", "GET",
                                  f"/api/tasks?page={page}")
            new = 0
            for task in batch:
                new += int(task["id"]) not in out
                out[int(task["id"])] = _slim(task)
            total = answer.get("total") if isinstance(answer, dict) else None
            if (len(batch) < page_size or not new
                    or (_is_id(total) and len(out) >= int(total))):
                break  # the last page, or a server that repeats one
        else:
            raise LabelStudioError(f"Label Studio project {project_id}: more than {MAX_PAGES} "
                                   "pages of tasks; not read further")
        return [out[k] for k in sorted(out)]

    def annotate(self, task_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        """Make an annotation (what a person does in the labeling view)."""
        return dict(self.request("POST", f"/api/tasks/{task_id}/annotations",
                                 {"result": result}))


def _is_id(value: object) -> bool:
    """An integer id as JSON gives one (not a bool, a float or a string)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _slim(task: dict[str, Any]) -> dict[str, Any]:
    """What the sync reads of a task (its images left out, so a listing's memory is its
    answers')."""
    data = task.get("data")
    out = {k: v for k, v in task.items() if k != "data"}
    if isinstance(data, dict):
        out["data"] = {k: v for k, v in data.items() if k != "image"}
    return out


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    pulled: int  # answers newly recorded in activegen's store
    conflicts: int  # tasks whose annotation disagrees with an answer already stored
    pushed: int  # tasks imported into Label Studio
    round: int  # the session's round after the sync
    finished: bool
    #: tasks of activegen's whose answer could not be read, each with why (left as they are)
    unreadable: tuple[str, ...] = ()


class LabelStudioSync:
    """Keep one session and one Label Studio project in step (see the module docstring).

    Args:
        session: the labeling session (any :class:`LabelSession`; an image-folder session
            adds each image's file to its task).
        client: the Label Studio server.
        project_id: an existing project to use; default: the one this store used before,
            else a new project titled ``title`` with activegen's labeling config.
    """

    def __init__(self, session: LabelSession, client: LabelStudioClient,
                 project_id: int | None = None, title: str | None = None,
                 wait_seconds: float = 600.0) -> None:
        self.session = session
        self.client = client
        #: how long a sync waits for the session's worker to prepare the next round
        self.wait_seconds = wait_seconds
        with session.store.lock:
            raw = session.store.get_meta(_META_KEY)
        stored = None if raw is None else json.loads(raw)
        if stored is not None and project_id is not None and int(stored["project"]) != project_id:
            raise ConfigError(f"{session.store_path} syncs with Label Studio project "
                              f"{stored['project']}, not {project_id}; use another --store")
        if stored is not None:
            project_id = int(stored["project"])
        if project_id is None:
            project_id = client.create_project(title or session.config.name[:50],
                                               label_studio_config(session.classes))
        else:
            client.project(project_id)  # exists and the token may read it
        self.project_id = project_id
        if stored is None:
            with session.store.lock:
                session.store.set_meta(_META_KEY, json.dumps({"url": client.url,
                                                              "project": project_id}))

    # -- one step -------------------------------------------------------------------------
    def sync(self) -> SyncReport:
        """Pull the annotations, then push the open queries not yet in the project."""
        tasks = self.client.tasks(self.project_id)
        unreadable: list[str] = []
        pulled, conflicts = self._pull(tasks, unreadable)
        # The session computes its next round in a background worker; a sync is not a request
        # that must answer at once, so it waits for that round (or the first one, at start)
        # and pushes it now rather than one interval later.
        self.session.wait_ready(self.wait_seconds)
        present = set()  # the queries the project holds (an unreadable id was named above)
        for t in tasks:
            with contextlib.suppress(InvalidImport):
                present.add(_query_id(t))
        batch = self.session.batch(LABELER)
        rows = sorted(batch.queries, key=lambda r: (r.round, r.position))
        new = [r for r in rows if r.id not in present]
        self.client.import_tasks(self.project_id, [self.task(r) for r in new])
        return SyncReport(pulled, conflicts, len(new), batch.round, batch.finished,
                          tuple(unreadable))

    def _pull(self, tasks: list[dict[str, Any]], unreadable: list[str]) -> tuple[int, int]:
        """Record the tasks' answers; a task whose answer cannot be read is named in
        ``unreadable`` and left as it is (one edited task must not stop every sync)."""
        answered = {int(r["query_id"]): int(r["label"]) for r in self._answers()}
        pulled = conflicts = 0
        for task in tasks:
            where = f"Label Studio task {task.get('id')}"
            try:
                qid = _query_id(task)
                if qid is None:
                    continue  # a task activegen did not make
                label = task_answer(task, self.session.classes, where)
            except InvalidImport as exc:
                unreadable.append(str(exc))
                continue
            if label is None:
                continue
            if qid in answered:
                conflicts += answered[qid] != label
                continue
            try:
                self.session.label(qid, label, LABELER)
            except Conflict:  # answered meanwhile, or held by a web-app labeler
                conflicts += 1
                continue
            except NotFound:
                unreadable.append(f"{where}: activegen_query_id {qid} is no query of this "
                                  "session")
                continue
            except SessionError as exc:
                raise LabelStudioError(f"{where} (query {qid}): {exc}") from None
            pulled += 1
        return pulled, conflicts

    def _answers(self) -> list[dict[str, Any]]:
        with self.session.store.lock:
            return self.session.store.answered()

    def task(self, row: QueryRow) -> dict[str, Any]:
        """The Label Studio task of one query: image, ids, file and the model's guess."""
        session = self.session
        png = session.image_png(row.id)
        data: dict[str, Any] = {
            "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            "activegen_query_id": row.id, "activegen_round": row.round,
            "activegen_position": row.position, "pool_index": row.pool_index,
            "strategy_score": row.score,
        }
        if session.files is not None and row.pool_index is not None:
            data["path"] = session.files[row.pool_index]
        task: dict[str, Any] = {"data": data}
        learner = session.learner
        if row.pool_index is not None and has_capability(learner, Probabilistic):
            proba = np.asarray(learner.predict_proba(session.X_pool[[row.pool_index]]))[0]
            best = int(np.argmax(proba))
            task["predictions"] = [{
                "model_version": f"activegen-round-{row.round}",
                "score": float(proba[best]),
                "result": choice_result(session.classes[best]),
            }]
        return task

    def run(self, interval: float = 5.0, until_finished: bool = True,
            report: Callable[[SyncReport], None] | None = None) -> SyncReport:
        """Sync every ``interval`` seconds (at least :data:`MIN_INTERVAL`) until the session
        is finished (or forever)."""
        check_interval(interval)
        while True:
            outcome = self.sync()
            if report is not None and (outcome.pulled or outcome.pushed or outcome.conflicts
                                       or outcome.unreadable):
                report(outcome)
            if outcome.finished and until_finished:
                return outcome
            time.sleep(interval)


def check_interval(interval: float) -> float:
    """``interval`` if it is a number of seconds of at least :data:`MIN_INTERVAL`, else a
    :class:`ConfigError` (each sync reads every task of the project)."""
    if not (isinstance(interval, int | float) and interval >= MIN_INTERVAL
            and interval != float("inf")):
        raise ConfigError(f"--interval {interval}: syncs must be at least {MIN_INTERVAL:g} s "
                          "apart (each reads every task of the project)")
    return float(interval)


def _query_id(task: dict[str, Any]) -> int | None:
    """The activegen query a task was made for; None for a task activegen did not make.

    Raises:
        InvalidImport: the task's ``activegen_query_id`` is not an integer.
    """
    data = task.get("data")
    qid = data.get("activegen_query_id") if isinstance(data, dict) else None
    if qid is None:
        return None
    if not _is_id(qid):
        raise InvalidImport(f"Label Studio task {task.get('id')}: activegen_query_id {qid!r} "
                            "is not an integer")
    return int(qid)
