"""The labeling web app (FastAPI): one page, a small JSON API, images straight from the store.

:func:`create_app` puts together the page, the session's routes
(:mod:`activegen.server.web.routes`), the routes of what the session offers (an audit sample:
:mod:`activegen.server.web.audit_routes`; a model to export:
:mod:`activegen.server.web.model_routes`), the statuses of the session's refusals
(:mod:`activegen.server.web.errors`) and the guards every request passes first
(:mod:`activegen.server.web.middleware`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from activegen.server.core.session import LabelSession
from activegen.server.web.audit_routes import add_audit_routes
from activegen.server.web.errors import install_error_statuses
from activegen.server.web.middleware import (
    MAX_BODY,
    MAX_IMPORT_BODY,
    BodyLimitMiddleware,
    JsonOnlyMiddleware,
    SecurityHeadersMiddleware,
    TokenMiddleware,
    content_security_policy,
)
from activegen.server.web.model_routes import add_model_routes
from activegen.server.web.routes import add_session_routes


def _static(name: str) -> str:
    return (resources.files("activegen.server") / "static" / name).read_text(encoding="utf-8")


def create_app(
    session: LabelSession,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    max_body: int = MAX_BODY,
    max_import_body: int = MAX_IMPORT_BODY,
) -> FastAPI:
    """The web app over ``session``.

    Args:
        token: required on every request when set (the CLI sets one for non-loopback hosts).
        allowed_hosts: Host headers accepted (None: any; the CLI passes the loopback names
            when it listens on loopback).
    """
    app = FastAPI(title="activegen labeling", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_statuses(app)

    script = _static("app.js")
    # The script is inlined: a <script src> could not carry the token when one is required.
    page = _static("index.html").replace('<script src="/app.js"></script>',
                                         f"<script>\n{script}\n</script>")

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    @app.get("/app.js")
    def app_js() -> Response:
        return Response(script, media_type="text/javascript", headers={"cache-control": "no-store"})

    add_session_routes(app, session)
    if session.audit is not None:
        add_audit_routes(app, session)
    if session.exporter is not None:
        add_model_routes(app, session)

    # The last one added runs first: host check, token, body size, content type, route.
    app.add_middleware(JsonOnlyMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, csp=content_security_policy(page))
    app.add_middleware(BodyLimitMiddleware, limit=max_body, import_limit=max_import_body)
    if token is not None:
        app.add_middleware(TokenMiddleware, token=token)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app
