"""The routes of a session's audit sample (:class:`~activegen.server.core.audit.Audit`): the
images due now, their pictures, their answers (the estimate is in ``/api/state``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response
from pydantic import Field, StrictInt

from activegen.server.core.labeler import LABELER_MAX
from activegen.server.core.session import LabelSession
from activegen.server.web.routes import Body, Labeler, UndoIn


class AuditLabelIn(Body):
    audit_id: StrictInt = Field(ge=0)
    label: StrictInt
    labeler: Labeler


def add_audit_routes(app: FastAPI, session: LabelSession) -> None:
    """The audit's images due now and their answers (its estimate is in ``/api/state``)."""
    audit = session.audit
    assert audit is not None

    @app.get("/api/audit/batch")
    def audit_batch(labeler: Annotated[str, Query(min_length=1, max_length=LABELER_MAX)]
                    ) -> dict[str, Any]:
        return {"queries": session.audit_batch(labeler)}

    @app.get("/api/audit/image/{audit_id:int}.png")
    def audit_image(audit_id: int) -> Response:
        return Response(audit.image_png(audit_id), media_type="image/png")

    @app.post("/api/audit/label")
    def audit_label(body: AuditLabelIn) -> dict[str, Any]:
        return session.audit_label(body.audit_id, body.label, body.labeler)

    @app.post("/api/audit/undo")
    def audit_undo(body: UndoIn) -> dict[str, Any]:
        return {"status": "undone", "audit_id": session.audit_undo(body.labeler)}
