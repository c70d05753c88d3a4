"""OAuth toward a remote backend: a Streamable HTTP backend of our own that accepts only the local
oidc-provider's JWTs for its audience. Calls through the gateway work, and once the 3-second token has aged the
worker fetches a new one (calls keep working; the authorization server issued at least two tokens)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.helpers import async_wait_until, free_port, mcp_client, port_open, stop_process, wait_until
from tests.oidc import AuthServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BACKEND = ROOT / "tests" / "fixtures" / "oauth_backend.py"
CLIENT = "backend-client"  # tests/fixtures/oidc_provider.mjs: scope backend:call, 3-second tokens
SECRET_ENV = "SECURED_BACKEND_CLIENT_SECRET"


@pytest.fixture
def backend(tmp_path: Path, issuer: AuthServer) -> Iterator[tuple[str, Path]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    seen = tmp_path / "tokens-seen"
    seen.touch()
    with open(tmp_path / "oauth-backend.log", "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(BACKEND),
                "--port",
                str(port),
                "--issuer",
                issuer.issuer,
                "--audience",
                url,
                "--seen",
                str(seen),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open(port), 30, what="the OAuth-protected backend")
        yield url, seen
    finally:
        stop_process(process)


def _entry(url: str, issuer: AuthServer) -> dict[str, Any]:
    return {
        "type": "http",
        "url": url,
        "oauth": {
            "tokenUrl": f"{issuer.issuer}/token",
            "clientId": CLIENT,
            "clientSecretEnv": SECRET_ENV,
            "scopes": ["backend:call"],
            "resource": url,
        },
    }


async def test_client_credentials_token_is_sent_and_refreshed(
    tmp_path: Path, supervisor_factory: Any, issuer: AuthServer, backend: tuple[str, Path]
) -> None:
    url, seen = backend
    config = tmp_path / "config"
    write_config(config, {"secured": _entry(url, issuer)})
    before = issuer.issued(CLIENT)
    sup: RunningSupervisor = supervisor_factory(config, {SECRET_ENV: f"{CLIENT}-secret"})
    sup.wait_linked({"secured"})
    async with mcp_client(sup.url) as client:
        reply = await client.call_tool("secured--echo", {"text": "one"})
        assert reply.is_error is not True and "secured: one" in str(reply.content)

        async def refreshed() -> bool:
            # Keep calling across the token's 3-second life: every call must work, and one of them goes out
            # with a second token the worker fetched before the first expired.
            answer = await client.call_tool("secured--echo", {"text": "again"})
            assert answer.is_error is not True, answer
            return issuer.issued(CLIENT) - before >= 2 and len(seen.read_text().split()) >= 2

        await async_wait_until(refreshed, 20, interval=0.25, what="a refreshed access token")
    # The secret travelled in the worker's spec: no backend saw it (this one is remote; the log shows no secret).
    assert f"{CLIENT}-secret" not in sup.log_path.read_text()


async def test_a_missing_secret_is_a_clear_error(
    tmp_path: Path, supervisor_factory: Any, issuer: AuthServer, backend: tuple[str, Path]
) -> None:
    url, _ = backend
    config = tmp_path / "config"
    write_config(config, {"secured": _entry(url, issuer)})
    sup: RunningSupervisor = supervisor_factory(config, {})
    wait_until(lambda: SECRET_ENV in sup.log_path.read_text(), 30, what="the missing-secret error in the log")
