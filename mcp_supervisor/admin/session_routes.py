"""Login, logout, the session's CSRF token, the environment, and the two HTML pages."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_supervisor import __version__
from mcp_supervisor.admin.auth import COOKIE_NAME, DEVICE_COOKIE_NAME, DEVICE_SECONDS, AdminSession
from mcp_supervisor.admin.context import AdminContext
from mcp_supervisor.admin.guard import same_origin
from mcp_supervisor.admin.http import BadRequest, error, json_response, read_form, read_object
from mcp_supervisor.admin.throttle import login_key

FORM_TYPE = "application/x-www-form-urlencoded"

STATIC_DIR = Path(__file__).parent / "static"


def _over_tls(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/admin"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current_session(request: Request) -> AdminSession:
    """Set by AdminGuard on every request that needs a session."""
    session: AdminSession = request.state.admin_session
    return session


async def _login(ctx: AdminContext, request: Request) -> Response:
    """A JSON login (the admin's script), or a form posted by its own login page (a browser without script)."""
    auth, throttle = ctx.auth, ctx.throttle
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    as_form = content_type == FORM_TYPE
    if as_form and not same_origin(request.headers):
        # A form can be posted from any site: only the admin's own pages may log in with one.
        return error(403, "A form login is accepted only from this admin's own login page.")
    if content_type != "application/json" and not as_form:
        return error(415, f"Send the credentials as application/json, or as {FORM_TYPE} from the login page.")
    body = await read_form(request) if as_form else await read_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest('The body needs "username" and "password" strings.')
    # Keyed so that others' failures never delay a browser that logged in before (admin/throttle.py).
    device = auth.verify_device(request.cookies.get(DEVICE_COOKIE_NAME))
    key = login_key(_client(request), auth.known_username(username), device)
    wait = throttle.retry_after(key)
    if wait > 0:
        return error(
            429,
            f"Too many failed logins; try again in {wait:.0f} s (a browser that logged in here before may "
            "log in at once).",
            {"Retry-After": str(int(wait) + 1)},
        )
    if not auth.check_credentials(username, password):
        throttle.failed(key)
        return json_response({"success": False, "error": "Wrong username or password."}, 401)
    throttle.succeeded(key)
    return _logged_in(ctx, request, as_form, device is not None)


def _logged_in(ctx: AdminContext, request: Request, as_form: bool, known_device: bool) -> Response:
    auth = ctx.auth
    cookie, session = auth.issue()
    response: Response = json_response({"success": True, "csrfToken": auth.csrf_token(session)})
    if as_form:  # a browser without our script: on to the admin's pages
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
    cookies = [(COOKIE_NAME, cookie, int(ctx.settings.admin_session_hours * 3600))]
    if not known_device:
        cookies.append((DEVICE_COOKIE_NAME, auth.issue_device(), int(DEVICE_SECONDS)))
    for name, value, max_age in cookies:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=_cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=_over_tls(request),
        )
    return response


def session_routes(ctx: AdminContext) -> list[BaseRoute]:
    auth = ctx.auth

    async def login_page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "login.html", headers={"Cache-Control": "no-store"})

    async def index_page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        return await _login(ctx, request)

    async def logout(request: Request) -> Response:
        auth.revoke(current_session(request))
        response = json_response({"success": True})
        response.delete_cookie(COOKIE_NAME, path=_cookie_path(request), httponly=True, samesite="strict")
        return response

    async def session_info(request: Request) -> Response:
        session = current_session(request)
        return json_response(
            {
                "username": session.username,
                "csrfToken": auth.csrf_token(session),
                "webTerminal": ctx.settings.enable_web_terminal,
            }
        )

    async def environment(request: Request) -> Response:
        settings = ctx.settings
        return json_response(
            {
                "toolsFolder": str(settings.tools_folder),
                "serverToolnameSeparator": settings.separator,
                "webTerminal": settings.enable_web_terminal,
                "adminUi": True,
                "version": __version__,
            }
        )

    return [
        Route("/", index_page, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/session", session_info, methods=["GET"]),
        Route("/environment", environment, methods=["GET"]),
    ]
