"""The one `subscriptions/listen` stream a worker keeps open to a modern backend.

A 2026-07-28 backend sends change notifications only on a listen stream, and only the kinds its filter asks
for: `toolsListChanged`, `promptsListChanged`, `resourcesListChanged` (each when the backend's capabilities
declare `listChanged`) and `resourceSubscriptions` (the URIs the gateway subscribed with `resources/subscribe`,
which the worker answers itself, when the backend declares `resources.subscribe`). The first frame of a stream
is `notifications/subscriptions/acknowledged`; every frame is tagged with the listen request's id.

A filter is fixed for the life of its stream, so a change of the subscribed URIs opens a new stream; frames
are taken from the current stream until the new one is acknowledged, then from the new one only, and the old
one is cancelled (stdio: `notifications/cancelled`; HTTP: the SDK transport closes that POST's response
stream): no update is lost in between and none is delivered twice. A stream that ends (the backend answered
the listen request, or failed it) is opened again after a delay that doubles up to MAX_DELAY_S, and resets
once a stream has lived STABLE_S. A backend that does not know the method (-32601) is not asked again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_supervisor.protocol.error_codes import METHOD_NOT_FOUND

log = logging.getLogger("mcp_supervisor.worker")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
STABLE_S = 30.0

# (method, params) → (request id, future of the reply's (result, error)); the stream stays open until it ends.
OpenStream = Callable[[str, dict[str, Any]], Awaitable[tuple[str, "asyncio.Future[tuple[Any, Any]]"]]]
CloseStream = Callable[[str], Awaitable[None]]


def listen_flags(capabilities: dict[str, Any]) -> dict[str, bool]:
    """The list-changed kinds a backend's capabilities say it announces."""
    flags: dict[str, bool] = {}
    for capability, flag in (
        ("tools", "toolsListChanged"),
        ("prompts", "promptsListChanged"),
        ("resources", "resourcesListChanged"),
    ):
        declared = capabilities.get(capability)
        if isinstance(declared, dict) and declared.get("listChanged") is True:
            flags[flag] = True
    return flags


def can_subscribe(capabilities: dict[str, Any]) -> bool:
    resources = capabilities.get("resources")
    return isinstance(resources, dict) and resources.get("subscribe") is True


class _Stream:
    def __init__(self, request_id: str, wanted: dict[str, Any], reply: asyncio.Future[tuple[Any, Any]]) -> None:
        self.id = request_id
        self.filter = wanted
        self.reply = reply
        self.acknowledged: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.opened = time.monotonic()


class Listener:
    def __init__(
        self, capabilities: dict[str, Any], open_stream: OpenStream, close_stream: CloseStream, ack_timeout: float
    ) -> None:
        self._flags = listen_flags(capabilities)
        self.can_subscribe = can_subscribe(capabilities)
        self._open = open_stream
        self._close = close_stream
        self._ack_timeout = ack_timeout
        self.uris: set[str] = set()
        # URIs the current stream's acknowledgement honours.
        self.honoured: set[str] = set()
        self._current: _Stream | None = None
        self._opening: _Stream | None = None
        self._replaced: _Stream | None = None  # the stream an acknowledged new one replaces, to close
        self._wanted = 1  # bumped by every change of what to listen for; 1: the first stream
        self._applied = 0
        self._applied_changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._wake.set()
        self._delay = 0.0
        self._unsupported = False
        self._task: asyncio.Task[None] | None = None
        self.streams_opened = 0

    @property
    def current_id(self) -> str | None:
        return self._current.id if self._current is not None else None

    def wanted_filter(self) -> dict[str, Any] | None:
        wanted: dict[str, Any] = dict(self._flags)
        if self.can_subscribe and self.uris:
            wanted["resourceSubscriptions"] = sorted(self.uris)
        return wanted or None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="subscriptions-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # ---------------------------------------------------------------- what the gateway subscribes

    def subscribe(self, uri: str) -> int:
        if uri not in self.uris:
            self.uris.add(uri)
            self._changed()
        return self._wanted

    def unsubscribe(self, uri: str) -> int:
        if uri in self.uris:
            self.uris.discard(uri)
            self._changed()
        return self._wanted

    def _changed(self) -> None:
        self._wanted += 1
        self._delay = 0.0  # a change is worth trying at once, whatever failed before
        self._wake.set()

    async def settled(self, version: int, timeout: float) -> bool:
        """Wait (bounded) until a stream reflecting change `version` is acknowledged (or nothing needs one)."""
        deadline = time.monotonic() + timeout
        while self._applied < version:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._unsupported:
                return False
            changed = self._applied_changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    # ---------------------------------------------------------------- frames from the backend

    def accepts(self, tag: Any) -> bool:
        """Whether a frame tagged `tag` counts: only the current stream's (a stream being replaced, or one
        being opened but not acknowledged yet, delivers nothing twice)."""
        return self._current is not None and tag == self._current.id

    def acknowledged(self, tag: Any, notifications: Any) -> None:
        """The stream being opened is acknowledged: from this frame on its frames are the ones that count
        (at once, not when its opener next runs: its first notifications may be in the same read)."""
        stream = self._opening
        if stream is None or stream.id != tag or stream.acknowledged.done():
            return
        honoured = notifications.get("resourceSubscriptions") if isinstance(notifications, dict) else None
        self.honoured = {uri for uri in honoured if isinstance(uri, str)} if isinstance(honoured, list) else set()
        self._replaced, self._current = self._current, stream
        stream.acknowledged.set_result(notifications if isinstance(notifications, dict) else {})

    # ---------------------------------------------------------------- the stream's life

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._delay:
                await asyncio.sleep(self._delay)
            version, wanted = self._wanted, self.wanted_filter()
            if self._unsupported:
                self._apply(version)
                return
            current = self._current
            if current is not None and current.filter == wanted and not current.reply.done():
                self._apply(version)
                continue
            if wanted is None:
                self._current = None
                self.honoured = set()
                if current is not None:
                    await self._close(current.id)
                self._apply(version)
                continue
            try:
                replaced = await self._replace(wanted)
            except (OSError, ValueError) as exc:  # the connection refused the write: it is ending, or will be retried
                log.warning("Could not open subscriptions/listen: %s", exc)
                self._retry_later()
                continue
            if replaced:
                self._apply(version)

    def _apply(self, version: int) -> None:
        self._applied = max(self._applied, version)
        self._applied_changed.set()
        self._applied_changed = asyncio.Event()

    async def _replace(self, wanted: dict[str, Any]) -> bool:
        request_id, reply = await self._open("subscriptions/listen", {"notifications": wanted})
        self.streams_opened += 1
        stream = self._opening = _Stream(request_id, wanted, reply)
        reply.add_done_callback(lambda _: self._ended(stream))
        try:
            waiting: set[asyncio.Future[Any]] = {stream.acknowledged, reply}
            await asyncio.wait(waiting, timeout=self._ack_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._opening = None
        if not stream.acknowledged.done():
            if not reply.done():
                log.warning("The backend did not acknowledge subscriptions/listen within %g s.", self._ack_timeout)
                await self._close(stream.id)
            self._retry_later()
            return False
        old, self._replaced = self._replaced, None
        if old is not None:
            await self._close(old.id)
        log.debug("Listening to the backend with %s (stream %s).", wanted, stream.id)
        return True

    def _ended(self, stream: _Stream) -> None:
        """The backend answered a listen request: that stream is over."""
        _, error = stream.reply.result() if not stream.reply.cancelled() else (None, None)
        if isinstance(error, dict) and error.get("code") == METHOD_NOT_FOUND:
            if not self._unsupported:
                log.warning("The backend does not implement subscriptions/listen: no change notifications from it.")
            self._unsupported = True
        if stream is not self._current:
            return  # replaced already, or never acknowledged (its opener deals with that)
        self._current = None
        self.honoured = set()
        how = f"error {error.get('code')}: {error.get('message')}" if isinstance(error, dict) else "a result"
        log.info("The backend ended its subscriptions/listen stream (%s); opening it again.", how)
        if time.monotonic() - stream.opened >= STABLE_S:
            self._delay = 0.0
        self._retry_later()

    def _retry_later(self) -> None:
        self._delay = min(MAX_DELAY_S, max(FIRST_DELAY_S, self._delay * 2))
        self._wanted += 1  # the stream to come is a new state of things, which waiters may wait for
        self._wake.set()
