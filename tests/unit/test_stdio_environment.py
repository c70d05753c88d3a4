"""What a stdio backend's environment holds: the proxy's (mcp-proxy-server's rule), minus the gateway's own secrets."""

from __future__ import annotations

import os
import sys

import pytest

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import GATEWAY_SECRET_ENV
from mcp_supervisor.supervisor.backend_launch import stdio_environment


def test_the_gateway_secrets_stay_in_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GATEWAY_SECRET_ENV:
        monkeypatch.setenv(name, "do-not-leak")
    monkeypatch.setenv("SOME_TOKEN_FOR_BACKENDS", "shared")
    env = stdio_environment(ServerEntry(key="one", type="stdio", command="x", env={"OWN": "1"}))
    assert not set(GATEWAY_SECRET_ENV) & env.keys()
    assert env["SOME_TOKEN_FOR_BACKENDS"] == "shared" and env["OWN"] == "1"


def test_a_server_may_still_set_one_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_KEYS", "gateway-key")
    env = stdio_environment(ServerEntry(key="one", type="stdio", command="x", env={"ALLOWED_KEYS": "its-own"}))
    assert env["ALLOWED_KEYS"] == "its-own"


def test_our_bin_directory_is_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    env = stdio_environment(ServerEntry(key="one", type="stdio", command="x"))
    assert env["PATH"].split(os.pathsep) == ["/usr/bin", os.path.dirname(sys.executable)]


def test_nothing_names_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tree's own variables name its runtime and config dirs: a backend must not learn them."""
    monkeypatch.setenv("MCP_SUPERVISOR_INSTANCE", "/tmp/mcp-supervisor-0/abc:42")
    monkeypatch.setenv("MCP_SUPERVISOR_CONFIG_DIR", "/etc/mcp")
    env = stdio_environment(ServerEntry(key="one", type="stdio", command="x"))
    assert not [name for name in env if name.startswith("MCP_SUPERVISOR_")]


def test_the_front_door_is_not_described(monkeypatch: pytest.MonkeyPatch) -> None:
    """PORT and HOST (the CLI sets both for the tree) and the gateway's other settings say where the front door is
    and how it is guarded; a server's own `env` may still set PORT for itself."""
    for name, value in {"PORT": "3663", "HOST": "0.0.0.0", "ENABLE_ADMIN_UI": "true", "OAUTH_ISSUER": "x"}.items():
        monkeypatch.setenv(name, value)
    env = stdio_environment(ServerEntry(key="one", type="stdio", command="x"))
    assert not {"PORT", "HOST", "ENABLE_ADMIN_UI", "OAUTH_ISSUER"} & env.keys()
    assert stdio_environment(ServerEntry(key="one", type="stdio", command="x", env={"PORT": "8080"}))["PORT"] == "8080"
