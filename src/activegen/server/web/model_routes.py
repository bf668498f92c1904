"""The routes of a session that exports its model (an image folder's linear model)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from activegen.server.core.session import LabelSession


def add_model_routes(app: FastAPI, session: LabelSession) -> None:
    """The current model as a file, and its predictions for every unlabeled image."""

    @app.get("/api/model.npz")
    def model_file() -> Response:
        return Response(session.model_file(), media_type="application/octet-stream",
                        headers={"content-disposition": 'attachment; filename="model.npz"'})

    @app.get("/api/predictions.csv")
    def predictions() -> Response:
        return Response(session.predictions_csv(), media_type="text/csv", headers={
            "content-disposition": 'attachment; filename="predictions.csv"'})
