"""What every request and response of the pages passes through: a bound on request bodies, the
security headers (gateway/web/security.py), the Host check, and the session cookie."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.security import SECURITY_HEADERS

MAX_BODY_BYTES = 16 * 1024


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413 before any route sees it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let the app see it
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _too_large(send, self.limit)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail": "request body too large: at most {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def _name_of(host_header: str) -> str:
    """The host part of a Host header: `[::1]:8080` -> `::1`, `box.local:8080` -> `box.local`."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    name, _, port = host_header.rpartition(":")
    return name if name and port.isdigit() else host_header


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """The pages answer only to this box's names. Without it a page on evil.example whose name is made
    to resolve to the box (DNS rebinding) could read the patient's values through the visitor's browser
    (issue 19.10). Accepted: any IP address, `localhost`, the box's own host name and NAME.local, and
    `[web] allowed_hosts`; anything else gets 421 Misdirected Request and nothing of the page."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        own = socket.gethostname().lower()
        self.allowed = {"localhost", own, f"{own}.local", *(a.lower().rstrip(".") for a in allowed)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers", [])).get(b"host")
            name = _name_of(header.decode("latin-1").strip().lower()).rstrip(".") if header else ""
            if header is not None and not (_is_address(name) or name in self.allowed):
                await Response("unknown host name: this box's pages answer only to its own names\n",
                               status_code=421, media_type="text/plain")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


class SessionCookie:
    """Sets the session cookie on every response whose request has a session (`scope["state"]["session"]`,
    as `Request.state.session`) that the request's cookie does not name yet — a new session, or the new
    id after a login or logout — whatever answered: a route, a refusal or an error page. Like
    starlette's SessionMiddleware, it writes on the way out; the session itself stays on the server."""

    def __init__(self, app: ASGIApp, cookie: str) -> None:
        self.app, self.cookie = app, cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the session's Set-Cookie to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})  # shared with the routes' Request.state

        async def with_cookie(message: Message) -> None:
            session = state.get("session")
            if (message["type"] == "http.response.start" and session is not None
                    and Request(scope).cookies.get(self.cookie) != session.id):
                cookie = Response()
                cookie.set_cookie(self.cookie, session.id, httponly=True, samesite="strict", path="/",
                                  secure=scope.get("scheme") == "https")
                set_cookie = [h for h in cookie.raw_headers if h[0] == b"set-cookie"]
                message["headers"] = [*message.get("headers", []), *set_cookie]
            await send(message)

        await self.app(scope, receive, with_cookie)
