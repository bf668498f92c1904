"""The session's JSON API: state, leases, images, answers, undo, exports and imports.

Every body is validated with pydantic (strict integers, unknown fields refused) before the
session sees it; what the session refuses is answered by :mod:`activegen.server.web.errors`.
No route takes a path: images are addressed by an integer query id and come from the store or
the pool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from activegen.server.core.errors import NotFound
from activegen.server.core.labeler import LABELER_MAX
from activegen.server.core.session import LabelSession
from activegen.server.interop import interchange

Labeler = Annotated[str, Field(min_length=1, max_length=LABELER_MAX)]

#: Largest query id: the store's ids are SQLite INTEGERs (signed 64-bit); a larger one is a 4xx.
ID_MAX = 2**63 - 1


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(Body):
    query_id: StrictInt = Field(ge=1, le=ID_MAX)
    label: StrictInt
    labeler: Labeler


class UndoIn(Body):
    labeler: Labeler


class BatchIn(Body):
    labeler: Labeler


class ImportIn(Body):
    format: Literal["csv", "json", "labelstudio"]
    data: str


def _attachment(text: str, media_type: str, filename: str) -> Response:
    return Response(text, media_type=media_type,
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


def add_session_routes(app: FastAPI, session: LabelSession) -> None:
    """The routes every session has."""

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return session.state()

    @app.post("/api/batch")
    def batch(body: BatchIn) -> dict[str, Any]:
        # POST: it leases queries (a state change), so it must not be reachable by a GET
        lease = session.batch(body.labeler)
        return {"round": lease.round, "finished": lease.finished, "preparing": lease.preparing,
                "queries": session.query_dicts(lease.queries)}

    @app.get("/api/image/{query_id:int}.png")
    def image(query_id: int) -> Response:
        if not 1 <= query_id <= ID_MAX:  # no query has such an id (SQLite ids are 64-bit)
            raise NotFound(f"no query {query_id}")
        return Response(session.image_png(query_id), media_type="image/png",
                        headers={"cache-control": "private, max-age=86400"})

    @app.post("/api/label")
    def label(body: LabelIn) -> dict[str, Any]:
        outcome = session.label(body.query_id, body.label, body.labeler)
        return {"status": outcome.status, "query_id": outcome.query_id, "label": outcome.label,
                "round_closed": outcome.round_closed}

    @app.post("/api/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        row = session.undo(body.labeler)
        return {"status": "undone", "query": row.as_dict()}

    def source() -> interchange.ExportSource:
        # from the store alone, as `activegen label-export` reads it: the same file
        with session.store.lock:
            return interchange.export_source(session.store.answered(), session.store.meta())

    @app.get("/api/export.csv")
    def export_csv() -> Response:
        return _attachment(interchange.to_csv(source()), "text/csv", "labels.csv")

    @app.get("/api/export.json")
    def export_json() -> Response:
        return _attachment(interchange.to_json(source()), "application/json", "labels.json")

    @app.get("/api/export.labelstudio.json")
    def export_label_studio() -> Response:
        audit_png = None if session.audit is None else session.audit.image_png
        text = interchange.to_label_studio(source(), session.image_png, audit_png)
        return _attachment(text, "application/json", "labels.labelstudio.json")

    @app.get("/api/labelstudio-config.xml")
    def label_studio_config() -> Response:
        return Response(interchange.label_studio_config(session.classes),
                        media_type="application/xml")

    @app.post("/api/import")
    def import_labels(body: ImportIn) -> dict[str, Any]:
        items, skipped = interchange.import_pairs(body.format, body.data, session.classes)
        counts = session.import_labels(items)
        return {"status": "imported", **counts, "skipped": skipped}
