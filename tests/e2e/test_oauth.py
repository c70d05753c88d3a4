"""The gateway as an OAuth 2.1 resource server, against a real authorization server (oidc-provider).

Nothing is mocked: tokens come from oidc-provider's token endpoint, the gateway discovers its JWKS from its
metadata, and every refusal is the gateway's own verification at work.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import INITIALIZE, POST_HEADERS, free_port, mcp_client, wait_until
from tests.oidc import AuthServer, auth_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

STATIC_KEY = "static-key-beside-oauth"


@pytest.fixture(scope="module")
def other_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A second, untrusted authorization server: its tokens are well-formed and signed, for another issuer."""
    server = auth_server(tmp_path_factory.mktemp("oidc-other"))
    yield server
    server.stop()


@pytest.fixture
def gateway(tmp_path: Path, supervisor_factory: Any, issuer: AuthServer) -> RunningSupervisor:
    port = free_port()
    write_config(tmp_path / "config", {"echo": stdio_fixture_entry("echo")})
    sup: RunningSupervisor = supervisor_factory(
        tmp_path / "config",
        {
            "OAUTH_ISSUER": issuer.issuer,
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp",
            "OAUTH_REQUIRED_SCOPES": "mcp:tools",
            "OAUTH_INTROSPECTION_URL": f"{issuer.issuer}/token/introspection",
            "OAUTH_CLIENT_ID": "introspector",
            "OAUTH_CLIENT_SECRET": "introspector-secret",
            "OAUTH_CLOCK_SKEW_SECONDS": "0",
            "ALLOWED_KEYS": STATIC_KEY,
        },
        port,
    )
    sup.wait_linked({"echo"})
    return sup


def _resource(sup: RunningSupervisor) -> str:
    return f"{sup.base}/mcp"


def _initialize(sup: RunningSupervisor, token: str | None) -> httpx2.Response:
    headers = {**POST_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx2.post(sup.url, json=INITIALIZE, headers=headers, timeout=10)


def _challenge(reply: httpx2.Response) -> str:
    return reply.headers.get("www-authenticate", "")


def test_metadata_names_the_authorization_server(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        reply = httpx2.get(gateway.base + path, timeout=5)
        assert reply.status_code == 200, path
        document = reply.json()
        assert document["resource"] == _resource(gateway)
        assert document["authorization_servers"] == [issuer.issuer]
        assert document["scopes_supported"] == ["mcp:tools"]


def test_no_token_gets_a_challenge_naming_the_metadata(gateway: RunningSupervisor) -> None:
    reply = _initialize(gateway, None)
    assert reply.status_code == 401
    header = _challenge(reply)
    assert header.startswith("Bearer ")
    assert f'resource_metadata="{gateway.base}/.well-known/oauth-protected-resource/mcp"' in header
    assert 'scope="mcp:tools"' in header
    assert "error=" not in header  # no token is not an invalid token (RFC 6750 §3.1)
    # Issue 23: the challenge and the body also name the static key this gateway takes beside OAuth.
    assert 'ApiKey realm="mcp-supervisor", header="X-Api-Key"' in header, header
    sentence = reply.json()["error_description"]
    assert "an OAuth access token" in sentence and "oauth-protected-resource/mcp" in sentence, sentence
    assert "X-Api-Key: <key>" in sentence, sentence


async def test_a_valid_token_opens_mcp_and_sse(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("gateway-client", _resource(gateway))
    assert _initialize(gateway, token).status_code == 200
    headers = {"Authorization": f"Bearer {token}"}
    async with mcp_client(gateway.url, headers) as session:
        assert "echo--echo" in {tool.name for tool in (await session.list_tools()).tools}
    async with (
        sse_client(f"{gateway.base}/sse", headers=headers) as (read, write),
        ClientSession(read, write) as legacy,
    ):
        await legacy.initialize()
        assert "echo--echo" in {tool.name for tool in (await legacy.list_tools()).tools}


def test_static_keys_keep_working_beside_oauth(gateway: RunningSupervisor) -> None:
    reply = httpx2.post(gateway.url, json=INITIALIZE, headers={**POST_HEADERS, "X-Api-Key": STATIC_KEY}, timeout=10)
    assert reply.status_code == 200


def test_an_expired_token_is_refused(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("short-lived", _resource(gateway))  # lives 1 s; the gateway allows no clock skew here
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"]
    wait_until(lambda: __import__("time").time() > exp + 1, 5, what="the token to expire")
    reply = _initialize(gateway, token)
    assert reply.status_code == 401
    assert 'error="invalid_token"' in _challenge(reply)
    assert "expired" in reply.text


def test_a_token_for_another_resource_is_refused(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("gateway-client", "http://127.0.0.1:9/some-other-api")
    reply = _initialize(gateway, token)
    assert reply.status_code == 401
    assert 'error="invalid_token"' in _challenge(reply)
    assert "aud" in reply.text


def test_a_token_of_another_issuer_is_refused(gateway: RunningSupervisor, other_issuer: AuthServer) -> None:
    token = other_issuer.token("gateway-client", _resource(gateway))
    reply = _initialize(gateway, token)
    assert reply.status_code == 401
    assert 'error="invalid_token"' in _challenge(reply)
    assert "issuer" in reply.text


def test_a_bad_signature_is_refused(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    header, payload, signature = issuer.token("gateway-client", _resource(gateway)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "==="))
    claims["scope"] = "mcp:tools profile:admin"  # a forged claim under the original signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    reply = _initialize(gateway, f"{header}.{forged}.{signature}")
    assert reply.status_code == 401
    assert 'error="invalid_token"' in _challenge(reply)
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    assert _initialize(gateway, f"{header}.{payload}.{flipped}").status_code == 401


def test_a_missing_scope_is_forbidden(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("no-scope", _resource(gateway), scope="other")
    reply = _initialize(gateway, token)
    assert reply.status_code == 403
    header = _challenge(reply)
    assert 'error="insufficient_scope"' in header
    assert 'scope="mcp:tools"' in header


def test_an_opaque_token_is_introspected(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    token = issuer.token("opaque", _resource(gateway))
    assert token.count(".") != 2  # really opaque
    assert _initialize(gateway, token).status_code == 200
    assert _initialize(gateway, token + "x").status_code == 401


def test_key_rotation_is_picked_up(gateway: RunningSupervisor, issuer: AuthServer) -> None:
    old = issuer.token("gateway-client", _resource(gateway))
    assert _initialize(gateway, old).status_code == 200  # the gateway now holds key-1 only
    issuer.restart(("key-2", "key-1"))
    try:
        new = issuer.token("gateway-client", _resource(gateway))
        assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "==="))["kid"] == "key-2"
        # An unknown kid makes the gateway refetch the JWKS (at most once per couple of seconds per issuer).
        wait_until(lambda: _initialize(gateway, new).status_code == 200, 10, interval=0.5, what="the new key")
        assert _initialize(gateway, old).status_code == 200  # the old key is still published
    finally:
        issuer.restart(("key-1",))
