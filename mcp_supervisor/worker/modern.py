"""What a worker does differently toward a 2026-07-28 backend (the relay delegates here once the era is known).

Outgoing, per request from the gateway:
- every request gets the complete `_meta` envelope (worker/envelope.py);
- what the modern era removed is answered here, never sent: `ping` ({}), `logging/setLevel` ({}; the level
  travels per request as `io.modelcontextprotocol/logLevel` from then on), `resources/subscribe` and
  `resources/unsubscribe` (the URIs feed the listen stream's filter, worker/listen_stream.py; a subscribe is answered
  once the backend has acknowledged a stream carrying its URI);
- handshake-era notifications (`notifications/initialized`, `notifications/roots/list_changed`) are dropped;
  `notifications/cancelled` goes as it came (stdio's cancellation; the HTTP transport turns it into closing
  that request's response stream).
Incoming: frames of the listen stream lose their `subscriptionId` tag and become the notifications the
relay already handles (`*/list_changed` → catalog refresh, `notifications/resources/updated` → the gateway);
the acknowledgement, and frames of a stream that is not the current one, go no further.

An `InputRequiredResult` (`resultType: "input_required"`) is an ordinary result here: relayed unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from mcp_supervisor.protocol.error_codes import INVALID_PARAMS, METHOD_NOT_FOUND
from mcp_supervisor.protocol.messages import Reply
from mcp_supervisor.tasks import BackgroundTasks
from mcp_supervisor.worker.envelope import complete, untag
from mcp_supervisor.worker.listen_stream import CloseStream, Listener, OpenStream

log = logging.getLogger("mcp_supervisor.worker")

REMOVED_NOTIFICATIONS = frozenset({"notifications/initialized", "notifications/roots/list_changed"})
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
_EMPTY = b"{}"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _error(code: int, message: str) -> bytes:
    return _encode({"code": code, "message": message})


class ModernHop:
    def __init__(
        self,
        protocol_version: str,
        capabilities: dict[str, Any],
        send_reply: Callable[[Reply], None],
        open_stream: OpenStream,
        close_stream: CloseStream,
        timeout: float,
    ) -> None:
        self.protocol_version = protocol_version
        self.log_level: str | None = None
        self._send_reply = send_reply
        self._timeout = timeout
        self.listener = Listener(capabilities, open_stream, close_stream, ack_timeout=timeout)
        self._background = BackgroundTasks()

    # ---------------------------------------------------------------- outgoing

    def outgoing(self, rid: int, body: bytes) -> bytes | None:
        """The request as the backend gets it, or None when it was answered here."""
        try:
            request = _decode(body)
        except (msgspec.DecodeError, RecursionError):
            return body  # the backend answers it as it would have
        if not isinstance(request, dict):
            return body
        method = request.get("method")
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        match method:
            case "ping":
                self._send_reply(Reply(rid=rid, result=_EMPTY))
            case "logging/setLevel":
                level = params.get("level")
                if isinstance(level, str):
                    self.log_level = level
                self._send_reply(Reply(rid=rid, result=_EMPTY))
            case "resources/subscribe":
                self._subscribe(rid, params.get("uri"))
            case "resources/unsubscribe":
                uri = params.get("uri")
                if isinstance(uri, str):
                    self.listener.unsubscribe(uri)
                self._send_reply(Reply(rid=rid, result=_EMPTY))
            case _:
                return _encode(complete(request, self.protocol_version, self.log_level))
        return None

    def own_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """The worker's own request's params, with the envelope."""
        request: dict[str, Any] = {"params": dict(params or {})}
        complete(request, self.protocol_version)
        own: dict[str, Any] = request["params"]
        return own

    def notification(self, body: bytes) -> bytes | None:
        """A notification from the gateway as the backend gets it (None: dropped)."""
        if b"notifications/initialized" in body or b"notifications/roots/list_changed" in body:
            try:
                method = _decode(body).get("method")
            except (msgspec.DecodeError, RecursionError, AttributeError):
                return body
            if method in REMOVED_NOTIFICATIONS:
                return None
        return body

    def _subscribe(self, rid: int, uri: object) -> None:
        if not isinstance(uri, str):
            self._send_reply(Reply(rid=rid, error=_error(INVALID_PARAMS, 'resources/subscribe needs a string "uri".')))
            return
        if not self.listener.can_subscribe:
            message = "The backend does not offer resource subscriptions (capabilities.resources.subscribe)."
            self._send_reply(Reply(rid=rid, error=_error(METHOD_NOT_FOUND, message)))
            return
        version = self.listener.subscribe(uri)
        self._background.spawn(self._answer_subscribe(rid, uri, version))

    async def _answer_subscribe(self, rid: int, uri: str, version: int) -> None:
        """Answered once the backend acknowledged a listen stream with the URI: an update that follows the
        client's subscribe is then sure to reach it."""
        if await self.listener.settled(version, self._timeout) and uri in self.listener.honoured:
            self._send_reply(Reply(rid=rid, result=_EMPTY))
            return
        self.listener.unsubscribe(uri)
        message = (
            f"The backend did not take a subscription to {uri!r} on its subscriptions/listen stream within "
            f"{self._timeout:g} s."
        )
        self._send_reply(Reply(rid=rid, error=_error(INVALID_PARAMS, message)))

    # ---------------------------------------------------------------- incoming

    def incoming(self, method: str, raw: bytes) -> bytes | None:
        """A notification carrying a `subscriptionId` (by a bytes check): untagged, or None to drop it."""
        try:
            message = _decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return raw
        if not isinstance(message, dict):
            return raw
        tag = untag(message)
        if tag is None:
            return raw
        if method == ACKNOWLEDGED:
            params = message.get("params")
            self.listener.acknowledged(tag, params.get("notifications") if isinstance(params, dict) else None)
            return None
        if not self.listener.accepts(tag):
            return None
        return _encode(message)
