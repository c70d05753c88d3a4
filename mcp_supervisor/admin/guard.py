"""The admin's front door: every request under `/admin` passes here before any route.

- the DNS-rebinding guard (Host / Origin) shared with the client routes: an admin UI on localhost is the
  classic target of a rebinding page;
- a valid session cookie, except for the login page, its static files and `POST /login`;
- a CSRF token header on every state-changing request, and a same-origin `Origin` on WebSocket upgrades;
- JSON bodies only for state-changing requests (a cross-site form cannot send `application/json` unasked).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_supervisor.admin.auth import COOKIE_NAME, AdminAuth
from mcp_supervisor.admin.http import error
from mcp_supervisor.gateway.admin_view import HeaderCheck

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
# Reachable without a session (paths relative to the /admin mount).
PUBLIC_PATHS = frozenset({"/login"})
PUBLIC_PREFIXES = ("/static/",)


def _relative_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def session_cookie(headers: Headers) -> str | None:
    # Starlette's lenient parser: another app's odd cookie on the same host (JSON, spaces, no "=") must not
    # hide ours, as the strict http.cookies parser would by rejecting the whole header.
    return cookie_parser(headers.get("cookie", "")).get(COOKIE_NAME)


def same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class AdminGuard:
    def __init__(self, app: ASGIApp, auth: AdminAuth, rebinding: HeaderCheck) -> None:
        self.app = app
        self.auth = auth
        self.rebinding = rebinding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403 if refusal.status_code == 403 else 4401})
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        refused = self.rebinding.check(headers)
        if refused is not None:
            return error(refused[0], refused[1])
        path = _relative_path(scope)
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        session = self.auth.verify(session_cookie(headers))
        method = scope.get("method", "GET")
        if session is None:
            if method == "GET" and "text/html" in headers.get("accept", ""):
                return RedirectResponse(f"{scope.get('root_path', '')}/login", status_code=303)
            return error(401, "Not logged in.")
        scope.setdefault("state", {})["admin_session"] = session
        if scope["type"] == "websocket":
            return None if same_origin(headers) else error(403, "WebSocket from another origin.")
        if method in SAFE_METHODS:
            return None
        if not self.auth.check_csrf(session, headers.get(CSRF_HEADER)):
            return error(403, "Missing or wrong X-CSRF-Token header.")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if has_body and content_type != "application/json":
            return error(415, "Request bodies must be application/json.")
        return None
