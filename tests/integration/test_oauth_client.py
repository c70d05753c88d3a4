"""The worker's client-credentials auth (worker/oauth_client.py) against the real local oidc-provider: a 401
from the backend (a token it no longer accepts) gets exactly one refresh and one retry; a wrong secret fails
with a sentence naming the client."""

from __future__ import annotations

import httpx2
import pytest

from mcp_supervisor.config.models import OAuthClient
from mcp_supervisor.errors import BackendError
from mcp_supervisor.worker.oauth_client import ClientCredentials
from tests.oidc import AuthServer

pytestmark = pytest.mark.anyio

CLIENT = "backend-client"


def _config(issuer: AuthServer) -> OAuthClient:
    return OAuthClient(
        tokenUrl=f"{issuer.issuer}/token",
        clientId=CLIENT,
        clientSecretEnv="UNUSED",
        scopes=("backend:call",),
        resource="http://backend.invalid/mcp",
    )


async def test_a_401_refreshes_once_and_retries(issuer: AuthServer) -> None:
    auth = ClientCredentials(_config(issuer), f"{CLIENT}-secret")
    await auth.prime()
    refused: set[str] = set()
    seen: list[str] = []

    def backend(request: httpx2.Request) -> httpx2.Response:
        # Stands in for the remote backend only: it refuses the first token it sees (as if revoked).
        token = request.headers["authorization"]
        seen.append(token)
        if not refused:
            refused.add(token)
        return httpx2.Response(401 if token in refused else 200)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(backend), auth=auth) as client:
        assert (await client.post("http://backend.invalid/mcp")).status_code == 200
        assert len(seen) == 2 and seen[0] != seen[1] and auth.fetches == 2
        assert (await client.post("http://backend.invalid/mcp")).status_code == 200
        assert len(seen) == 3 and auth.fetches == 2  # the fresh token is reused, not fetched per request


async def test_a_still_refused_token_is_retried_only_once(issuer: AuthServer) -> None:
    auth = ClientCredentials(_config(issuer), f"{CLIENT}-secret")
    calls: list[int] = []

    def backend(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(401)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(backend), auth=auth) as client:
        assert (await client.post("http://backend.invalid/mcp")).status_code == 401
    assert len(calls) == 2 and auth.fetches == 2


async def test_a_wrong_secret_is_a_sentence(issuer: AuthServer) -> None:
    with pytest.raises(BackendError, match="refused client 'backend-client'"):
        await ClientCredentials(_config(issuer), "wrong").prime()
