"""The per-server "oauth" object of mcp_server.json: parsed, validated with one-sentence errors."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_supervisor.config.loader import parse_server_entry
from mcp_supervisor.config.models import OAuthClient, ServerEntry, oauth_secret_names
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.supervisor.backend_launch import stdio_environment

GOOD = {"tokenUrl": "https://idp.example/token", "clientId": "gw", "clientSecretEnv": "DOCS_SECRET"}


def _entry(oauth: Any, **extra: Any) -> ServerEntry:
    return parse_server_entry("docs", {"type": "http", "url": "https://docs.example/mcp", "oauth": oauth, **extra}, "f")


def test_parsed() -> None:
    entry = _entry({**GOOD, "scopes": "a b", "resource": "https://docs.example/mcp"})
    assert entry.oauth == OAuthClient(
        tokenUrl="https://idp.example/token",
        clientId="gw",
        clientSecretEnv="DOCS_SECRET",
        scopes=("a", "b"),
        resource="https://docs.example/mcp",
    )
    assert "oauth" not in entry.extra


@pytest.mark.parametrize(
    ("oauth", "message"),
    [
        ("x", '"oauth" must be an object'),
        ({**GOOD, "clientSecret": "s"}, '"oauth.clientSecret" is not an OAuth setting'),
        ({k: v for k, v in GOOD.items() if k != "clientId"}, '"oauth.clientId" is required'),
        ({**GOOD, "tokenUrl": "ftp://x"}, '"oauth.tokenUrl" must start with http'),
        ({**GOOD, "clientSecretEnv": "the secret itself"}, '"oauth.clientSecretEnv" must name an environment'),
        ({**GOOD, "scopes": [1]}, '"oauth.scopes" must be'),
        ({**GOOD, "resource": "docs"}, '"oauth.resource" must be an http'),
    ],
)
def test_invalid(oauth: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _entry(oauth)


def test_not_for_stdio() -> None:
    with pytest.raises(ConfigError, match="sse and http servers only"):
        parse_server_entry("t", {"command": "x", "oauth": GOOD}, "f")


def test_local_backends_never_inherit_the_secret() -> None:
    local = parse_server_entry("t", {"command": "x"}, "f")
    withheld = oauth_secret_names({"docs": _entry(GOOD), "t": local})
    env = stdio_environment(local, {"DOCS_SECRET": "s", "PATH": "/bin"}, withheld)
    assert "DOCS_SECRET" not in env and env["PATH"].startswith("/bin")
