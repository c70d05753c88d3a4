"""What a refused client is told (issue 23): every 401 names, in its JSON body and in `WWW-Authenticate`, the
credentials this gateway takes, and a gateway without OAuth advertises no OAuth metadata, so that a client such
as the MCP Inspector is not sent into an OAuth flow against a key-only gateway. (With OAuth configured, the
challenge and the metadata are checked in test_oauth.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSupervisor, write_config
from tests.helpers import INITIALIZE, POST_HEADERS

pytestmark = pytest.mark.e2e


def _gateway(tmp_path: Path, supervisor_factory: Any, env: dict[str, str]) -> RunningSupervisor:
    write_config(tmp_path / "config", {})
    sup: RunningSupervisor = supervisor_factory(tmp_path / "config", env)
    return sup


def _refusals(sup: RunningSupervisor) -> list[httpx2.Response]:
    """A refused request on each client route: /mcp POST and GET, /sse, and the legacy POST endpoint."""
    return [
        httpx2.post(sup.url, json=INITIALIZE, headers=POST_HEADERS, timeout=10),
        httpx2.post(sup.url, json=INITIALIZE, headers={**POST_HEADERS, "X-Api-Key": "wrong"}, timeout=10),
        httpx2.get(sup.url, headers={"Accept": "text/event-stream"}, timeout=10),
        httpx2.get(f"{sup.base}/sse", headers={"Accept": "text/event-stream"}, timeout=10),
        httpx2.post(f"{sup.base}/message?sessionId=x", json=INITIALIZE, timeout=10),
    ]


def _no_oauth_advertised(sup: RunningSupervisor, reply: httpx2.Response) -> None:
    assert "resource_metadata" not in reply.headers["www-authenticate"], reply.headers
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        assert httpx2.get(sup.base + path, timeout=5).status_code == 404, path


def test_a_key_only_gateway_says_to_send_x_api_key(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = _gateway(tmp_path, supervisor_factory, {"ALLOWED_KEYS": "the-key"})
    for reply in _refusals(sup):
        assert reply.status_code == 401, (reply.request.url, reply.text)
        assert reply.headers["content-type"].startswith("application/json"), reply.headers
        sentence = reply.json()["error_description"]
        assert "X-Api-Key: <key>" in sentence and "?key=" in sentence, sentence
        assert "Bearer" not in sentence and "OAuth" not in sentence, sentence  # neither is taken here
        challenge = reply.headers["www-authenticate"]
        assert challenge == 'ApiKey realm="mcp-supervisor", header="X-Api-Key", query="key"', challenge
        _no_oauth_advertised(sup, reply)
    ok = httpx2.post(sup.url, json=INITIALIZE, headers={**POST_HEADERS, "X-Api-Key": "the-key"}, timeout=10)
    assert ok.status_code == 200, ok.text


def test_keys_and_tokens_are_both_named(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = _gateway(tmp_path, supervisor_factory, {"ALLOWED_KEYS": "k", "ALLOWED_TOKENS": "t"})
    reply = httpx2.post(sup.url, json=INITIALIZE, headers=POST_HEADERS, timeout=10)
    assert reply.status_code == 401
    sentence = reply.json()["error_description"]
    assert "Authorization: Bearer <token>" in sentence and "X-Api-Key: <key>" in sentence, sentence
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="mcp-supervisor"') and 'ApiKey realm="mcp-supervisor"' in challenge
    _no_oauth_advertised(sup, reply)
