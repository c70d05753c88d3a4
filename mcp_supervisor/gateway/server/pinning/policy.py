"""The verdict on every exposed tool and prompt, once per catalog rebuild (never per request).

`screen` runs where the catalog view aggregates a kind: it keeps what is pinned (or new and clean), and takes
out of the list and the routes what is held, remembering each held name so that a call to it gets an error
that says why and how to approve it. Hashes are cached per backend item object, so a rebuild caused by
another backend costs a dictionary lookup per tool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.server.pinning.fingerprint import fingerprint, pinned_definition
from mcp_supervisor.gateway.server.pinning.store import (
    Definition,
    Entry,
    PinStore,
    Request,
    pin_path,
    requests_path,
    take_requests,
    write_atomically,
)
from mcp_supervisor.gateway.server.pinning.suspicious import storable, suspicion

log = logging.getLogger("mcp_supervisor.gateway")

POLL_INTERVAL_S = 0.5
NEW_REASON = "it is new, and TOOL_PINNING=approve holds every new definition until approved"
CHANGED_REASON = "its definition changed since it was pinned"


class Route(Protocol):
    @property
    def server_key(self) -> str: ...
    @property
    def original_name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Held:
    """An exposed name held out of the catalog."""

    kind: str
    server_key: str
    exposed: str
    reason: str
    rejected: bool

    def message(self) -> str:
        what = f'{self.kind.capitalize()} "{self.exposed}" of backend "{self.server_key}"'
        if self.rejected:
            return (
                f"{what} is quarantined: an operator rejected its current definition ({self.reason}). "
                f"It stays hidden until the backend changes it or `mcp-supervisor tools approve {self.exposed}`."
            )
        return (
            f"{what} is quarantined by tool pinning: {self.reason}. An operator can review it with "
            f"`mcp-supervisor tools diff {self.exposed}` and allow it with "
            f"`mcp-supervisor tools approve {self.exposed}`."
        )


class Screened(Protocol):
    """A catalog that screens its tools and prompts (through `Pinning.screen`) when it aggregates them."""

    @property
    def tools(self) -> object: ...
    @property
    def prompts(self) -> object: ...


class Pinning:
    def __init__(
        self,
        settings: Settings,
        on_change: Callable[[], None] = lambda: None,
        audit: Callable[[dict[str, Any]], None] | None = None,
        path: Path | None = None,
    ) -> None:
        self.mode = settings.tool_pinning
        self._limits = (settings.tool_description_max_bytes, settings.tool_schema_max_bytes)
        if path is None and settings.state_dir.is_absolute():  # the default Path(".") is no place for pins
            path = pin_path(settings)
        self.store = PinStore(path) if self.mode != "off" else None
        self.inbox = requests_path(settings)
        self.on_change = on_change
        self._audit = audit
        self.held: dict[tuple[str, str], Held] = {}
        self._hashes: dict[tuple[str, str, str], tuple[Mapping[str, Any], dict[str, Any], str]] = {}
        self._dirty = False

    # ------------------------------------------------------------------ screening

    def screen(
        self, kind: str, items: list[dict[str, Any]], routes: dict[str, Any], catalogs: Mapping[str, Sequence[Any]]
    ) -> None:
        """Take the held items of one kind out of `items` and `routes` (in place)."""
        if self.store is None:
            return
        sources = {
            (key, item["name"]): item
            for key, listed in catalogs.items()
            for item in listed
            if isinstance(item, Mapping) and isinstance(item.get("name"), str)
        }
        held: dict[tuple[str, str], Held] = {}
        for exposed, route in routes.items():
            source = sources.get((route.server_key, route.original_name))
            if source is not None:
                verdict = self._judge(kind, route, exposed, source)
                if verdict is not None:
                    held[(kind, exposed)] = verdict
        if held:
            items[:] = [item for item in items if (kind, item.get("name")) not in held]
            for _, exposed in held:
                del routes[exposed]
        self.held = {k: v for k, v in self.held.items() if k[0] != kind} | held
        if self._dirty:
            self._dirty = False
            self.store.save(self.mode)

    def _hash(self, kind: str, key: str, name: str, source: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        cached = self._hashes.get((kind, key, name))
        if cached is not None and cached[0] is source:
            return cached[1], cached[2]
        definition = pinned_definition(kind, source)
        digest = fingerprint(definition)
        self._hashes[(kind, key, name)] = (source, definition, digest)
        return definition, digest

    def _judge(self, kind: str, route: Route, exposed: str, source: Mapping[str, Any]) -> Held | None:
        """None to serve the item, else why it is held; records every new finding in the store."""
        assert self.store is not None
        definition, digest = self._hash(kind, route.server_key, route.original_name, source)
        entry = self.store.entries.get((kind, route.server_key, route.original_name))
        if entry is not None and entry.pinned is not None and entry.pinned.hash == digest:
            if entry.pending is not None:
                entry.pending, entry.reason, entry.rejected = None, "", False  # back to what was approved
                self._dirty = True
            self._set(entry, exposed, "pinned")
            return None
        if entry is None:
            entry = Entry(kind=kind, backend=route.server_key, name=route.original_name, exposed=exposed)
            self.store.entries[entry.key] = entry
        fresh = entry.pending is None or entry.pending.hash != digest
        if fresh or (entry.pinned is None and self.mode != "approve" and not entry.rejected):
            # New, changed, or held as new under TOOL_PINNING=approve and since switched to enforce or warn.
            doubt = suspicion(definition, *self._limits)
            if entry.pinned is None and doubt is None and self.mode != "approve":
                # Trust on first use: a clean definition never seen before is pinned as it is.
                entry.pinned = Definition(hash=digest, definition=definition, at=time.time())
                entry.pending, entry.reason, self._dirty = None, "", True
                self._set(entry, exposed, "pinned")
                return None
            if fresh:
                reason = doubt or NEW_REASON
                if entry.pinned is not None:
                    reason = CHANGED_REASON + (f", and {doubt}" if doubt else "")
                kept = storable(definition, self._limits[0] + 2 * self._limits[1])
                entry.pending = Definition(hash=digest, definition=kept, at=time.time())
                entry.reason, entry.rejected, self._dirty = reason, False, True
                self._report(entry, exposed)
        state = "rejected" if entry.rejected else "warned" if self.mode == "warn" else "quarantined"
        self._set(entry, exposed, state)
        if state == "warned":
            return None
        return Held(kind, route.server_key, exposed, entry.reason, entry.rejected)

    def _set(self, entry: Entry, exposed: str, state: str) -> None:
        if entry.exposed != exposed or entry.state != state:
            entry.exposed, entry.state = exposed, state
            self._dirty = True

    def _report(self, entry: Entry, exposed: str) -> None:
        served = self.mode == "warn"
        log.warning(
            '%s "%s" of backend "%s" %s: %s. Review: `mcp-supervisor tools diff %s`; approve: '
            "`mcp-supervisor tools approve %s`.",
            entry.kind.capitalize(),
            exposed,
            entry.backend,
            "is served anyway (TOOL_PINNING=warn)" if served else "is quarantined",
            entry.reason,
            exposed,
            exposed,
        )
        self._event("pin-drift-served" if served else "pin-quarantined", entry, exposed)

    def _event(self, event: str, entry: Entry, exposed: str) -> None:
        if self._audit is not None:
            self._audit(
                {
                    "event": event,
                    "kind": entry.kind,
                    "name": exposed,
                    "backend": entry.backend,
                    "originalName": entry.name,
                    "reason": entry.reason,
                    "hash": entry.pending.hash if entry.pending is not None else None,
                }
            )

    def refusal(self, kind: str, name: str) -> Held | None:
        """Why a call to `name` is refused, when it is held (the caller checks the client may see it)."""
        return self.held.get((kind, name))

    # ------------------------------------------------------------------ operator decisions

    def decide(self, request: Request) -> str:
        """Apply an approval or a rejection; the outcome in words. Clients get list_changed when it shows."""
        if self.store is None:
            return "Tool pinning is off (TOOL_PINNING=off): nothing to approve or reject."
        chosen = [e for e in self.store.entries.values() if e.pending is not None and _wanted(request, e)]
        if not chosen:
            target = f'named "{request.name}"' if request.name else f'of backend "{request.backend}"'
            return f"No tool or prompt {target} awaits approval."
        for entry in chosen:
            if request.action == "approve":
                entry.pinned, entry.pending, entry.reason, entry.rejected = entry.pending, None, "", False
                entry.state = "pinned"
                self._event("pin-approved", entry, entry.exposed)
            else:
                entry.rejected, entry.state = True, "rejected"
                self._event("pin-rejected", entry, entry.exposed)
        names = ", ".join(sorted(f"{e.kind} {e.exposed}" for e in chosen))
        verb = "Approved" if request.action == "approve" else "Rejected"
        log.warning("%s by the operator: %s.", verb, names)
        self.store.save(self.mode)
        self.on_change()
        return f"{verb}: {names}."

    def screen_now(self, catalog: Screened) -> None:
        """Aggregate (and so screen) the tools and prompts of a catalog that just changed; off: nothing."""
        if self.store is not None:
            _ = catalog.tools, catalog.prompts

    async def watch(self, refresh: Callable[[], None]) -> None:
        """Apply queued CLI requests, and screen each rebuilt catalog even when no client asks for it."""
        while True:
            # Screened first: a decision then applies to what the catalog holds now, prompts included, even
            # when no client has listed them since the backend linked.
            refresh()
            for done, request in take_requests(self.inbox):
                outcome = self.decide(request) if request is not None else "Not a pin request; ignored."
                try:
                    write_atomically(done, outcome.encode())
                except OSError as exc:
                    log.error("Could not answer the pin request %s: %s", done, exc)
            await asyncio.sleep(POLL_INTERVAL_S)

    def metrics_lines(self, visible: Callable[[str], bool]) -> list[str]:
        """The gauge of held tools and prompts, per backend the asking client may see."""
        counts: dict[tuple[str, str], int] = {}
        for held in self.held.values():
            if visible(held.server_key):
                counts[(held.server_key, held.kind)] = counts.get((held.server_key, held.kind), 0) + 1
        lines = [
            "# HELP mcp_gateway_quarantined_definitions Tools and prompts held by tool pinning, awaiting an operator.",
            "# TYPE mcp_gateway_quarantined_definitions gauge",
        ]
        for (backend, kind), count in sorted(counts.items()):
            label = backend.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            lines.append(f'mcp_gateway_quarantined_definitions{{backend="{label}",kind="{kind}"}} {count}')
        return lines


def _wanted(request: Request, entry: Entry) -> bool:
    """By the exposed name (a tool and a prompt of that name both), or every one of a backend."""
    if request.name:
        return entry.exposed == request.name
    return bool(request.backend) and entry.backend == request.backend
