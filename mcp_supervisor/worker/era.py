"""Which protocol era a worker speaks to its backend, decided once per connection.

The spec's backward-compatibility rule (2026-07-28, basic/versioning and the stdio and Streamable HTTP
bindings): probe with `server/discover` carrying the modern `_meta` envelope; a `DiscoverResult` naming a
version we speak, or -32022 (UnsupportedProtocolVersion) naming one, means modern; anything else (another
error: -32601, -32602, …; an HTTP 4xx without a modern error body, which the SDK's transport turns into a
JSON-RPC error; no answer within PROBE_TIMEOUT_S) means legacy, and the `initialize` handshake follows. A
handshake answered with -32022 naming a modern version is modern evidence too (a modern server slower than the
probe's timeout locked the connection to the modern era when it read the probe): one more probe settles it.

`"protocol"` in the server entry pins an era and skips the probe: `"legacy"` goes straight to `initialize`,
`"2026-07-28"` requires the discover to succeed. SSE backends are handshake-era by definition.

The decision (`judge`) is pure; `negotiate` drives it over the relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_supervisor import __version__
from mcp_supervisor.errors import BackendError
from mcp_supervisor.protocol.error_codes import UNSUPPORTED_PROTOCOL_VERSION
from mcp_supervisor.protocol.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS, Era
from mcp_supervisor.worker.envelope import SERVER_INFO, envelope

if TYPE_CHECKING:
    from mcp_supervisor.worker.relay import BackendRelay

# A legacy backend answers the probe at once (tiny_server, the Node and Python SDKs: -32601); the timeout
# only costs start-up time for a legacy backend that ignores unknown requests before `initialize`.
PROBE_TIMEOUT_S = 5.0
# How long the worker waits for a modern backend to acknowledge a subscriptions/listen stream (at start-up and
# when the subscribed URIs change; a resources/subscribe is answered within it).
LISTEN_TIMEOUT_S = 10.0

LEGACY = Era.LEGACY
MODERN = Era.MODERN
# Not an era: the verdict "probe again, at the version the server named".
RETRY = "retry"

# What the gateway can relay to its clients, declared in the handshake (a modern backend gets the client's own
# capabilities per request instead).
HANDSHAKE_CAPABILITIES: dict[str, Any] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}


@dataclass(frozen=True)
class Negotiated:
    era: str  # LEGACY or MODERN
    protocol_version: str
    # The InitializeResult, or its equivalent built from the DiscoverResult (what WorkerReady carries).
    initialize_result: dict[str, Any]


def judge(result: Any, error: Any) -> tuple[str, str]:
    """The era a `server/discover` reply shows: (MODERN, version), (RETRY, version) to probe again at a version
    the server named, or (LEGACY, ""). `result` and `error` are the decoded reply's parts (both None: no answer).

    Raises BackendError for a server that speaks only modern versions none of which we speak (falling back to
    the handshake could only fail less clearly)."""
    if isinstance(error, dict):
        if error.get("code") != UNSUPPORTED_PROTOCOL_VERSION:
            return LEGACY, ""
        supported = _supported(error)
        mutual = [version for version in MODERN_VERSIONS if version in supported]
        if mutual:
            return RETRY, mutual[0]
        if supported and not any(version in HANDSHAKE_VERSIONS for version in supported):
            raise BackendError(
                f"The backend speaks only protocol versions {', '.join(supported)}; this worker speaks "
                f"{', '.join((*MODERN_VERSIONS, *HANDSHAKE_VERSIONS))}."
            )
        return LEGACY, ""
    if isinstance(result, dict):
        offered = result.get("supportedVersions")
        if isinstance(offered, list):
            mutual = [version for version in MODERN_VERSIONS if version in offered]
            if mutual and isinstance(result.get("capabilities", {}), dict):
                return MODERN, mutual[0]
    # No answer, an unreadable result, or a discover that offers only handshake-era versions.
    return LEGACY, ""


def modern_versions_named(error: Any) -> list[str]:
    """The modern versions we speak that a -32022 error names (modern evidence), newest first."""
    if not isinstance(error, dict) or error.get("code") != UNSUPPORTED_PROTOCOL_VERSION:
        return []
    supported = _supported(error)
    return [version for version in MODERN_VERSIONS if version in supported]


def _supported(error: dict[str, Any]) -> list[str]:
    data = error.get("data")
    supported = data.get("supported") if isinstance(data, dict) else None
    return [v for v in supported if isinstance(v, str)] if isinstance(supported, list) else []


def initialize_equivalent(discover: dict[str, Any], version: str, name: str) -> dict[str, Any]:
    """An InitializeResult built from a DiscoverResult, so the gateway's code keeps working: protocolVersion
    (the chosen modern version), capabilities, serverInfo (from `_meta`, else the server key) and instructions."""
    capabilities = discover.get("capabilities")
    meta = discover.get("_meta")
    info = meta.get(SERVER_INFO) if isinstance(meta, dict) else None
    if not (isinstance(info, dict) and isinstance(info.get("name"), str)):
        info = {"name": name, "version": ""}
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": capabilities if isinstance(capabilities, dict) else {},
        "serverInfo": info,
    }
    if isinstance(discover.get("instructions"), str):
        result["instructions"] = discover["instructions"]
    return result


async def negotiate(relay: BackendRelay, transport: str, protocol: str, timeout: float) -> Negotiated:
    """Open the conversation with the backend in its era (see the module docstring)."""
    if transport == "sse" or protocol == LEGACY:
        return await handshake(relay, timeout)
    pinned = protocol != "auto"
    version = MODERN_VERSIONS[0]
    for _ in range(2):
        result, error = await _discover(relay, version, timeout if pinned else min(PROBE_TIMEOUT_S, timeout))
        verdict, version = judge(result, error)
        if verdict == MODERN:
            return _adopt(relay, result, version, timeout)
        if verdict == LEGACY:
            break
    if pinned:
        raise BackendError(
            'The backend is pinned to "protocol": "2026-07-28", but it did not answer server/discover with a '
            f"DiscoverResult offering {MODERN_VERSIONS[0]}{_said(result, error)}."
        )
    relay.connection.negotiated("")  # the handshake goes without a version header
    try:
        return await handshake(relay, timeout)
    except _HandshakeRefused as refused:
        named = modern_versions_named(refused.error)
        if not named:
            raise BackendError(refused.message) from None
    result, error = await _discover(relay, named[0], timeout)
    verdict, version = judge(result, error)
    if verdict != MODERN:
        raise BackendError(
            f"The backend refused the initialize handshake naming {named[0]}, but did not answer server/discover "
            f"with a DiscoverResult either{_said(result, error)}."
        )
    return _adopt(relay, result, version, timeout)


def _said(result: Any, error: Any) -> str:
    if isinstance(error, dict):
        return f" (it answered error {error.get('code')}: {error.get('message')})"
    if result is None:
        return " (no answer)"
    return f" (it answered {str(result)[:200]})"


async def _discover(relay: BackendRelay, version: str, timeout: float) -> tuple[Any, Any]:
    """One probe: (result, error) of the reply, (None, None) when none came in time."""
    relay.connection.negotiated(version)  # HTTP: the probe's POST carries the modern headers
    try:
        return await relay.exchange("server/discover", {"_meta": envelope(version)}, timeout)
    except BackendError:  # no answer in time
        return None, None


def _adopt(relay: BackendRelay, discover: dict[str, Any], version: str, timeout: float) -> Negotiated:
    relay.speak_modern(version, discover.get("capabilities") or {}, min(LISTEN_TIMEOUT_S, timeout))
    return Negotiated(MODERN, version, initialize_equivalent(discover, version, relay.name))


class _HandshakeRefused(BackendError):
    def __init__(self, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


async def handshake(relay: BackendRelay, timeout: float) -> Negotiated:
    """The handshake era: `initialize`, then `notifications/initialized`."""
    params = {
        "protocolVersion": HANDSHAKE_VERSIONS[0],
        "capabilities": HANDSHAKE_CAPABILITIES,
        "clientInfo": {"name": "mcp-supervisor", "version": __version__},
    }
    result, error = await relay.exchange("initialize", params, timeout)
    if isinstance(error, dict):
        message = f"The backend answered initialize with error {error.get('code')}: {error.get('message')}"
        raise _HandshakeRefused(message, error)
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    if version not in HANDSHAKE_VERSIONS:
        raise BackendError(f"The backend chose protocol version {version!r}, which this worker does not speak.")
    assert isinstance(result, dict) and isinstance(version, str)
    relay.connection.negotiated(version)
    capabilities = result.get("capabilities")
    relay.capabilities = capabilities if isinstance(capabilities, dict) else {}
    await relay.notify("notifications/initialized")
    return Negotiated(LEGACY, version, dict(result))
