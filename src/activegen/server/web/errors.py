"""The session's refusals as HTTP statuses, in one table.

The session, its audit and the import readers raise
:mod:`~activegen.server.core.errors` exceptions; the app answers each with the status of the
nearest class in :data:`STATUS` and ``{"detail": <message>}``. A store that cannot be written
is 507 (a full disk) or 503 (read-only, failing), as is any other read or write that fails.
"""

from __future__ import annotations

import errno

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from activegen.server.core.errors import (
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    SessionError,
    StorageFull,
    Unavailable,
)

#: Each kind of refusal and its status; a subclass answers with its nearest listed ancestor's.
STATUS: dict[type[SessionError], int] = {
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    InvalidRequest: 422,
    StorageFull: 507,
    Unavailable: 503,
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

    async def disk(_: Request, exc: Exception) -> JSONResponse:
        # a file the app reads or writes (an export, an image) on a full or failing disk
        assert isinstance(exc, OSError)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        where = f"{exc.filename}: " if exc.filename else ""
        return JSONResponse({"detail": f"{where}{exc.strerror or type(exc).__name__}"},
                            status_code=507 if full else 503)

    app.add_exception_handler(OSError, disk)
