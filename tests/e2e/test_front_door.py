"""Issue 22, the front door: shut even to a local process (every backend was 127.0.0.1 to the gateway).

- the admin UI never runs on the default or an empty password;
- failed logins from 127.0.0.1 (a backend's address too) cannot lock the operator out;
- a wildcard bind without ALLOWED_HOSTS serves only IP-literal and `localhost` Host headers (DNS rebinding);
- /health/backends and /metrics need a credential when client auth is on, and show only the client's view.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import FIXTURE_SERVER, RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import INITIALIZE, POST_HEADERS, free_port, wait_until

pytestmark = pytest.mark.e2e

STRONG = "correct-horse-battery-staple"
GENERATED = re.compile(r"shown once, here\): (\S+)")


def _config(tmp_path: Path, servers: dict[str, Any] | None = None) -> Path:
    config_dir = tmp_path / "config"
    write_config(config_dir, servers or {"local": stdio_fixture_entry("local")})
    return config_dir


def _login(base: str, username: str, password: str, http: httpx2.Client | None = None) -> int:
    body = {"username": username, "password": password}
    if http is not None:
        return http.post("/admin/login", json=body).status_code
    return httpx2.post(f"{base}/admin/login", json=body, timeout=10).status_code


# ------------------------------------------------------------------------------------------------ the password


def test_admin_ui_never_runs_on_the_default_password(tmp_path: Path, supervisor_factory: Any) -> None:
    """Issue 22: with ENABLE_ADMIN_UI=true and no ADMIN_PASSWORD, admin/password logged in (a backend added an
    unsandboxed server with it). Now a strong password is generated, printed once, kept across restarts."""
    config_dir = _config(tmp_path)
    sup: RunningSupervisor = supervisor_factory(config_dir, {"ENABLE_ADMIN_UI": "true"})
    sup.wait_linked({"local"})
    assert _login(sup.base, "admin", "password") == 401
    assert _login(sup.base, "admin", "") in (400, 401)
    found = wait_until(lambda: GENERATED.search(sup.log_path.read_text()), 10, what="the generated password")
    password = found.group(1)
    assert len(password) >= 20
    stored = config_dir / ".admin_password"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stored.read_text().strip() == password
    assert _login(sup.base, "admin", password) == 200
    sup.stop()

    again = supervisor_factory(config_dir, {"ENABLE_ADMIN_UI": "true"})  # the same one after a restart
    again.wait_linked({"local"})
    assert _login(again.base, "admin", password) == 200
    assert len(GENERATED.findall(sup.log_path.read_text())) == 1, "printed once, not at every start"


def test_an_explicit_default_password_keeps_the_admin_ui_off(tmp_path: Path, supervisor_factory: Any) -> None:
    """Issue 22: ADMIN_PASSWORD=password, set on purpose, was served as it is."""
    sup: RunningSupervisor = supervisor_factory(
        _config(tmp_path), {"ENABLE_ADMIN_UI": "true", "ADMIN_PASSWORD": "password"}
    )
    sup.wait_linked({"local"})
    response = httpx2.post(f"{sup.base}/admin/login", json={"username": "admin", "password": "password"}, timeout=10)
    assert response.status_code == 503, response.text
    assert "ADMIN_PASSWORD" in response.text
    assert "ADMIN_PASSWORD" in sup.log_path.read_text()
    assert httpx2.get(f"{sup.base}/health", timeout=10).status_code == 200  # the gateway itself serves on


# ------------------------------------------------------------------------------------------------ the throttle


def test_failed_logins_from_loopback_do_not_lock_the_operator_out(tmp_path: Path, supervisor_factory: Any) -> None:
    """Issue 22: five bad logins from a backend (127.0.0.1, as the operator) locked the operator out."""
    sup: RunningSupervisor = supervisor_factory(
        _config(tmp_path), {"ENABLE_ADMIN_UI": "true", "ADMIN_USERNAME": "operator", "ADMIN_PASSWORD": STRONG}
    )
    sup.wait_linked({"local"})
    with httpx2.Client(base_url=sup.base, timeout=10) as operator:
        assert _login(sup.base, "operator", STRONG, operator) == 200  # a browser that logged in here before
        # The attacker guesses usernames and passwords, then hammers the right username.
        guesses = [_login(sup.base, f"admin{n}", f"wrong-{n}") for n in range(8)]
        hammered = [_login(sup.base, "operator", f"wrong-{n}") for n in range(8)]
        print(f"\nattacker's statuses: {guesses} then {hammered}")
        assert 429 in hammered, "the throttle still slows a guesser down"
        # The operator's browser, known from its earlier login, gets in whatever the attacker did.
        assert _login(sup.base, "operator", STRONG, operator) == 200
        assert operator.get("/admin/session").status_code == 200


def test_wrong_usernames_do_not_throttle_the_right_one(tmp_path: Path, supervisor_factory: Any) -> None:
    sup: RunningSupervisor = supervisor_factory(
        _config(tmp_path), {"ENABLE_ADMIN_UI": "true", "ADMIN_USERNAME": "operator", "ADMIN_PASSWORD": STRONG}
    )
    sup.wait_linked({"local"})
    statuses = [_login(sup.base, "admin", f"wrong-{n}") for n in range(8)]
    assert statuses[-1] == 429, statuses
    assert _login(sup.base, "operator", STRONG) == 200


# ------------------------------------------------------------------------------------------------ DNS rebinding


def test_wildcard_bind_serves_only_ip_and_localhost_hosts(tmp_path: Path, supervisor_factory: Any) -> None:
    """Issue 22: on HOST=0.0.0.0 without ALLOWED_HOSTS, `Host: evil.example` was served initialize and the
    admin login (a page the operator visits could rebind its name to the gateway)."""
    port = free_port()
    sup: RunningSupervisor = supervisor_factory(
        _config(tmp_path), {"HOST": "0.0.0.0", "ENABLE_ADMIN_UI": "true", "ADMIN_PASSWORD": STRONG}, port
    )
    sup.wait_linked({"local"})
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    with httpx2.Client(base_url=sup.base, timeout=10) as http:
        refused = http.post("/mcp", json=INITIALIZE, headers={**POST_HEADERS, **evil})
        assert refused.status_code == 421, refused.text
        assert "ALLOWED_HOSTS" in refused.text
        for method in ("GET", "POST"):
            login = http.request(method, "/admin/login", json={"username": "admin", "password": STRONG}, headers=evil)
            assert login.status_code == 421, (method, login.status_code, login.text)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            origin = {"Origin": f"http://{host}"}
            served = http.post("/mcp", json=INITIALIZE, headers={**POST_HEADERS, "Host": host, **origin})
            assert served.status_code == 200, (host, served.text)
            assert http.get("/admin/login", headers={"Host": host}).status_code == 200
        # A served Host with a foreign Origin: the browser's page is not this gateway's.
        cross = http.post("/mcp", json=INITIALIZE, headers={**POST_HEADERS, "Origin": f"http://evil.example:{port}"})
        assert cross.status_code == 403, cross.text


def test_allowed_hosts_names_more_on_a_wildcard_bind(tmp_path: Path, supervisor_factory: Any) -> None:
    port = free_port()
    sup: RunningSupervisor = supervisor_factory(
        _config(tmp_path), {"HOST": "0.0.0.0", "ALLOWED_HOSTS": "mcp.example.internal"}, port
    )
    sup.wait_linked({"local"})
    with httpx2.Client(base_url=sup.base, timeout=10) as http:
        named = {"Host": f"mcp.example.internal:{port}", "Origin": f"http://mcp.example.internal:{port}"}
        assert http.post("/mcp", json=INITIALIZE, headers={**POST_HEADERS, **named}).status_code == 200
        evil = {"Host": f"evil.example:{port}"}
        assert http.post("/mcp", json=INITIALIZE, headers={**POST_HEADERS, **evil}).status_code == 421


# ------------------------------------------------------------------------------------------------ backend details

OPS_KEY, NARROW_KEY = "key-of-the-operator", "key-of-a-narrow-client"
STDERR_TOKEN = "ghp_secretive-backend-token-1234"


def test_backend_details_need_a_credential_and_show_only_the_clients_view(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """Issue 22: with ALLOWED_KEYS set, /health/backends and /metrics answered without a credential, with every
    backend's last_stderr (tokens), pids and sandbox, also to a client whose view excludes those backends."""
    # A backend that prints a token to stderr before it serves (as real ones print theirs).
    script = tmp_path / "noisy_backend.py"
    script.write_text(
        f"import runpy, sys\nprint({STDERR_TOKEN!r}, file=sys.stderr, flush=True)\n"
        "sys.argv = [sys.argv[1], '--name', 'secretive']\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    secretive = {"type": "stdio", "command": sys.executable, "args": [str(script), str(FIXTURE_SERVER)]}
    config_dir = _config(tmp_path, {"visible": stdio_fixture_entry("visible"), "secretive": secretive})
    clients = {
        "clients": {
            "ops": {"match": {"keys": [OPS_KEY]}, "servers": ["*"]},
            "narrow": {"match": {"keys": [NARROW_KEY]}, "servers": ["visible"]},
            "*": {"servers": []},
        }
    }
    (config_dir / "clients.json").write_text(json.dumps(clients))
    sup: RunningSupervisor = supervisor_factory(config_dir, {"ALLOWED_KEYS": f"{OPS_KEY},{NARROW_KEY}"})
    full = sup.wait_linked({"visible", "secretive"})
    wait_until(lambda: STDERR_TOKEN in (sup.backends()["secretive"].get("last_stderr") or ""), 10, what="stderr")
    assert full["secretive"]["pid"]
    with httpx2.Client(base_url=sup.base, timeout=10) as http:
        for path in ("/health/backends", "/metrics"):
            anonymous = http.get(path)
            assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
            assert "secretive" not in anonymous.text and STDERR_TOKEN not in anonymous.text
            assert http.get(path, headers={"X-Api-Key": "not-a-key"}).status_code == 401
        assert http.get("/health").status_code == 200  # liveness stays open
        narrow = {"X-Api-Key": NARROW_KEY}
        health = http.get("/health/backends", headers=narrow)
        assert health.status_code == 200
        assert [b["key"] for b in health.json()["backends"]] == ["visible"]
        metrics = http.get("/metrics", headers=narrow)
        assert metrics.status_code == 200 and 'backend="visible"' in metrics.text
        for text in (health.text, metrics.text):
            assert "secretive" not in text and STDERR_TOKEN not in text
        ops_metrics = http.get("/metrics", headers={"X-Api-Key": OPS_KEY}).text
        assert 'backend="secretive"' in ops_metrics
