"""The gateway as an OAuth 2.1 resource server (MCP authorization, RFC 9728 / 8414 / 8707 / 7662).

Access tokens are checked once per HTTP request at the edge, never per message downstream: a verified token
is cached until it expires (at most `CACHE_TTL_S`), so the per-request cost of a known token is a dict
lookup. JWTs are verified against the issuer's JWKS, discovered from its RFC 8414 (or OIDC) metadata and
cached; a `kid` the cache does not know triggers one refetch (rate-limited: a stream of forged kids must not
become a stream of fetches). Opaque tokens go to RFC 7662 introspection when it is configured.

The token itself never leaves this module: backends never see a client's credential.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2 as httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.oauth_refusals import InsufficientScope, TokenRejected

if TYPE_CHECKING:  # the SDK costs the gateway 0.5 s of start-up and 21 MB; imported when a token is first verified
    from mcp.server.auth.provider import AccessToken

log = logging.getLogger("mcp_supervisor.gateway.frontends.oauth")

# Asymmetric algorithms only: an HMAC "JWT" would be verified with a public key as its secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CACHE_TTL_S = 300.0
CACHE_MAX = 10_000
# At most one JWKS refetch per issuer this often, for unknown kids (a rotation is picked up within it).
REFETCH_INTERVAL_S = 2.0
FETCH_TIMEOUT_S = 10.0


def _metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 §3.1 (path-inserted), then OIDC Discovery (path-appended): Keycloak, Entra ID, Auth0 and Okta
    answer at least one of them."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


@dataclass
class _Issuer:
    url: str
    jwks_uri: str = ""
    keys: KeySet | None = None
    fetched_at: float = 0.0


@dataclass
class OAuthVerifier:
    """Implements the SDK's `TokenVerifier` protocol (`verify_token`), plus the scope check."""

    issuers: tuple[str, ...]
    resource: str
    required_scopes: tuple[str, ...] = ()
    introspection_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    leeway_s: int = 10
    _issuers: dict[str, _Issuer] = field(default_factory=dict)
    _cache: OrderedDict[str, tuple[AccessToken, float]] = field(default_factory=OrderedDict)
    _http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthVerifier:
        return cls(
            issuers=settings.oauth_issuers,
            resource=settings.oauth_resource,
            required_scopes=settings.oauth_required_scopes,
            introspection_url=settings.oauth_introspection_url,
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            leeway_s=settings.oauth_clock_skew_s,
        )

    def __post_init__(self) -> None:
        self._issuers = {url: _Issuer(url) for url in self.issuers}

    def metadata(self) -> dict[str, Any]:
        """RFC 9728 protected-resource metadata, built with the SDK's model (so its field rules apply)."""
        from mcp.shared.auth import ProtectedResourceMetadata

        document = ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource,
                "authorization_servers": list(self.issuers),
                "scopes_supported": list(self.required_scopes) or None,
                "bearer_methods_supported": ["header"],
                "resource_name": "mcp-supervisor",
            }
        )
        dumped: dict[str, Any] = document.model_dump(mode="json", exclude_none=True)
        dumped["resource"] = self.resource  # exactly as configured (pydantic may add a trailing slash)
        return dumped

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        return self._http

    # ------------------------------------------------------------------ verification

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's TokenVerifier protocol: None for any token that is not valid here."""
        try:
            return await self.verify(token)
        except (TokenRejected, InsufficientScope):
            return None

    async def verify(self, token: str) -> AccessToken:
        """The verified token, or TokenRejected / InsufficientScope."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached[1] > now:
                self._check_scopes(cached[0])
                return cached[0]
            del self._cache[digest]
        if token.count(".") == 2:
            access = await self._verify_jwt(token)
        elif self.introspection_url:
            access = await self._introspect(token)
        else:
            raise TokenRejected("The access token is not a JWT and no introspection endpoint is configured.")
        until = min(now + CACHE_TTL_S, float(access.expires_at)) if access.expires_at else now + CACHE_TTL_S
        self._cache[digest] = (access, until)
        if len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)
        self._check_scopes(access)
        return access

    def _check_scopes(self, access: AccessToken) -> None:
        missing = [scope for scope in self.required_scopes if scope not in access.scopes]
        if missing:
            raise InsufficientScope(f"The access token lacks the scope(s) {' '.join(missing)}.")

    async def _verify_jwt(self, token: str) -> AccessToken:
        try:
            header = json.loads(_b64decode(token.split(".")[0]))
            unverified = json.loads(_b64decode(token.split(".")[1]))
        except ValueError:
            raise TokenRejected("The access token is not a well-formed JWT.") from None
        if not isinstance(header, dict) or not isinstance(unverified, dict):
            raise TokenRejected("The access token is not a well-formed JWT.")
        issuer = self._issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise TokenRejected(f"The access token's issuer {unverified.get('iss')!r} is not trusted here.")
        keys = await self._keys(issuer, header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise TokenRejected(f"The access token's signature does not verify ({exc}).") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway_s,
            iss={"essential": True, "value": issuer.url},
            aud={"essential": True, "value": self.resource},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenRejected(f"The access token was refused: {exc}.") from None
        return _access_token(token, claims)

    async def _keys(self, issuer: _Issuer, kid: object) -> KeySet:
        now = time.monotonic()
        if issuer.keys is None or (
            isinstance(kid, str) and not _has_kid(issuer.keys, kid) and now - issuer.fetched_at >= REFETCH_INTERVAL_S
        ):
            await self._fetch_keys(issuer)
        assert issuer.keys is not None
        return issuer.keys

    async def _fetch_keys(self, issuer: _Issuer) -> None:
        client = self._client()
        issuer.fetched_at = time.monotonic()
        try:
            if not issuer.jwks_uri:
                issuer.jwks_uri = await self._discover_jwks_uri(client, issuer.url)
            response = await client.get(issuer.jwks_uri)
            response.raise_for_status()
            issuer.keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            log.warning("Could not fetch the signing keys of issuer %s: %s", issuer.url, exc)
            if issuer.keys is None:
                raise TokenRejected(f"The signing keys of issuer {issuer.url} are unavailable.") from None
        else:
            log.info("Fetched %d signing key(s) of issuer %s.", len(issuer.keys.keys), issuer.url)

    async def _discover_jwks_uri(self, client: httpx.AsyncClient, issuer: str) -> str:
        for url in _metadata_urls(issuer):
            response = await client.get(url)
            if response.status_code != 200:
                continue
            document = response.json()
            # RFC 8414 §3.3: the metadata's issuer must be the one we asked about (mix-up defence).
            if isinstance(document, dict) and document.get("issuer") == issuer and document.get("jwks_uri"):
                return str(document["jwks_uri"])
        raise ValueError(f"no RFC 8414 or OIDC metadata with a jwks_uri for {issuer}")

    async def _introspect(self, token: str) -> AccessToken:
        """RFC 7662, authenticated as OAUTH_CLIENT_ID (client_secret_basic)."""
        try:
            response = await self._client().post(
                self.introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.client_id, self.client_secret),
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("Token introspection at %s failed: %s", self.introspection_url, exc)
            raise TokenRejected("The access token could not be introspected.") from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise TokenRejected("The access token is not active.")
        now = time.time()
        if isinstance(claims.get("exp"), (int, float)) and claims["exp"] + self.leeway_s < now:
            raise TokenRejected("The access token has expired.")
        if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] - self.leeway_s > now:
            raise TokenRejected("The access token is not valid yet.")
        if "iss" in claims and claims["iss"] not in self._issuers:
            raise TokenRejected(f"The access token's issuer {claims['iss']!r} is not trusted here.")
        audience = claims.get("aud")
        if audience is not None and self.resource not in (audience if isinstance(audience, list) else [audience]):
            raise TokenRejected("The access token was issued for another resource (aud).")
        return _access_token(token, claims)


def _access_token(token: str, claims: Mapping[str, Any]) -> AccessToken:
    from mcp.server.auth.provider import AccessToken

    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else [str(s) for s in claims.get("scp") or []]
    audience = claims.get("aud")
    exp = claims.get("exp")
    return AccessToken(
        token=token,
        client_id=str(claims.get("client_id") or claims.get("azp") or ""),
        scopes=scopes,
        expires_at=int(exp) if isinstance(exp, (int, float)) else None,
        resource=str(audience[0] if isinstance(audience, list) and audience else audience or "") or None,
        subject=str(claims["sub"]) if claims.get("sub") is not None else None,
        claims=dict(claims),
    )


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _b64decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
