"""Every envelope that crosses a ZeroMQ socket.

Rules (docs/architecture.md, "Package layout"): tagged `msgspec.Struct`s, msgpack on the wire, one union per
direction; new fields always get defaults and field types never change. A JSON-RPC message travels as opaque
JSON `bytes`: nobody between the client and the backend re-types a payload, so `_meta`, unknown fields,
structured content and binary blobs pass through untouched.
"""

from __future__ import annotations

import msgspec

from mcp_supervisor.protocol.versions import Era


class _Envelope(msgspec.Struct, tag_field="t", kw_only=True, omit_defaults=True):
    pass


# ---------------------------------------------------------------- data plane: worker -> gateway


class WorkerReady(_Envelope, tag="ready"):
    """The backend is initialized. Sent once per generation, and again when the gateway asks (Resync)."""

    key: str
    generation: int
    pid: int
    # The backend's InitializeResult as JSON (protocolVersion, capabilities, serverInfo, instructions).
    initialize_result: bytes = b"{}"
    # JSON arrays of the backend's catalog, every field as the backend sent it.
    tools: bytes = b"[]"
    resources: bytes = b"[]"
    resource_templates: bytes = b"[]"
    prompts: bytes = b"[]"
    # The server entry's `namePrefix`; None means the default `<key><SEP>`.
    name_prefix: str | None = None
    # The server entry's display name (`name`, else its key): what the gateway prefixes its tools' titles with.
    display_name: str = ""
    # The protocol era the worker speaks to its backend: "legacy" (the initialize handshake) or "modern"
    # (2026-07-28: no handshake, the `_meta` envelope on every request). For a modern backend
    # `initialize_result` is the equivalent built from its DiscoverResult (protocolVersion = the chosen
    # modern version, capabilities, serverInfo, instructions).
    era: str = Era.LEGACY


# The catalog kinds a worker publishes, as named in WorkerReady and CatalogChanged.
CATALOG_KINDS = ("tools", "resources", "resource_templates", "prompts")


class CatalogChanged(_Envelope, tag="catalog"):
    """One kind of the backend's catalog changed (a `*/list_changed`); `items` is the new JSON array."""

    key: str
    generation: int
    kind: str = "tools"
    items: bytes = b"[]"


class Reply(_Envelope, tag="reply"):
    """The backend's answer to a forwarded request: raw JSON of `result`, or of `error` when it failed."""

    rid: int
    result: bytes = b""
    error: bytes = b""


class Heartbeat(_Envelope, tag="hb"):
    """Sent every second from the worker's event loop; lets a restarted gateway rediscover its workers."""

    key: str
    generation: int
    # The backend's notifications its worker's budget dropped and coalesced so far (worker/budget.py).
    notifications_dropped: int = 0
    notifications_coalesced: int = 0


class BackendMessage(_Envelope, tag="bmsg"):
    """A message the backend sent on its own (a notification): raw JSON, for the gateway to route."""

    key: str
    generation: int
    body: bytes


WorkerToGateway = WorkerReady | CatalogChanged | Reply | Heartbeat | BackendMessage


# ---------------------------------------------------------------- data plane: gateway -> worker


class Forward(_Envelope, tag="fwd"):
    """A client request for the backend. `body` is the JSON-RPC request with its id already set to `rid`."""

    rid: int
    body: bytes
    # "legacy" when a handshake-era client sent it to a 2026-07-28 backend: a dual-era backend's worker sends it
    # over its handshake-era connection (worker/handshake_lane.py). Empty (and not encoded) otherwise.
    era: str = ""


class Resync(_Envelope, tag="resync"):
    """The gateway does not know this worker (it restarted): send WorkerReady again."""


class Notify(_Envelope, tag="notify"):
    """A JSON-RPC notification for the backend (e.g. notifications/cancelled with a rid), written verbatim."""

    body: bytes


GatewayToWorker = Forward | Resync | Notify


# ---------------------------------------------------------------- control plane: supervisor <-> others


class SandboxReport(msgspec.Struct, frozen=True, kw_only=True):
    """What confines one stdio backend: the SANDBOX mode, the method used (bwrap, landlock, limits-only, none)
    and, per feature (filesystem, processes, network, memory, pids, cpu, privileges), how it is enforced or
    why it is not."""

    mode: str
    method: str
    enforced: dict[str, str] = msgspec.field(default_factory=dict)
    not_enforced: dict[str, str] = msgspec.field(default_factory=dict)
    # The exposure score (system/exposure.py): 0 fully confined .. 10 not at all; None from a peer that predates
    # it. `exposure_factors`: the points each factor adds; `measures`: what is in place, which the score weighs.
    exposure: float | None = None
    exposure_factors: dict[str, float] = msgspec.field(default_factory=dict)
    measures: tuple[str, ...] = ()


class BackendStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    key: str
    type: str
    state: str
    generation: int = 0
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    last_exit: str | None = None
    last_error: str | None = None
    # Last line the backend wrote to stderr (its own words about why it failed, usually).
    last_stderr: str | None = None
    rss_bytes: int = 0
    cpu_percent: float = 0.0
    fds: int = 0
    processes: int = 0
    in_flight: int = 0
    # Wall-clock time of the next start attempt, while in BACKOFF or FATAL (None: none is scheduled).
    next_attempt_at: float | None = None
    # Replies this generation's backend sent for ids it was never given (dropped by its worker).
    refused_replies: int = 0
    # Stdio backends only: what the sandbox enforces for the current generation.
    sandbox: SandboxReport | None = None
    # How the current generation's worker was started: "fork" (by the zygote) or "spawn" (exec'd).
    start_method: str = ""
    # The current generation's protocol era toward its backend ("legacy" or "modern"; "" until ready) and
    # the protocol version it speaks.
    era: str = ""
    protocol_version: str = ""
    # What a STARTING backend is doing before its worker starts ("fetching packages"); "" otherwise.
    detail: str = ""


class Subscribe(_Envelope, tag="subscribe"):
    """Register the sender for BackendEvents; the supervisor answers with a Snapshot first."""


class StatusRequest(_Envelope, tag="status?"):
    pass


class ControlCommand(_Envelope, tag="command"):
    """A CLI command: `stop`, `restart` (with `key`) or `reload`."""

    name: str
    key: str = ""


class WorkerStateReport(_Envelope, tag="wstate"):
    """A worker tells the supervisor how its backend is doing (`ready` or `failed` with a reason)."""

    key: str
    generation: int
    state: str
    detail: str = ""
    # With `ready`: the backend's protocol era ("legacy" or "modern") and the version spoken.
    era: str = ""
    protocol_version: str = ""


class WorkerHeartbeat(_Envelope, tag="whb"):
    """Sent every second from the worker's event loop: a worker that stops sending is hung and replaced."""

    key: str
    generation: int
    in_flight: int = 0
    # Replies the backend sent for request ids it was never given (forgeries, or a confused backend), so far.
    refused_replies: int = 0


class GatewayHeartbeat(_Envelope, tag="ghb"):
    """Sent every second from the gateway's event loop: a gateway that goes silent is hung and replaced."""

    pid: int
    # What the gateway's catalog withholds or finds overlapping (gateway/server/catalog.py), for `status`;
    # None: unchanged since the last beat that carried it.
    catalog_problems: list[str] | None = None


ToSupervisor = Subscribe | StatusRequest | ControlCommand | WorkerStateReport | WorkerHeartbeat | GatewayHeartbeat


class Snapshot(_Envelope, tag="snapshot"):
    backends: list[BackendStatus] = []
    config_error: str = ""
    gateway: BackendStatus | None = None
    # The validated tool_config.json the gateway must apply (raw file bytes; empty = no overrides).
    tool_config: bytes = b""
    # The mcp_server.json that is running (raw bytes of the last file that applied), shown by the admin when
    # the one on disk is broken.
    running_servers: bytes = b""
    # The validated config/clients.json (raw bytes; empty = no file: everyone sees everything).
    clients: bytes = b""
    # How workers are started: "fork (zygote pid N)", or "spawn: <why not forked>".
    worker_spawn: str = ""
    # The gateway's last word on its catalog: tools, URIs and templates withheld or overlapping, and why.
    catalog_problems: list[str] = []


class ToolConfigUpdate(_Envelope, tag="toolcfg"):
    """tool_config.json changed and validated: the gateway applies it at once, restarting nothing."""

    data: bytes = b""


class ConfigStatus(_Envelope, tag="configstatus"):
    """The config files' state changed: `config_error` is every current error ("" = both files applied)."""

    config_error: str = ""
    running_servers: bytes = b""


class BackendEvent(_Envelope, tag="event"):
    """A worker changed state. `event` is spawned|ready|exited|removed; `status` is its status after it."""

    event: str
    status: BackendStatus


class CommandResult(_Envelope, tag="result"):
    ok: bool
    message: str = ""


class ClientsUpdate(_Envelope, tag="clients"):
    """clients.json changed and validated (empty = removed): the gateway applies it at once."""

    data: bytes = b""


FromSupervisor = Snapshot | BackendEvent | CommandResult | ToolConfigUpdate | ConfigStatus | ClientsUpdate
