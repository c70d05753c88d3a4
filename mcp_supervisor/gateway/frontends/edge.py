"""Checks shared by every client-facing HTTP route: DNS-rebinding guard, authentication, body size."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.auth import Identity, accepted_credentials, authenticate_static, static_challenges
from mcp_supervisor.gateway.frontends.dns_rebinding import RequestGuard
from mcp_supervisor.gateway.frontends.oauth_refusals import (
    InsufficientScope,
    TokenRejected,
    challenge,
    protected_resource_metadata_path,
)
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.protocol import error_codes

if TYPE_CHECKING:
    from mcp_supervisor.gateway.frontends.oauth import OAuthVerifier

log = logging.getLogger("mcp_supervisor.gateway.frontends.auth")
_NO_QUERY = QueryParams("")


class EdgeChecks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = RequestGuard(settings)
        self.oauth: OAuthVerifier | None = None
        if settings.oauth_enabled:
            from mcp_supervisor.gateway.frontends.oauth import OAuthVerifier  # its libraries only where OAuth is on

            self.oauth = OAuthVerifier.from_settings(settings)
        self.metadata_url = ""
        if self.oauth is not None:
            parts = urlsplit(settings.oauth_resource)
            self.metadata_url = f"{parts.scheme}://{parts.netloc}" + protected_resource_metadata_path(
                settings.oauth_resource
            )
        # Every 401 names the credentials this gateway takes, in its body and in its challenges.
        self.accepted = accepted_credentials(settings, self.metadata_url)
        self.static_challenges = static_challenges(settings)

    async def admit(self, request: Request) -> Identity | Response:
        """The authenticated identity, or the response that refuses the request."""
        # Most requests have no query string: not parsed into a new QueryParams on every call (~3 % of the
        # gateway's CPU per call, py-spy).
        query = request.query_params if request.scope.get("query_string") else _NO_QUERY
        return await self.admit_raw(request.headers, query)

    async def admit_raw(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Identity | Response:
        """`admit` for raw ASGI handlers, which have no Request object."""
        refusal = self.guard.check(headers)
        if refusal is not None:
            status, reason = refusal
            return PlainTextResponse(reason, status_code=status)
        return await self.identify(headers, query)

    async def identify(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Identity | Response:
        """`admit_raw` past the Host/Origin guard: the credential alone (anonymous when client auth is off)."""
        identity = authenticate_static(self.settings, headers, query)
        if identity is not None:
            return identity
        if self.oauth is None:
            return self._refusal(401, "unauthorized", "Unauthorized: no valid credential.", self.static_challenges)
        return await self._admit_oauth(self.oauth, headers.get("authorization", ""))

    async def _admit_oauth(self, oauth: OAuthVerifier, authorization: str) -> Identity | Response:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._refuse(oauth, 401, "unauthorized", "Unauthorized: no valid credential.")
        try:
            access = await oauth.verify(token)
        except TokenRejected as exc:
            log.info("Refused an access token: %s", exc)
            return self._refuse(
                oauth, 401, "invalid_token", f"Unauthorized: the access token was refused: {exc}", str(exc)
            )
        except InsufficientScope as exc:
            return self._refuse(oauth, 403, "insufficient_scope", f"Forbidden: {exc}", str(exc))
        claims = access.claims or {}
        # The issuer is part of the principal: `sub` is unique only per issuer.
        subject = access.subject or access.client_id
        return Identity(f"oauth:{claims.get('iss', '')}#{subject}", "oauth", claims=claims)

    def _refuse(self, oauth: OAuthVerifier, status: int, error: str, text: str, description: str = "") -> Response:
        """An OAuth refusal: the Bearer challenge with resource_metadata (RFC 9728), then the static ones. No token
        at all is not an invalid token (RFC 6750 §3.1): then no `error` in the challenge."""
        bearer = challenge(oauth, self.metadata_url, "" if error == "unauthorized" else error, description)
        others = [c for c in self.static_challenges if not c.startswith("Bearer ")]
        return self._refusal(status, error, text, [bearer, *others])

    def _refusal(self, status: int, error: str, text: str, challenges: list[str]) -> Response:
        """A JSON body whose sentence says what was wrong and which credentials this gateway takes (the MCP
        clients show a refused request's body), and every challenge in one `WWW-Authenticate` (RFC 9110)."""
        body = {"error": error, "error_description": f"{text} {self.accepted}"}
        return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": ", ".join(challenges)})


def is_json(request: Request) -> bool:
    return is_json_type(request.headers.get("content-type", ""))


def is_json_type(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def _too_large(limit: int) -> Response:
    return Response(
        jsonrpc.error_bytes(None, error_codes.INVALID_REQUEST, f"Request body larger than {limit} bytes."),
        status_code=413,
        media_type="application/json",
    )


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 JSON-RPC error once it passes `limit` bytes (checked while streaming)."""
    return await read_body_raw(request.receive, request.headers.get("content-length"), limit)


async def read_body_raw(receive: Receive, declared: str | None, limit: int) -> bytes | Response:
    """`read_body` for raw ASGI handlers, which have no Request object. A client that disconnected before
    its body was read gets a 400 (nobody will read it)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return PlainTextResponse("The client disconnected.", status_code=400)  # http.disconnect
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if not more and not chunks:
            return chunk if len(chunk) <= limit else _too_large(limit)  # the usual case: one message
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)
