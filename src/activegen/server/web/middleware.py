"""The labeling app's guards: plain ASGI middleware that sees every request before any route.

Who may label: the app listens on loopback by default and then accepts only loopback Host
headers (a web page elsewhere cannot reach it through DNS rebinding). Listening anywhere else
needs a token, checked on every request (``Authorization: Bearer``, ``X-Activegen-Token`` or
``?token=``). Bodies are bounded, state changes must be JSON and carry a custom header (so no
cross-site page can make one), and every response forbids framing and foreign code.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest accepted request body, per route; anything bigger is refused with 413.
MAX_BODY = 64 * 1024
MAX_IMPORT_BODY = 8 * 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

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
