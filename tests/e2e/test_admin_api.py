"""The admin API over HTTP against the real process tree: sessions, CSRF, throttling, validation, and the
server/tool/health routes doing what they say (docs/admin.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.conftest import FIXTURE_SERVER, RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, mcp_client, wait_until

pytestmark = pytest.mark.e2e

USER, PASSWORD = "root-admin", "s3cret-pass"

# Every admin route a logged-out client must not reach, with the method it takes.
PROTECTED = [
    ("GET", "/admin/session"),
    ("GET", "/admin/environment"),
    ("POST", "/admin/logout"),
    ("GET", "/admin/config"),
    ("POST", "/admin/config"),
    ("GET", "/admin/servers"),
    ("POST", "/admin/servers"),
    ("PUT", "/admin/servers/one"),
    ("DELETE", "/admin/servers/one"),
    ("POST", "/admin/servers/one/restart"),
    ("POST", "/admin/server/reload"),
    ("GET", "/admin/tools/list"),
    ("GET", "/admin/tools/config"),
    ("POST", "/admin/tools/config"),
    ("PATCH", "/admin/tools/one--echo"),
    ("GET", "/admin/health"),
    ("GET", "/admin/logs/one"),
    ("GET", "/admin/sse/updates"),
    ("POST", "/admin/server/install/one"),
    ("POST", "/admin/server/install/one/cancel"),
    ("GET", "/admin/installs"),
    ("POST", "/admin/terminal/start"),
    ("GET", "/admin/terminal/list"),
]


@pytest.fixture
def admin(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"one": stdio_fixture_entry("one", futureField={"kept": True})})
    data = json.loads((config_dir / "mcp_server.json").read_text())
    data["x-deployment"] = {"owner": "ops"}  # an unknown top-level section: must survive admin writes
    (config_dir / "mcp_server.json").write_text(json.dumps(data, indent=2))
    running: RunningSupervisor = supervisor_factory(
        config_dir,
        {
            "ENABLE_ADMIN_UI": "true",
            "ENABLE_WEB_TERMINAL": "true",
            "ADMIN_USERNAME": USER,
            "ADMIN_PASSWORD": PASSWORD,
            "TOOLS_FOLDER": str(tmp_path / "tools"),
        },
    )
    running.wait_linked({"one"})
    return running


class AdminClient:
    def __init__(self, base: str) -> None:
        self.http = httpx2.Client(base_url=base, timeout=30)
        self.csrf = ""

    def login(self, username: str = USER, password: str = PASSWORD) -> httpx2.Response:
        response = self.http.post("/admin/login", json={"username": username, "password": password})
        if response.status_code == 200:
            self.csrf = response.json()["csrfToken"]
        return response

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx2.Response:
        return self.http.request(method, path, headers={"X-CSRF-Token": self.csrf, **(headers or {})}, **kwargs)


@pytest.fixture
def client(admin: RunningSupervisor) -> Iterator[AdminClient]:
    client = AdminClient(admin.base)
    assert client.login().status_code == 200
    yield client
    client.http.close()


def test_every_admin_route_needs_a_session(admin: RunningSupervisor) -> None:
    with httpx2.Client(base_url=admin.base, timeout=10) as http:
        for method, path in PROTECTED:
            response = http.request(method, path, json={} if method != "GET" else None)
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            assert response.json() == {"error": "Not logged in."}
        page = http.get("/admin/", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/admin/login"
        login_page = http.get("/admin/login")
        assert login_page.status_code == 200 and "text/html" in login_page.headers["content-type"]
        forged = http.get("/admin/health", cookies={"mcps_admin": "eyJ1IjoiYWRtaW4ifQ.forged"})
        assert forged.status_code == 401


def test_login_sets_a_strict_cookie_and_logout_revokes_it(admin: RunningSupervisor) -> None:
    client = AdminClient(admin.base)
    response = client.login()
    assert response.status_code == 200 and response.json()["success"] is True
    cookie_header = response.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/admin"):
        assert attribute in cookie_header
    assert "secure" not in cookie_header.replace("samesite", "")  # plain http on loopback
    secret = admin.config_dir / ".session_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    cookie = client.http.cookies["mcps_admin"]
    session = client.call("GET", "/admin/session").json()
    assert session == {"username": USER, "csrfToken": client.csrf, "webTerminal": True}
    assert client.call("POST", "/admin/logout").json() == {"success": True}
    replayed = httpx2.get(f"{admin.base}/admin/health", cookies={"mcps_admin": cookie}, timeout=10)
    assert replayed.status_code == 401  # the old cookie is revoked, not merely deleted client-side


def test_wrong_passwords_are_throttled(admin: RunningSupervisor) -> None:
    client = AdminClient(admin.base)
    for _ in range(5):
        wrong = client.login(password="nope")
        assert wrong.status_code == 401 and wrong.json()["success"] is False
    locked = client.login()  # even the right password, while locked out
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 31


def test_state_changes_need_the_csrf_token(client: AdminClient) -> None:
    assert client.http.post("/admin/server/reload").status_code == 403
    wrong = client.http.post("/admin/server/reload", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403 and "CSRF" in wrong.json()["error"]
    form = client.call("POST", "/admin/config", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert form.status_code in (403, 415)
    reloaded = client.call("POST", "/admin/server/reload")
    assert reloaded.status_code == 200 and reloaded.json()["success"] is True


def test_keys_that_escape_are_rejected(client: AdminClient, admin: RunningSupervisor) -> None:
    before = (admin.config_dir / "mcp_server.json").read_bytes()
    for key in ("../../etc", ".hidden", "a/b", ""):
        response = client.call("POST", "/admin/servers", json={"key": key, "entry": stdio_fixture_entry("x")})
        assert response.status_code == 400, (key, response.text)
    install = client.call("POST", "/admin/server/install/..%2F..%2Fetc")
    assert install.status_code in (400, 404)
    assert client.call("GET", "/admin/logs/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    assert (admin.config_dir / "mcp_server.json").read_bytes() == before


def test_invalid_entries_are_refused_and_change_nothing(client: AdminClient, admin: RunningSupervisor) -> None:
    before = (admin.config_dir / "mcp_server.json").read_bytes()
    bad = client.call("POST", "/admin/servers", json={"key": "two", "entry": {"type": "stdio"}})
    assert bad.status_code == 400 and "two" in bad.json()["error"]
    clash = client.call("POST", "/admin/servers", json={"key": "one", "entry": stdio_fixture_entry("one")})
    assert clash.status_code == 409
    missing = client.call("PUT", "/admin/servers/nope", json={"entry": stdio_fixture_entry("nope")})
    assert missing.status_code == 404
    garbage = client.call("POST", "/admin/config", content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    assert (admin.config_dir / "mcp_server.json").read_bytes() == before
    leftovers = [p.name for p in admin.config_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _health(client: AdminClient) -> dict[str, dict[str, Any]]:
    return {b["key"]: b for b in client.call("GET", "/admin/health").json()["backends"]}


def test_server_crud_applies_hot_and_keeps_unknown_fields(client: AdminClient, admin: RunningSupervisor) -> None:
    added = client.call("POST", "/admin/servers", json={"key": "two", "entry": stdio_fixture_entry("two")})
    assert added.status_code == 200, added.text
    wait_until(lambda: _health(client).get("two", {}).get("state") == "RUNNING", 30, what="two RUNNING")
    document = json.loads((admin.config_dir / "mcp_server.json").read_text())
    assert document["x-deployment"] == {"owner": "ops"}
    assert document["mcpServers"]["one"]["futureField"] == {"kept": True}

    servers = {s["key"]: s for s in client.call("GET", "/admin/servers").json()["servers"]}
    assert servers["two"]["status"]["state"] == "RUNNING" and servers["two"]["entry"]["args"][0] == str(FIXTURE_SERVER)

    edited = {**servers["two"]["entry"], "env": {"EDITED": "1"}}
    assert client.call("PUT", "/admin/servers/two", json={"entry": edited}).status_code == 200
    first_pid = servers["two"]["status"]["pid"]
    wait_until(
        lambda: (h := _health(client).get("two", {})).get("state") == "RUNNING" and h.get("pid") != first_pid,
        30,
        what="two restarted with its new entry",
    )
    assert client.call("DELETE", "/admin/servers/two").status_code == 200
    wait_until(lambda: "two" not in _health(client), 30, what="two removed")
    assert json.loads((admin.config_dir / "mcp_server.json").read_text())["mcpServers"].keys() == {"one"}


def test_stop_and_start_one_backend(client: AdminClient) -> None:
    stopped = client.call("POST", "/admin/servers/one/stop")
    assert stopped.status_code == 200 and stopped.json()["success"] is True
    wait_until(lambda: _health(client)["one"]["state"] == "STOPPED", 20, what="one STOPPED")
    started = client.call("POST", "/admin/servers/one/start")
    assert started.status_code == 200, started.text
    wait_until(lambda: _health(client)["one"]["state"] == "RUNNING", 30, what="one RUNNING again")
    assert client.call("POST", "/admin/servers/one/explode").status_code == 404


async def _tool_names(admin: RunningSupervisor) -> set[str]:
    async with mcp_client(admin.url) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


@pytest.mark.anyio
async def test_tool_overrides_apply_without_restart(client: AdminClient, admin: RunningSupervisor) -> None:
    rows = {row["configKey"]: row for row in client.call("GET", "/admin/tools/list").json()["tools"]}
    assert rows["one--echo"]["serverName"] == "one" and rows["one--echo"]["enabled"] is True
    pid = _health(client)["one"]["pid"]

    assert client.call("PATCH", "/admin/tools/one--echo", json={"enabled": False}).status_code == 200
    assert "one--echo" not in await _tool_names(admin)
    renamed = client.call("PATCH", "/admin/tools/one--echo", json={"enabled": True, "exposedName": "say"})
    assert renamed.status_code == 200
    assert {"say"} <= await _tool_names(admin)
    other = next(key for key in rows if key != "one--echo")
    clash = client.call("PATCH", f"/admin/tools/{other}", json={"exposedName": "say"})
    assert clash.status_code == 400 and "say" in clash.json()["error"]
    # A display name that is no valid tool name becomes the tool's title; its name stays.
    titled = client.call("PATCH", f"/admin/tools/{other}", json={"exposedName": "Has Space"})
    assert titled.status_code == 200, titled.text
    async with mcp_client(admin.url) as session:
        titles = {tool.name: tool.title for tool in (await session.list_tools()).tools}
    assert titles[other] == "Has Space", titles
    saved = json.loads((admin.config_dir / "tool_config.json").read_text())
    assert saved["tools"] == {"one--echo": {"enabled": True, "exposedName": "say"}, other: {"exposedName": "Has Space"}}
    assert _health(client)["one"]["pid"] == pid  # nothing restarted


def test_health_logs_and_live_events(client: AdminClient, admin: RunningSupervisor) -> None:
    one = _health(client)["one"]
    assert one["state"] == "RUNNING" and one["pid"] and one["linked"] is True and one["tools"] >= 1
    logs = client.call("GET", "/admin/logs/one", params={"lines": 5}).json()
    assert logs["key"] == "one" and isinstance(logs["lines"], list) and len(logs["lines"]) <= 5
    environment = client.call("GET", "/admin/environment").json()
    assert environment["serverToolnameSeparator"] == "--" and environment["toolsFolder"].endswith("tools")

    events: list[tuple[str, dict[str, Any]]] = []
    with client.http.stream("GET", "/admin/sse/updates") as stream:
        lines = stream.iter_lines()
        restart_sent = False
        event = ""
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
                if event == "connected" and not restart_sent:
                    restart_sent = True
                    assert client.call("POST", "/admin/servers/one/restart").json()["success"] is True
                if event == "backend" and events[-1][1]["event"] == "ready":
                    break
    assert events[0][0] == "connected"
    ready = events[-1][1]["status"]
    assert ready["key"] == "one" and ready["state"] == "RUNNING" and ready["pid"] != one["pid"]


def test_install_streams_output(client: AdminClient, admin: RunningSupervisor, tmp_path: Path) -> None:
    script = "for i in 1 2 3; do echo line-$i; done; echo oops >&2; echo secret=${ADMIN_PASSWORD:-none}"
    entry = {**stdio_fixture_entry("three"), "installCommands": [f"sh -c '{script}'", "exit 3", "echo never"]}
    entry["command"] = sys.executable
    assert client.call("POST", "/admin/servers", json={"key": "three", "entry": entry}).status_code == 200
    seen: list[tuple[str, dict[str, Any]]] = []
    with client.http.stream("GET", "/admin/sse/updates") as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "connected":
                    started = client.call("POST", "/admin/server/install/three")
                    assert started.status_code == 202, started.text
                elif event.startswith("install_"):
                    seen.append((event, data))
                    if event == "install_complete":
                        break
    stdout = [d["output"] for e, d in seen if e == "install_stdout"]
    # Install commands are third-party code: the gateway's own secrets are not in their environment.
    assert stdout == ["line-1", "line-2", "line-3", "secret=none"]
    assert [d["output"] for e, d in seen if e == "install_stderr"] == ["oops"]
    assert seen[-1][1]["exitCode"] == 3 and not any("never" in json.dumps(d) for _, d in seen)
    assert (tmp_path / "tools").is_dir()


@pytest.mark.anyio
async def test_terminal_websocket_needs_session_and_same_origin(client: AdminClient, admin: RunningSupervisor) -> None:
    term_id = client.call("POST", "/admin/terminal/start", json={"cols": 100, "rows": 30}).json()["termId"]
    ws_url = f"ws://127.0.0.1:{admin.port}/admin/terminal/{term_id}/ws"
    cookie = f"mcps_admin={client.http.cookies['mcps_admin']}"
    origin = f"http://127.0.0.1:{admin.port}"
    with pytest.raises(InvalidStatus):  # no session
        async with connect(ws_url, origin=Origin(origin)):
            pass
    with pytest.raises(InvalidStatus):  # a session, but a page of another origin (cross-site WebSocket hijacking)
        async with connect(ws_url, origin=Origin("http://evil.example"), additional_headers={"Cookie": cookie}):
            pass
    output = ""
    async with connect(ws_url, origin=Origin(origin), additional_headers={"Cookie": cookie}) as ws:
        await ws.send(json.dumps({"type": "input", "data": "echo hello-$((6*7))\n"}))
        while "hello-42" not in output.replace("hello-$((6*7))", ""):
            frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if frame["type"] == "output":
                output += frame["data"]
    assert client.call("DELETE", f"/admin/terminal/{term_id}").status_code == 200
    assert client.call("GET", "/admin/terminal/list").json()["terminals"] == []


def test_the_login_accepts_a_form_post_from_its_own_origin_only(admin: RunningSupervisor) -> None:
    credentials = {"username": USER, "password": PASSWORD}
    with httpx2.Client(base_url=admin.base, timeout=30) as http:
        foreign = http.post("/admin/login", data=credentials)  # no Origin: any site's form could be this
        assert foreign.status_code == 403 and "own login page" in foreign.json()["error"], foreign.text
        assert not http.cookies
        other = http.post("/admin/login", content=b"username=x", headers={"Content-Type": "text/plain"})
        assert other.status_code == 415 and "application/json" in other.json()["error"], other.text
        posted = http.post("/admin/login", data=credentials, headers={"Origin": admin.base})
        assert posted.status_code == 303 and posted.headers["location"] == "/admin/", posted.text
        session = http.get("/admin/session")
        assert session.status_code == 200 and session.json()["username"] == USER, session.text
        wrong = http.post("/admin/login", data={**credentials, "password": "nope"}, headers={"Origin": admin.base})
        assert wrong.status_code == 401, wrong.text


@pytest.mark.parametrize("broken", [b'{"mcpServers": {"one": ', b'{"mcpServers": {"one": {"type": "stdio"}}}'])
def test_with_a_broken_file_the_servers_page_shows_the_running_config_and_why(
    client: AdminClient, admin: RunningSupervisor, broken: bytes
) -> None:
    """Issue 15: with an invalid mcp_server.json on disk, the Servers page showed an empty table while the
    backends kept running."""
    (admin.config_dir / "mcp_server.json").write_bytes(broken)
    wait_until(
        lambda: httpx2.get(f"{admin.base}/health/backends", timeout=5).json()["config_error"],
        30,
        what="the supervisor to refuse the broken file",
    )
    listed = client.call("GET", "/admin/servers").json()
    assert listed["showing"] == "running" and "mcp_server.json" in (listed["configError"] or ""), listed
    servers = {s["key"]: s for s in listed["servers"]}
    assert servers["one"]["entry"]["args"][0] == str(FIXTURE_SERVER), listed
    assert servers["one"]["status"]["state"] == "RUNNING", listed


def test_a_revoked_cookie_stays_revoked_after_a_gateway_restart(admin: RunningSupervisor) -> None:
    """Issue 14: a cookie revoked by logout was valid again after a gateway restart (revocations lived in its
    memory); the session secret survives restarts, so the cookie's signature still checks."""
    client = AdminClient(admin.base)
    assert client.login().status_code == 200
    cookie = client.http.cookies["mcps_admin"]
    kept = AdminClient(admin.base)
    assert kept.login().status_code == 200  # a second session, not logged out: it must survive the restart
    assert client.call("POST", "/admin/logout").json() == {"success": True}
    gateway = httpx2.get(f"{admin.base}/health/backends", timeout=10).json()["gateway"]["pid"]
    os.kill(gateway, signal.SIGKILL)
    wait_until(
        lambda: (g := httpx2.get(f"{admin.base}/health/backends", timeout=5).json()["gateway"]) and g["pid"] != gateway,
        30,
        what="a new gateway",
    )
    replayed = httpx2.get(f"{admin.base}/admin/health", cookies={"mcps_admin": cookie}, timeout=10)
    assert replayed.status_code == 401, replayed.text
    assert kept.call("GET", "/admin/session").status_code == 200


@pytest.mark.anyio
async def test_clients_file_is_edited_validated_and_applied(client: AdminClient, admin: RunningSupervisor) -> None:
    path = admin.config_dir / "clients.json"
    absent = client.call("GET", "/admin/clients").json()
    assert absent["present"] is False and absent["document"] is None and absent["views"] == {}
    assert "one" in absent["servers"]  # the keys a profile can name
    assert "one--add" in await _tool_names(admin)
    for bad in ({}, {"clients": {"x": {"servers": "one"}}}, {"clients": {"x": {"surprise": 1}}}):
        refused = client.call("POST", "/admin/clients", json=bad)
        assert refused.status_code == 400 and "clients.json" in refused.json()["error"], refused.text
    assert not path.exists() and not [p for p in admin.config_dir.iterdir() if p.name.endswith(".tmp")]

    document = {"clients": {"*": {"servers": ["one"], "tools": {"deny": ["one--add"]}}}}
    saved = client.call("POST", "/admin/clients", json=document)
    assert saved.status_code == 200, saved.text
    assert json.loads(path.read_text()) == document
    read = client.call("GET", "/admin/clients").json()
    assert read["present"] is True and read["document"] == document and read["fileError"] is None
    # What each client sees of the live catalog, by the gateway's own rule.
    assert "one--echo" in read["views"]["*"]["tools"] and "one--add" not in read["views"]["*"]["tools"]

    async def add_hidden() -> bool:
        names = await _tool_names(admin)
        return "one--echo" in names and "one--add" not in names

    await async_wait_until(add_hidden, 15, interval=0.2, what="the anonymous view without one--add")
    assert client.call("DELETE", "/admin/clients").status_code == 200
    assert not path.exists()

    async def add_back() -> bool:
        return "one--add" in await _tool_names(admin)

    await async_wait_until(add_back, 15, interval=0.2, what="everything visible again")
    assert client.call("DELETE", "/admin/clients").status_code == 404
