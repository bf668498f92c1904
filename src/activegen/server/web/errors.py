"""The session's refusals as HTTP statuses, in one table.

The session, its audit and the import readers raise
:mod:`~activegen.server.core.errors` exceptions; the app answers each with the status of the
nearest class in :data:`STATUS` and ``{"detail": <message>}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from activegen.server.core.errors import (
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    SessionError,
)

#: Each kind of refusal and its status; a subclass answers with its nearest listed ancestor's.
STATUS: dict[type[SessionError], int] = {
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    InvalidRequest: 422,
    SessionError: 400,
}


def status_of(exc: SessionError) -> int:
    """The HTTP status of ``exc`` (its nearest class in :data:`STATUS`)."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def install_error_statuses(app: FastAPI) -> None:
    """Answer every :class:`SessionError` a route raises with its status."""

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SessionError)
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    app.add_exception_handler(SessionError, refused)
