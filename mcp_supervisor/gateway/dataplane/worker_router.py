"""The ROUTER socket the workers connect to: it authenticates every message's sender before anyone reads it.

Workers are untrusted in what they relay, so a message counts only for the worker that sent it: the sender is
the user name its connection authenticated as (ZAP, per-spawn credentials), which must equal its routing
identity `<key>/<generation>`. Anything else is dropped, counted and logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import msgspec
import zmq
import zmq.asyncio

from mcp_supervisor.errors import ProtocolError
from mcp_supervisor.gateway.dataplane.metrics import Metrics
from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.channel import Channel
from mcp_supervisor.protocol.endpoints import Endpoints, configure_router
from mcp_supervisor.protocol.messages import WorkerToGateway

log = logging.getLogger("mcp_supervisor.gateway")

# (routing identity, (key, generation) it authenticated as, the decoded message)
Handler = Callable[[bytes, tuple[str, int], WorkerToGateway], None]


class WorkerRouter:
    """The bound ROUTER, its ZAP guard, and the identities it has authenticated."""

    def __init__(self, endpoints: Endpoints, instance_key: bytes, metrics: Metrics) -> None:
        self._metrics = metrics
        # The process's one ZeroMQ context (one I/O thread), seen through a synchronous shadow.
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(zmq.asyncio.Context.instance().underlying)
        # Before the bind: a PLAIN server with no ZAP handler in its context would accept any credentials.
        self._guard = socket_auth.SocketGuard(context, instance_key, socket_auth.is_worker)
        router = context.socket(zmq.ROUTER)
        configure_router(router)
        socket_auth.as_server(router)
        router.bind(endpoints.data)
        self._channel = Channel(router, with_peer=True)
        self.socket = router
        # Routing identity → (key, generation) of workers whose messages were accepted.
        self._senders: dict[bytes, tuple[str, int]] = {}

    def start(self) -> None:
        self._channel.start()

    def close(self) -> None:
        self._channel.close()
        self._guard.stop()

    async def run(self, handle: Handler) -> None:
        """Hand every authenticated, decodable message to `handle`, in order."""
        while True:
            identity, frame, peer = await self._channel.recv()
            sender = self._senders.get(identity)
            if sender is None or identity != peer:
                sender = self._sender_of(identity, peer)
                if sender is None:
                    continue
            try:
                message = codec.decode_worker_to_gateway(frame)
            except ProtocolError as exc:
                log.error("%s", exc)
                continue
            handle(identity, sender, message)

    def send(self, identity: bytes, frame: bytes) -> None:
        """Raises zmq.ZMQError when the worker cannot be reached."""
        self._channel.send([identity, frame])

    def send_quietly(self, identity: bytes, message: msgspec.Struct) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._channel.send([identity, codec.encode(message)])

    def refuse(self, sender: tuple[str, int], what: str) -> None:
        """Drop a message that speaks for someone other than its sender."""
        self._metrics.refused_messages += 1
        log.warning("Dropped %s from worker[%s] (generation %d).", what, *sender)

    def _sender_of(self, identity: bytes, peer: bytes) -> tuple[str, int] | None:
        """The (key, generation) a message really comes from, or None (dropped) when its routing identity is
        not the name its connection authenticated as."""
        parsed = socket_auth.parse_worker(peer.decode(errors="replace")) if identity == peer else None
        if parsed is None:
            self._metrics.refused_messages += 1
            log.warning(
                "Dropped a data-plane message from %r: its routing identity %r is not what it authenticated as.",
                peer.decode(errors="replace")[:80],
                identity.decode(errors="replace")[:80],
            )
            return None
        if len(self._senders) > 10_000:
            self._senders.clear()  # identities of long-gone generations; the live ones are re-learned at once
        self._senders[identity] = parsed
        return parsed
