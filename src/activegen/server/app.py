"""The labeling web app (FastAPI): one page, a small JSON API, images straight from the store.

Who may label: the app listens on loopback by default and then accepts only loopback Host
headers (a web page elsewhere cannot reach it through DNS rebinding). Listening anywhere else
needs a token, checked on every request (``Authorization: Bearer``, ``X-Activegen-Token`` or
``?token=``). Every input is validated; a bad one gets a 4xx and changes nothing. No route
takes a path: images are addressed by an integer query id and come from the store or the pool.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activegen.server import interchange
from activegen.server.practitioner import ImageFolderSession, add_image_routes
from activegen.server.session import LABELER_MAX, LabelSession, RequestError

#: Largest accepted request body, per route; anything bigger is refused with 413.
MAX_BODY = 64 * 1024
MAX_IMPORT_BODY = 8 * 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

Labeler = Annotated[str, Field(min_length=1, max_length=LABELER_MAX)]

#: Largest query id: the store's ids are SQLite INTEGERs (signed 64-bit); a larger one is a 4xx.
ID_MAX = 2**63 - 1

#: Every state-changing request must carry this header. A cross-site page cannot set a
#: custom header without a CORS preflight, which this app never grants, so an <img>, a form
#: or a fetch from elsewhere cannot lease or label.
REQUEST_HEADER = "X-Activegen-Request"
REQUEST_HEADERS = {REQUEST_HEADER: "1"}

#: Sent with every response: no framing (clickjacking), scripts and styles only from the
#: page itself (the script is inlined, so by hash), images from here or data: URIs.
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(_Body):
    query_id: StrictInt = Field(ge=1, le=ID_MAX)
    label: StrictInt
    labeler: Labeler


class UndoIn(_Body):
    labeler: Labeler


class BatchIn(_Body):
    labeler: Labeler


class ImportIn(_Body):
    format: Literal["csv", "json", "labelstudio"]
    data: str


# -- middleware (plain ASGI, so they see every request before any route) -------------------
async def _reply(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
                 ) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a body over the route's limit, by Content-Length or by counting the stream."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY,
                 import_limit: int = MAX_IMPORT_BODY) -> None:
        self.app, self.limit, self.import_limit = app, limit, import_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.import_limit if scope["path"] == "/api/import" else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _reply(send, 400, "bad Content-Length")
                return
            if too_big:
                await _reply(send, 413, f"request body over {limit} bytes")
                return
        seen = 0
        started = replied = False

        async def counting_receive() -> Message:
            # A streamed (chunked) body: answer 413 ourselves and tell the app the client left.
            nonlocal seen, replied
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if not started and not replied:
                        replied = True
                        await _reply(send, 413, f"request body over {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if replied:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


class TokenMiddleware:
    """401 unless the request carries the session token (constant-time comparison)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-activegen-token", b"")
        auth = headers.get(b"authorization", b"")
        if auth.lower().startswith(b"bearer "):
            offered = auth[7:].strip()
        if not offered:
            from urllib.parse import parse_qs

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered = (query.get("token") or [""])[0].encode()
        if not secrets.compare_digest(offered, self.token):
            await _reply(send, 401, "a valid token is required (printed when the server started)",
                         [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class JsonOnlyMiddleware:
    """415 for a POST that is not ``application/json`` (also blocks cross-site form posts);
    403 for one without :data:`REQUEST_HEADER` (a cross-site request cannot carry it).
    Other methods go on to the router, which answers 405 where a route lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            if dict(scope["headers"]).get(REQUEST_HEADER.lower().encode()) != b"1":
                await _reply(send, 403, f"state changes need the header {REQUEST_HEADER}: 1 "
                                        "(the labeling page sends it)")
                return
            ctype = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
            if ctype.lower() != b"application/json":
                await _reply(send, 415, "send the body as application/json")
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` and ``csp`` to every response."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in
                        {**SECURITY_HEADERS, "content-security-policy": csp}.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


def content_security_policy(page: str) -> str:
    """A strict CSP for ``page``: its inline scripts and styles allowed by hash only, nothing
    from elsewhere, no framing, no plugins, forms and base URIs to this origin."""
    import base64
    import hashlib
    import re

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in bodies)

    return ("default-src 'none'; "
            f"script-src 'self' {hashes('script')}; "
            f"style-src 'self' {hashes('style')}; "
            "img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


# -- the app ------------------------------------------------------------------------------
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

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

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

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return session.state()

    @app.post("/api/batch")
    def batch(body: BatchIn) -> dict[str, Any]:
        # POST: it leases queries (a state change), so it must not be reachable by a GET
        # One snapshot under the store's (reentrant) lock: otherwise the worker could store
        # the next round between the lease and `preparing`, and an empty lease would read as
        # "nothing to do" (no queries, not preparing) though a batch is waiting.
        with session.store.lock:
            rows = session.batch(body.labeler)
            return {"round": session.store.current_round(), "finished": session.finished,
                    "preparing": session.preparing,
                    "queries": [session.query_dict(r) for r in rows]}

    @app.get("/api/image/{query_id:int}.png")
    def image(query_id: int) -> Response:
        if not 1 <= query_id <= ID_MAX:  # no query has such an id (SQLite ids are 64-bit)
            raise RequestError(404, f"no query {query_id}")
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

    def _session_info() -> dict[str, Any]:
        return {"name": session.config.name, "seed": session.config.seed,
                "strategy": session.config.strategy.name,
                "learner": session.config.learner.name,
                **({"audit": session.audit_state()}
                   if isinstance(session, ImageFolderSession) else {})}

    @app.get("/api/export.csv")
    def export_csv() -> Response:
        text = interchange.to_csv(session.store.answered(), session.classes,
                                 paths=getattr(session, "paths", None))
        return Response(text, media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="labels.csv"'})

    @app.get("/api/export.json")
    def export_json() -> Response:
        text = interchange.to_json(session.store.answered(), session.classes, _session_info(),
                                  paths=getattr(session, "paths", None))
        return Response(text, media_type="application/json",
                        headers={"content-disposition": 'attachment; filename="labels.json"'})

    @app.get("/api/export.labelstudio.json")
    def export_label_studio() -> Response:
        text = interchange.to_label_studio(session.store.answered(), session.classes,
                                           session.image_png)
        return Response(text, media_type="application/json", headers={
            "content-disposition": 'attachment; filename="labels.labelstudio.json"'})

    @app.get("/api/labelstudio-config.xml")
    def label_studio_config() -> Response:
        return Response(interchange.label_studio_config(session.classes),
                        media_type="application/xml")

    @app.post("/api/import")
    def import_labels(body: ImportIn) -> dict[str, Any]:
        items, skipped = interchange.PARSERS[body.format](body.data, session.classes)
        counts = session.import_labels(items)
        return {"status": "imported", **counts, "skipped": skipped}

    if isinstance(session, ImageFolderSession):
        add_image_routes(app, session)

    # The last one added runs first: host check, token, body size, content type, route.
    app.add_middleware(JsonOnlyMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, csp=content_security_policy(page))
    app.add_middleware(BodyLimitMiddleware, limit=max_body, import_limit=max_import_body)
    if token is not None:
        app.add_middleware(TokenMiddleware, token=token)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app
