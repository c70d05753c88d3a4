"""Per-backend link state: which worker generation serves each backend, and what the supervisor says of each.

A link exists from a worker's ready message until the supervisor reports its generation's exit; the statuses
are the supervisor's view of every configured backend, linked or not. Both are read by the core (routing,
catalog), the probes and the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp_supervisor.errors import SupervisorError
from mcp_supervisor.gateway.server import jsonrpc
from mcp_supervisor.protocol.messages import CATALOG_KINDS, BackendStatus, WorkerReady
from mcp_supervisor.protocol.states import BackendState
from mcp_supervisor.protocol.versions import Era

log = logging.getLogger("mcp_supervisor.gateway")


class BackendUnavailable(SupervisorError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f'Backend "{key}" is not available: {reason}.')
        self.key = key


@dataclass
class BackendLink:
    """A worker generation that reported its backend initialized."""

    key: str
    generation: int
    identity: bytes
    initialize_result: dict[str, Any]
    # Catalog kind (tools, resources, resource_templates, prompts) → items as the backend listed them.
    catalog: dict[str, list[dict[str, Any]]]
    name_prefix: str | None = None
    # The server entry's display name ("" = its key), shown in its tools' titles (gateway/server/ownership.py).
    display_name: str = ""
    # The protocol era its worker speaks to the backend ("legacy" or "modern", from WorkerReady).
    era: str = Era.LEGACY

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.catalog.get("tools", [])

    @property
    def capabilities(self) -> dict[str, Any]:
        capabilities = self.initialize_result.get("capabilities")
        return capabilities if isinstance(capabilities, dict) else {}


class LinkTable:
    """Live links, the last link of every backend, and the supervisor's status of every configured backend."""

    def __init__(self, on_catalog_change: Callable[[], None]) -> None:
        self._on_catalog_change = on_catalog_change
        self.links: dict[str, BackendLink] = {}
        # The last link of every backend ever linked, kept while it is down so a call names the backend.
        self.last_links: dict[str, BackendLink] = {}
        self.statuses: dict[str, BackendStatus] = {}
        # Called with (status, event) for every supervisor event, after it is applied (the admin's live page).
        self.status_listeners: list[Callable[[BackendStatus, str], None]] = []
        self._changed = asyncio.Event()  # set (and replaced) on every status or link change
        self.snapshot_seen = False
        self._born = time.monotonic()
        self._waiting_logged: list[str] = []
        self._gave_up_waiting = False

    def require(self, key: str) -> BackendLink:
        link = self.links.get(key)
        if link is None:
            raise BackendUnavailable(key, self.describe_down(key))
        return link

    def current(self, key: str, generation: int) -> BackendLink | None:
        """The link of exactly that worker generation, if it is the live one."""
        link = self.links.get(key)
        return link if link is not None and link.generation == generation else None

    def needs_resync(self, key: str, generation: int) -> bool:
        """A heartbeat from a worker we do not know (we restarted, or missed its ready)."""
        link = self.links.get(key)
        return link is None or link.generation < generation

    def describe_down(self, key: str) -> str:
        status = self.statuses.get(key)
        if status is None:
            return "it is not configured or not active"
        detail = f"state {status.state}" + (f" ({status.detail})" if status.detail else "")
        if status.last_exit:
            detail += f", last exit: {status.last_exit}"
        if status.last_error:
            detail += f", last error: {status.last_error}"
        if status.last_stderr:
            detail += f", its stderr said: {status.last_stderr}"
        return detail

    @property
    def in_flux(self) -> bool:
        """Whether the catalog is about to change: a backend starting, restarting or RUNNING but not yet linked."""
        return any(
            s.state in (BackendState.STARTING, BackendState.BACKOFF)
            or (s.state == BackendState.RUNNING and k not in self.links)
            for k, s in self.statuses.items()
        )

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def settle_startup(self, window_s: float) -> None:
        """Within `window_s` of the gateway's start, wait until no configured backend is still STARTING, and
        every RUNNING one is linked.

        A client that lists tools right after connecting (desktop clients do, once) would otherwise see an
        empty list just because the backends are a second slower than the gateway; and right after a gateway
        restart, the workers (RUNNING all along) need a heartbeat and a resync to link to the new gateway.
        """
        deadline = self._born + window_s
        starting: list[str] = []
        while time.monotonic() < deadline:
            starting = [
                k
                for k, s in self.statuses.items()
                if s.state in (BackendState.STARTING, BackendState.RUNNING) and k not in self.links
            ]
            if self.snapshot_seen and not starting:
                return
            if starting and self._waiting_logged != starting:
                self._waiting_logged = starting
                log.info(
                    "Waiting up to %.1f s more for backends still starting: %s.",
                    deadline - time.monotonic(),
                    ", ".join(starting),
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - time.monotonic()))
        if starting and not self._gave_up_waiting:
            self._gave_up_waiting = True
            log.warning(
                "Answering without backends still starting after %g s (STARTUP_WAIT_SECONDS): %s; their tools "
                "come with notifications/tools/list_changed once they are ready.",
                window_s,
                ", ".join(starting),
            )

    def apply_status(self, status: BackendStatus, event: str) -> None:
        """Record a supervisor event. During a replacement two generations of one key live side by side: the
        newest generation's status is the one shown."""
        current = self.statuses.get(status.key)
        self._notify_change()
        if event == "removed":
            self.statuses.pop(status.key, None)
            self.last_links.pop(status.key, None)
        elif current is None or status.generation >= current.generation:
            self.statuses[status.key] = status

    def announce(self, status: BackendStatus, event: str) -> None:
        for listener in self.status_listeners:
            listener(status, event)

    def unlink(self, key: str, generation: int) -> None:
        """That generation (or an older one) ended: its link, if still the live one, goes."""
        link = self.links.get(key)
        if link is not None and link.generation <= generation:
            del self.links[key]
            self._on_catalog_change()

    def link(self, identity: bytes, ready: WorkerReady) -> None:
        """A worker reported its backend initialized: from now on it takes that backend's new requests."""
        current = self.links.get(ready.key)
        if current is not None and current.generation > ready.generation:
            return  # a late message from a generation already replaced
        status = self.statuses.get(ready.key)
        if status is not None and status.generation > ready.generation:
            return
        # A newer generation takes new requests at once; the old one drains what it has and its exit
        # (reported by the supervisor) fails whatever it could not finish.
        self.links[ready.key] = BackendLink(
            key=ready.key,
            generation=ready.generation,
            identity=identity,
            initialize_result=jsonrpc.decode_json(ready.initialize_result),
            catalog={kind: jsonrpc.decode_json(getattr(ready, kind)) for kind in CATALOG_KINDS},
            name_prefix=ready.name_prefix,
            display_name=ready.display_name,
            era=ready.era,
        )
        self.last_links[ready.key] = self.links[ready.key]
        self._notify_change()
        log.info("Backend %s (generation %d) is linked.", ready.key, ready.generation)
        self._on_catalog_change()

    def update_catalog(self, key: str, generation: int, kind: str, items: bytes) -> None:
        """A live worker's backend changed one of its lists."""
        link = self.current(key, generation)
        if link is not None and kind in CATALOG_KINDS:
            link.catalog[kind] = jsonrpc.decode_json(items)
            self._on_catalog_change()
