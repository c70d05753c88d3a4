"""Client authentication exactly as mcp-proxy-server: on only when ALLOWED_TOKENS or ALLOWED_KEYS is set.

`Authorization: Bearer <token>` is tried first against ALLOWED_TOKENS; then `X-Api-Key` (wins) or `?key=`
against ALLOWED_KEYS. Comparisons are constant-time and always scan the whole list.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.settings import Settings

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """Who a request acts as. `principal` names the credential (never the secret) and binds sessions to it;
    the rest is what per-client access (clients.json) and the audit trail match on."""

    principal: str
    # "anonymous", "key", "token" (static credentials), "oauth" or "stdio" (the stdio front end's client).
    kind: str = "anonymous"
    # The static credential's position in ALLOWED_KEYS / ALLOWED_TOKENS.
    index: int = -1
    # An OAuth access token's verified claims.
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return str(self.claims.get("sub") or self.claims.get("client_id") or "") if self.kind == "oauth" else ""


ANONYMOUS_IDENTITY = Identity(ANONYMOUS)
# The client of `mcp-supervisor stdio`: the process that started the tree on its own stdin/stdout. It presents
# no credential; clients.json matches it with `"match": {"stdio": true}`.
STDIO_IDENTITY = Identity("stdio", "stdio")


def _match(candidate: str, allowed: Sequence[str]) -> int | None:
    found: int | None = None
    encoded = candidate.encode()
    for index, secret in enumerate(allowed):
        if hmac.compare_digest(encoded, secret.encode()) and found is None:
            found = index
    return found


def authenticate(settings: Settings, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    identity = authenticate_static(settings, headers, query)
    return identity.principal if identity is not None else None


def authenticate_static(settings: Settings, headers: Mapping[str, str], query: Mapping[str, str]) -> Identity | None:
    """The principal the request acts as, or None when credentials are required and none is valid.

    A principal names the credential (not the secret), so a session can be bound to the credential that
    opened it.
    """
    if not settings.auth_enabled:
        return ANONYMOUS_IDENTITY
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if settings.allowed_tokens and scheme.lower() == "bearer" and token.strip():
        index = _match(token.strip(), settings.allowed_tokens)
        if index is not None:
            return Identity(f"token#{index}", "token", index)
    if settings.allowed_keys:
        key = headers.get("x-api-key") or query.get("key")
        if key:
            index = _match(key, settings.allowed_keys)
            if index is not None:
                return Identity(f"key#{index}", "key", index)
    return None


REALM = "mcp-supervisor"


def accepted_credentials(settings: Settings, oauth_metadata_url: str = "") -> str:
    """Which credentials this gateway takes, as the sentence every 401 carries: a client (or the person running
    it) learns what to send, instead of guessing from a bare "Unauthorized" or starting an OAuth flow."""
    ways = []
    if settings.allowed_tokens:
        ways.append("a static bearer token (Authorization: Bearer <token>)")
    if settings.allowed_keys:
        ways.append("an API key (the X-Api-Key: <key> header, or ?key=<key>)")
    if oauth_metadata_url:
        ways.append(f"an OAuth access token (Authorization: Bearer <token>; how to get one: {oauth_metadata_url})")
    return "This gateway takes " + " or ".join(ways) + "." if ways else "This gateway takes no credentials."


def static_challenges(settings: Settings) -> list[str]:
    """The `WWW-Authenticate` challenges of the static credentials (RFC 9110 §11.6.1): Bearer for ALLOWED_TOKENS,
    and for ALLOWED_KEYS an `ApiKey` challenge that names its header and query parameter. Neither carries
    `resource_metadata`: OAuth is advertised only where it is configured."""
    challenges = []
    if settings.allowed_tokens:
        challenges.append(f'Bearer realm="{REALM}"')
    if settings.allowed_keys:
        challenges.append(f'ApiKey realm="{REALM}", header="X-Api-Key", query="key"')
    return challenges
