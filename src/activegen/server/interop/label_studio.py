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
"""

from __future__ import annotations

import base64
import json
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
from activegen.server.core.errors import Conflict, SessionError
from activegen.server.core.session import LabelSession
from activegen.server.core.store import QueryRow
from activegen.server.interop.interchange import label_studio_config
from activegen.server.interop.label_studio_tasks import choice_result, task_answer

#: the labeler id under which Label Studio's answers are stored
LABELER = "label-studio"
_META_KEY = "label_studio"


class LabelStudioError(ActivegenError):
    """Label Studio refused a request or could not be reached (the request is named)."""


class LabelStudioClient:
    """The few Label Studio REST calls the sync needs (``Authorization: Token <token>``).

    Args:
        url: the server, e.g. ``http://127.0.0.1:8080``.
        token: a user's API token (Account & Settings → Access Token; a legacy token).
        timeout: seconds per request.
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"Label Studio URL {url!r}: needs http:// or https:// and a host")
        if not token:
            raise ConfigError("Label Studio token is empty: give --ls-token or "
                              "LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:
        """One JSON request; a non-2xx answer or an unreachable server is a LabelStudioError."""
        target = self.url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(target, data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Accept": "application/json",
            **({} if data is None else {"Content-Type": "application/json"})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise LabelStudioError(f"Label Studio {method} {path}: HTTP {exc.code}: "
                                   f"{detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise LabelStudioError(f"Label Studio at {self.url} unreachable ({method} {path}): "
                                   f"{reason}") from None
        return json.loads(raw) if raw else None

    def create_project(self, title: str, label_config: str) -> int:
        project = self.request("POST", "/api/projects", {"title": title,
                                                         "label_config": label_config})
        return int(project["id"])

    def project(self, project_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/projects/{project_id}"))

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> None:
        if tasks:
            self.request("POST", f"/api/projects/{project_id}/import", list(tasks))

    def tasks(self, project_id: int, page_size: int = 100) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, by task id."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            try:
                answer = self.request("GET", "/api/tasks", query={
                    "project": project_id, "page": page, "page_size": page_size,
                    "fields": "all"})
            except LabelStudioError as exc:
                if page > 1 and "HTTP 404" in str(exc):  # past the last page
                    break
                raise
            batch = answer["tasks"] if isinstance(answer, dict) else answer
            out.extend(batch)
            total = answer.get("total") if isinstance(answer, dict) else None
            if len(batch) < page_size or (total is not None and len(out) >= int(total)):
                break
            page += 1
        return sorted(out, key=lambda t: int(t["id"]))

    def annotate(self, task_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        """Make an annotation (what a person does in the labeling view)."""
        return dict(self.request("POST", f"/api/tasks/{task_id}/annotations",
                                 {"result": result}))


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    pulled: int  # answers newly recorded in activegen's store
    conflicts: int  # tasks whose annotation disagrees with an answer already stored
    pushed: int  # tasks imported into Label Studio
    round: int  # the session's round after the sync
    finished: bool


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
        pulled, conflicts = self._pull(tasks)
        # The session computes its next round in a background worker; a sync is not a request
        # that must answer at once, so it waits for that round (or the first one, at start)
        # and pushes it now rather than one interval later.
        self.session.wait_ready(self.wait_seconds)
        present = {int(t["data"]["activegen_query_id"]) for t in tasks
                   if "activegen_query_id" in (t.get("data") or {})}
        batch = self.session.batch(LABELER)
        rows = sorted(batch.queries, key=lambda r: (r.round, r.position))
        new = [r for r in rows if r.id not in present]
        self.client.import_tasks(self.project_id, [self.task(r) for r in new])
        return SyncReport(pulled, conflicts, len(new), batch.round, batch.finished)

    def _pull(self, tasks: list[dict[str, Any]]) -> tuple[int, int]:
        answered = {int(r["query_id"]): int(r["label"]) for r in self._answers()}
        pulled = conflicts = 0
        for task in tasks:
            qid = (task.get("data") or {}).get("activegen_query_id")
            if qid is None:
                continue  # a task activegen did not make
            label = task_answer(task, self.session.classes)
            if label is None:
                continue
            if int(qid) in answered:
                conflicts += answered[int(qid)] != label
                continue
            try:
                self.session.label(int(qid), label, LABELER)
            except Conflict:  # answered meanwhile, or held by a web-app labeler
                conflicts += 1
                continue
            except SessionError as exc:
                raise LabelStudioError(f"Label Studio task {task.get('id')} (query {qid}): "
                                       f"{exc}") from None
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
        """Sync every ``interval`` seconds until the session is finished (or forever)."""
        while True:
            outcome = self.sync()
            if report is not None and (outcome.pulled or outcome.pushed or outcome.conflicts):
                report(outcome)
            if outcome.finished and until_finished:
                return outcome
            time.sleep(interval)
