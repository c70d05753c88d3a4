"""AdminGuard (called as ASGI with hand-built scopes), its cookie/origin helpers, and the live-event hub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from mcp_supervisor.admin import events
from mcp_supervisor.admin.auth import COOKIE_NAME, AdminAuth, AdminSession
from mcp_supervisor.admin.events import EventHub
from mcp_supervisor.admin.guard import AdminGuard, same_origin, session_cookie
from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.gateway.frontends.dns_rebinding import RequestGuard

SECRET = b"guard-test-secret-guard-test-secret"
HOST = "127.0.0.1:3663"
ORIGIN = f"http://{HOST}"


@dataclass
class Inner:
    """The admin app behind the guard: records what reached it and answers 200 (or accepts a WebSocket)."""

    scopes: list[Scope] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            return
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"inner", "more_body": False})


@dataclass
class Answer:
    messages: list[Message]

    @property
    def status(self) -> int:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        status: int = start["status"]
        return status

    @property
    def headers(self) -> Headers:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return Headers(raw=start["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Setup:
    auth: AdminAuth
    inner: Inner
    guard: AdminGuard
    cookie: str
    session: AdminSession

    @property
    def csrf(self) -> str:
        return self.auth.csrf_token(self.session)


def make_setup(tmp_path: Path, env: dict[str, str] | None = None) -> Setup:
    settings = load_settings(env=env or {}, config_dir=tmp_path)
    auth = AdminAuth("admin", "pw", SECRET, 3600.0)
    inner = Inner()
    cookie, session = auth.issue()
    return Setup(auth, inner, AdminGuard(inner, auth, RequestGuard(settings)), cookie, session)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def scope_for(
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    kind: str = "http",
    host: str | None = HOST,
) -> Scope:
    all_headers = {"host": host} if host is not None else {}
    all_headers.update(headers or {})
    scope: Scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "/admin",  # as Starlette's Mount("/admin") sets it; path stays the full path
        "query_string": b"",
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in all_headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3663),
    }
    if kind == "http":
        scope["method"] = method
    return scope


def call(guard: AdminGuard, scope: Scope) -> Answer:
    messages: list[Message] = []

    async def receive() -> Message:
        if scope["type"] == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    asyncio.run(guard(scope, receive, send))
    return Answer(messages)


def with_cookie(setup: Setup, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"cookie": f"{COOKIE_NAME}={setup.cookie}", **(headers or {})}


def passed(setup: Setup, answer: Answer) -> bool:
    return answer.status == 200 and answer.body == b"inner" and len(setup.inner.scopes) == 1


# ---------------------------------------------------------------- no session


@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("GET", "/admin/servers", "application/json"),
        ("GET", "/admin/servers", ""),
        ("GET", "/admin/session", "*/*"),
        ("POST", "/admin/servers", "text/html"),  # not a page request: no redirect
        ("HEAD", "/admin/", "text/html"),
        ("DELETE", "/admin/servers/time", "application/json"),
        ("GET", "/admin/login/extra", "application/json"),
        ("GET", "/admin/staticx.css", "application/json"),
    ],
)
def test_no_session_is_401_json(setup: Setup, method: str, path: str, accept: str) -> None:
    answer = call(setup.guard, scope_for(path, method, {"accept": accept}))
    assert answer.status == 401
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "Not logged in."}
    assert setup.inner.scopes == []


@pytest.mark.parametrize("path", ["/admin/", "/admin/servers"])
def test_no_session_html_page_request_redirects_to_login(setup: Setup, path: str) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    answer = call(setup.guard, scope_for(path, "GET", {"accept": accept}))
    assert answer.status == 303
    assert answer.headers["location"] == "/admin/login"
    assert setup.inner.scopes == []


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        f"{COOKIE_NAME}=",
        f"{COOKIE_NAME}=garbage",
        f"{COOKIE_NAME}=abc.def",
        "other=value",
    ],
)
def test_bad_cookie_is_no_session(setup: Setup, cookie: str) -> None:
    answer = call(setup.guard, scope_for("/admin/servers", headers={"cookie": cookie}))
    assert answer.status == 401
    assert setup.inner.scopes == []


def test_revoked_session_is_refused(setup: Setup) -> None:
    setup.auth.revoke(setup.session)
    answer = call(setup.guard, scope_for("/admin/servers", headers=with_cookie(setup)))
    assert answer.status == 401
    assert setup.inner.scopes == []


def test_cookie_of_another_password_is_refused(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    cookie, _ = AdminAuth("admin", "old-password", SECRET, 3600.0).issue()
    answer = call(setup.guard, scope_for("/admin/servers", headers={"cookie": f"{COOKIE_NAME}={cookie}"}))
    assert answer.status == 401


# ---------------------------------------------------------------- public paths


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/login"),
        ("POST", "/admin/login"),  # the login itself: no session, no CSRF token yet
        ("GET", "/admin/static/x.css"),
        ("GET", "/admin/static/main.js"),
    ],
)
def test_public_paths_pass_without_session(setup: Setup, method: str, path: str) -> None:
    headers = {"accept": "text/html", "content-type": "application/json", "content-length": "40"}
    answer = call(setup.guard, scope_for(path, method, headers))
    assert passed(setup, answer)
    assert "admin_session" not in setup.inner.scopes[0].get("state", {})


# ---------------------------------------------------------------- with a session


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_with_session_pass_without_csrf(setup: Setup, method: str) -> None:
    answer = call(setup.guard, scope_for("/admin/servers", method, with_cookie(setup, {"accept": "text/html"})))
    assert passed(setup, answer)
    assert setup.inner.scopes[0]["state"]["admin_session"] == setup.session


def test_session_cookie_among_other_cookies(setup: Setup) -> None:
    cookie = f"theme=dark; {COOKIE_NAME}={setup.cookie}; _ga=GA1.1.123"
    answer = call(setup.guard, scope_for("/admin/servers", headers={"cookie": cookie}))
    assert passed(setup, answer)


def test_session_cookie_next_to_another_apps_json_cookie(setup: Setup) -> None:
    # Another web app on localhost (any port) set this cookie; the browser sends it to /admin too.
    cookie = f'ui_state={{"sidebar":"open"}}; {COOKIE_NAME}={setup.cookie}'
    answer = call(setup.guard, scope_for("/admin/servers", headers={"cookie": cookie}))
    assert passed(setup, answer)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_state_changing_request_without_csrf_token_is_403(setup: Setup, method: str) -> None:
    answer = call(setup.guard, scope_for("/admin/servers", method, with_cookie(setup)))
    assert answer.status == 403
    assert answer.json() == {"error": "Missing or wrong X-CSRF-Token header."}
    assert setup.inner.scopes == []


@pytest.mark.parametrize("token", ["", "wrong", "csrf"])
def test_wrong_csrf_token_is_403(setup: Setup, token: str) -> None:
    headers = with_cookie(setup, {"x-csrf-token": token, "content-type": "application/json"})
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 403
    assert setup.inner.scopes == []


def test_csrf_token_of_another_session_is_403(setup: Setup) -> None:
    _, other = setup.auth.issue()
    headers = with_cookie(setup, {"x-csrf-token": setup.auth.csrf_token(other)})
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 403


def test_cookie_value_as_csrf_token_is_403(setup: Setup) -> None:
    headers = with_cookie(setup, {"x-csrf-token": setup.cookie})
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_right_csrf_token_passes(setup: Setup, method: str) -> None:
    headers = with_cookie(
        setup, {"X-CSRF-Token": setup.csrf, "content-type": "application/json", "content-length": "2"}
    )
    answer = call(setup.guard, scope_for("/admin/servers/time", method, headers))
    assert passed(setup, answer)
    assert setup.inner.scopes[0]["state"]["admin_session"] == setup.session


def test_csrf_is_checked_before_the_content_type(setup: Setup) -> None:
    headers = with_cookie(setup, {"content-type": "text/plain", "content-length": "5"})
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 403


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonp"],
)
def test_non_json_body_is_415(setup: Setup, content_type: str) -> None:
    headers = with_cookie(setup, {"x-csrf-token": setup.csrf, "content-length": "5"})
    if content_type:
        headers["content-type"] = content_type
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 415
    assert answer.json() == {"error": "Request bodies must be application/json."}
    assert setup.inner.scopes == []


def test_non_json_chunked_body_is_415(setup: Setup) -> None:
    # A body without Content-Length (chunked transfer encoding) is still a body.
    headers = with_cookie(
        setup, {"x-csrf-token": setup.csrf, "content-type": "text/plain", "transfer-encoding": "chunked"}
    )
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 415
    assert setup.inner.scopes == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_body_passes(setup: Setup, content_type: str) -> None:
    headers = with_cookie(setup, {"x-csrf-token": setup.csrf, "content-type": content_type, "content-length": "17"})
    assert passed(setup, call(setup.guard, scope_for("/admin/servers", "POST", headers)))


@pytest.mark.parametrize("extra", [{}, {"content-length": "0"}, {"content-length": "0", "content-type": "text/plain"}])
def test_bodyless_request_needs_no_content_type(setup: Setup, extra: dict[str, str]) -> None:
    headers = with_cookie(setup, {"x-csrf-token": setup.csrf, **extra})
    assert passed(setup, call(setup.guard, scope_for("/admin/servers/time/restart", "POST", headers)))


# ---------------------------------------------------------------- WebSocket


def test_websocket_without_session_is_closed(setup: Setup) -> None:
    answer = call(setup.guard, scope_for("/admin/terminal/t1/ws", headers={"origin": ORIGIN}, kind="websocket"))
    assert answer.messages == [{"type": "websocket.close", "code": 4401}]
    assert setup.inner.scopes == []


def test_websocket_from_another_loopback_origin_is_closed(setup: Setup) -> None:
    # Allowed by the DNS-rebinding guard (a loopback origin) but not same-origin.
    headers = with_cookie(setup, {"origin": "http://localhost:8080"})
    answer = call(setup.guard, scope_for("/admin/terminal/t1/ws", headers=headers, kind="websocket"))
    assert answer.messages == [{"type": "websocket.close", "code": 4403}]
    assert setup.inner.scopes == []


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example:3663", "null"])
def test_websocket_from_a_foreign_origin_is_closed(setup: Setup, origin: str) -> None:
    headers = with_cookie(setup, {"origin": origin})
    answer = call(setup.guard, scope_for("/admin/terminal/t1/ws", headers=headers, kind="websocket"))
    assert answer.messages == [{"type": "websocket.close", "code": 4403}]
    assert setup.inner.scopes == []


def test_websocket_without_origin_is_closed(setup: Setup) -> None:
    answer = call(setup.guard, scope_for("/admin/terminal/t1/ws", headers=with_cookie(setup), kind="websocket"))
    assert answer.messages == [{"type": "websocket.close", "code": 4403}]


def test_websocket_same_origin_with_session_passes(setup: Setup) -> None:
    headers = with_cookie(setup, {"origin": ORIGIN})
    answer = call(setup.guard, scope_for("/admin/terminal/t1/ws", headers=headers, kind="websocket"))
    assert answer.messages == [{"type": "websocket.accept"}]
    assert setup.inner.scopes[0]["state"]["admin_session"] == setup.session


def test_websocket_same_origin_is_case_insensitive(setup: Setup) -> None:
    headers = with_cookie(setup, {"origin": "http://LocalHost:3663"})
    scope = scope_for("/admin/terminal/t1/ws", headers=headers, kind="websocket", host="localhost:3663")
    answer = call(setup.guard, scope)
    assert answer.messages == [{"type": "websocket.accept"}]


# ---------------------------------------------------------------- DNS rebinding


@pytest.mark.parametrize("path", ["/admin/servers", "/admin/login", "/admin/static/x.css"])
def test_foreign_host_is_refused_even_with_a_session(setup: Setup, path: str) -> None:
    answer = call(setup.guard, scope_for(path, headers=with_cookie(setup), host="evil.example:3663"))
    assert answer.status == 421
    reason = "Misdirected request: host 'evil.example:3663' is not served here; name it in ALLOWED_HOSTS to serve it."
    assert answer.json() == {"error": reason}
    assert setup.inner.scopes == []


def test_missing_host_is_refused_on_loopback(setup: Setup) -> None:
    answer = call(setup.guard, scope_for("/admin/login", host=None))
    assert answer.status == 421


@pytest.mark.parametrize("host", ["localhost:3663", "127.0.0.1", "[::1]:3663", "LOCALHOST:9999"])
def test_loopback_hosts_are_served(setup: Setup, host: str) -> None:
    assert passed(setup, call(setup.guard, scope_for("/admin/servers", headers=with_cookie(setup), host=host)))


def test_foreign_origin_on_a_request_is_403(setup: Setup) -> None:
    headers = with_cookie(setup, {"origin": "http://evil.example", "x-csrf-token": setup.csrf})
    answer = call(setup.guard, scope_for("/admin/servers", "POST", headers))
    assert answer.status == 403
    assert answer.json() == {"error": "Forbidden: origin 'http://evil.example' is not allowed."}
    assert setup.inner.scopes == []


def test_foreign_host_websocket_is_closed(setup: Setup) -> None:
    headers = with_cookie(setup, {"origin": "http://evil.example:3663"})
    scope = scope_for("/admin/terminal/t1/ws", headers=headers, kind="websocket", host="evil.example:3663")
    answer = call(setup.guard, scope)
    assert [m["type"] for m in answer.messages] == ["websocket.close"]
    assert setup.inner.scopes == []


def test_allowed_hosts_on_a_public_bind(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, {"HOST": "0.0.0.0", "ALLOWED_HOSTS": "admin.example.com"})
    ok = call(setup.guard, scope_for("/admin/servers", headers=with_cookie(setup), host="admin.example.com"))
    assert passed(setup, ok)
    refused = call(setup.guard, scope_for("/admin/servers", headers=with_cookie(setup), host="127.0.0.1:3663"))
    assert refused.status == 421


def test_non_http_scopes_pass_through(setup: Setup) -> None:
    lifespan: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    answer = call(setup.guard, lifespan)
    assert answer.messages == []
    assert setup.inner.scopes == [lifespan]


# ---------------------------------------------------------------- session_cookie / same_origin


def test_session_cookie_absent() -> None:
    assert session_cookie(Headers({})) is None
    assert session_cookie(Headers({"cookie": ""})) is None
    assert session_cookie(Headers({"cookie": "other=1"})) is None


@pytest.mark.parametrize(
    "raw",
    [
        f"{COOKIE_NAME}=abc.def",
        f"a=b; {COOKIE_NAME}=abc.def",
        f"{COOKIE_NAME}=abc.def; a=b",
        f'{COOKIE_NAME}="abc.def"',
        f"x=[1]; {COOKIE_NAME}=abc.def",
        # Cookies of other applications on the same host (cookies are not per port) that browsers do send.
        f"prefs={{%22a%22:1}}; {COOKIE_NAME}=abc.def",
        f'prefs={{"theme":"dark"}}; {COOKIE_NAME}=abc.def',
        f"greeting=hello world; {COOKIE_NAME}=abc.def",
        f"{COOKIE_NAME}=abc.def; greeting=hello world",
        f"flag; {COOKIE_NAME}=abc.def",
        f"name=Jürgen; {COOKIE_NAME}=abc.def",
    ],
)
def test_session_cookie_found_among_other_apps_cookies(raw: str) -> None:
    assert session_cookie(Headers({"cookie": raw})) == "abc.def"


def test_malformed_cookie_header_is_no_session_not_a_crash() -> None:
    assert session_cookie(Headers({"cookie": '=";;;\x00'})) is None


@pytest.mark.parametrize(
    ("origin", "host", "expected"),
    [
        ("http://127.0.0.1:3663", "127.0.0.1:3663", True),
        ("https://Admin.Example.com", "admin.example.com", True),
        ("http://127.0.0.1:3664", "127.0.0.1:3663", False),
        ("http://localhost:3663", "127.0.0.1:3663", False),
        ("null", "127.0.0.1:3663", False),
        (None, "127.0.0.1:3663", False),
    ],
)
def test_same_origin(origin: str | None, host: str, expected: bool) -> None:
    headers = {"host": host} if origin is None else {"host": host, "origin": origin}
    assert same_origin(Headers(headers)) is expected


# ---------------------------------------------------------------- EventHub


def drain(queue: asyncio.Queue[events.AdminEvent]) -> list[events.AdminEvent]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def test_two_listeners_get_every_event_in_order() -> None:
    hub = EventHub()
    hub.publish("before", {"n": 0})  # nobody listens yet: lost
    with hub.listen() as first, hub.listen() as second:
        assert hub.subscribers == 2
        for n in range(1, 4):
            hub.publish("backend", {"n": n})
        expected = [("backend", {"n": 1}), ("backend", {"n": 2}), ("backend", {"n": 3})]
        assert drain(first) == expected
        assert drain(second) == expected
    assert hub.subscribers == 0


def test_full_queue_drops_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "SUBSCRIBER_QUEUE_LIMIT", 3)
    hub = EventHub()
    with hub.listen() as slow, hub.listen() as fast:
        assert slow.maxsize == 3
        received = []
        for n in range(6):
            hub.publish("install_stdout", {"n": n})
            received.extend(drain(fast))
        assert drain(slow) == [("install_stdout", {"n": 3}), ("install_stdout", {"n": 4}), ("install_stdout", {"n": 5})]
        assert received == [("install_stdout", {"n": n}) for n in range(6)]


def test_default_limit_drops_the_oldest() -> None:
    hub = EventHub()
    with hub.listen() as queue:
        for n in range(events.SUBSCRIBER_QUEUE_LIMIT + 5):
            hub.publish("e", {"n": n})
        items = drain(queue)
    assert len(items) == events.SUBSCRIBER_QUEUE_LIMIT
    assert items[0] == ("e", {"n": 5})
    assert items[-1] == ("e", {"n": events.SUBSCRIBER_QUEUE_LIMIT + 4})


def test_no_delivery_after_the_listen_block() -> None:
    hub = EventHub()
    with hub.listen() as queue, hub.listen() as other:
        hub.publish("a", {})
    hub.publish("b", {})
    assert drain(queue) == [("a", {})]
    assert drain(other) == [("a", {})]
    assert hub.subscribers == 0


def test_listener_is_removed_when_the_block_raises() -> None:
    hub = EventHub()
    with pytest.raises(RuntimeError), hub.listen():
        raise RuntimeError("client went away")
    assert hub.subscribers == 0


def test_subscribe_yields_events_until_closed() -> None:
    async def scenario() -> tuple[list[events.AdminEvent], int, int]:
        hub = EventHub()
        stream = hub.subscribe()
        assert isinstance(stream, AsyncGenerator)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the generator is now listening
        during = hub.subscribers
        hub.publish("backend", {"n": 1})
        hub.publish("backend", {"n": 2})
        got = [await first, await anext(stream)]
        await stream.aclose()
        hub.publish("backend", {"n": 3})
        return got, during, hub.subscribers

    got, during, after = asyncio.run(scenario())
    assert got == [("backend", {"n": 1}), ("backend", {"n": 2})]
    assert during == 1
    assert after == 0
