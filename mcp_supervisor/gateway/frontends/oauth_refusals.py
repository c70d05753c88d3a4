"""What the gateway's edge needs of OAuth apart from verifying tokens: why a token was refused, the
`WWW-Authenticate` challenge, and where the protected resource's metadata lives (RFC 9728).

Apart from `oauth.py`, the verifier, so that a gateway without OAuth never imports what verification needs
(joserfc, which loads cryptography's Rust extension, and httpx2): 6 MB of private memory and ~50 ms of start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcp_supervisor.errors import SupervisorError

if TYPE_CHECKING:
    from mcp_supervisor.gateway.frontends.oauth import OAuthVerifier


class TokenRejected(SupervisorError):
    """The token is not valid here (401 invalid_token); the message says why, for the log and the header."""


class InsufficientScope(SupervisorError):
    """The token is valid but lacks a required scope (403 insufficient_scope)."""


def protected_resource_metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known segment goes between the host and the resource's path."""
    path = urlsplit(resource).path.rstrip("/")
    return "/.well-known/oauth-protected-resource" + path


def challenge(verifier: OAuthVerifier, metadata_url: str, error: str = "", description: str = "") -> str:
    """The `WWW-Authenticate` value of a 401 or 403 (RFC 6750 §3, RFC 9728 §5.1)."""
    parts = [f'resource_metadata="{metadata_url}"']
    if verifier.required_scopes:
        parts.append(f'scope="{" ".join(verifier.required_scopes)}"')
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append('error_description="{}"'.format(description.replace('"', "'").replace("\\", "/")))
    return "Bearer " + ", ".join(parts)
