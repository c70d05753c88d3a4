"""OAuth toward a remote backend: the client-credentials grant, as an httpx Auth on the SDK's transports.

The token is fetched on first use and again once 80 % of its lifetime has passed, so a request never leaves with
a token about to expire; a 401 from the backend anyway (revoked, the clock off, keys rotated) gets one refresh
and one retry of that request. The client secret arrives in the worker's spec (an inherited memfd), never in
argv or the environment of a backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator

import httpx2 as httpx

from mcp_supervisor.config.models import OAuthClient
from mcp_supervisor.errors import BackendError

log = logging.getLogger("mcp_supervisor.worker")

# Refresh when this share of the token's lifetime has passed: early enough for a request in flight to land.
REFRESH_AT = 0.8
# A token endpoint that omits expires_in: assume a short life rather than using a token until it fails.
DEFAULT_LIFETIME_S = 300.0


class ClientCredentials(httpx.Auth):
    def __init__(self, config: OAuthClient, secret: str, timeout: float = 30.0) -> None:
        self._config = config
        self._secret = secret
        self._timeout = timeout
        self._token = ""
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()  # concurrent requests wait for one token request, not one each
        self.fetches = 0

    async def prime(self) -> None:
        await self._current()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            log.info("The backend answered 401: fetching a new access token and retrying once.")
            token = await self._current(stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def _current(self, stale: str = "") -> str:
        async with self._lock:
            # `stale`: the token the backend refused; another request may have replaced it meanwhile.
            if not self._token or self._token == stale or time.monotonic() >= self._refresh_at:
                await self._fetch()
            return self._token

    async def _fetch(self) -> None:
        config = self._config
        data = {"grant_type": "client_credentials"}
        if config.scopes:
            data["scope"] = " ".join(config.scopes)
        if config.resource:
            data["resource"] = config.resource  # RFC 8707: a token for this backend only
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                # client_secret_basic (RFC 6749 §2.3.1), the method every authorization server supports.
                reply = await client.post(config.tokenUrl, data=data, auth=(config.clientId, self._secret))
        except httpx.HTTPError as exc:
            raise BackendError(f"The token endpoint {config.tokenUrl} cannot be reached: {exc}.") from None
        if reply.status_code != 200:
            raise BackendError(
                f"The token endpoint {config.tokenUrl} refused client {config.clientId!r}: "
                f"HTTP {reply.status_code} {reply.text[:200]}."
            )
        try:
            body = reply.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_S)
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"The token endpoint {config.tokenUrl} sent no access_token.") from None
        if not isinstance(token, str) or not token:
            raise BackendError(f"The token endpoint {config.tokenUrl} sent an empty access_token.")
        self._token = token
        self._refresh_at = time.monotonic() + lifetime * REFRESH_AT
        self.fetches += 1
        log.info("Fetched an access token for %s (expires in %g s).", config.clientId, lifetime)
