"""A ZeroMQ data-plane socket driven straight from the event loop, without zmq.asyncio's per-message Futures.

zmq.asyncio wraps every send and every receive in a Future plus its own bookkeeping (enum flag arithmetic,
event lists, rescheduling): measured at ~10 % of the gateway's CPU per relayed call and ~20 % of a worker's.
Here sends go out at once with NOBLOCK (HWM is 100k: queuing is the exception, kept in order in an outbox
flushed when the socket is writable again), and the loop's reader callback drains every queued message into
an inbox in one go. ZeroMQ's FD is edge-triggered and any send or receive may consume the edge, so after
each of them `zmq.EVENTS` is checked and the callback rescheduled when input is pending.
"""

from __future__ import annotations

import asyncio
import collections

import zmq

# Messages handed out without suspending before the consumer yields once to the event loop (fairness with
# the HTTP side when a burst of replies arrives).
_BURST = 64


class Channel:
    def __init__(self, socket: zmq.Socket[bytes], with_peer: bool = False) -> None:
        """`with_peer`: append to each received message the user name its sender authenticated as (the
        `User-Id` ZeroMQ stamps on it; see protocol/socket_auth.py), so a ROUTER can tell who really sent it."""
        self.socket = socket
        self._with_peer = with_peer
        self._inbox: collections.deque[list[bytes]] = collections.deque()
        self._outbox: collections.deque[list[bytes]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._check_scheduled = False
        self._burst = 0

    def start(self) -> None:
        """Attach to the running loop (the socket is usually created before the loop runs)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._on_events)
        self._schedule_check()  # anything that arrived before we were watching

    def close(self) -> None:
        if self._loop is not None and not self.socket.closed:
            self._loop.remove_reader(self.socket.FD)
        self.socket.close(0)

    # ------------------------------------------------------------------ sending

    def send(self, frames: list[bytes]) -> None:
        """Send now, or queue in order behind what the peer could not take yet. Raises zmq.ZMQError for an
        unroutable peer (ROUTER_MANDATORY), as a blocking send would."""
        if self._outbox:
            self._outbox.append(frames)
            return
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self._outbox.append(frames)
        self._schedule_check()

    def _flush(self) -> None:
        while self._outbox:
            try:
                self.socket.send_multipart(self._outbox[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                pass  # the peer went away meanwhile: that message is lost, as it would be in the peer
            self._outbox.popleft()

    # ------------------------------------------------------------------ receiving

    async def recv(self) -> list[bytes]:
        """The next message (one consumer only)."""
        if self._inbox:
            self._burst += 1
            if self._burst < _BURST:
                return self._inbox.popleft()
            await asyncio.sleep(0)
        self._burst = 0
        while not self._inbox:
            assert self._loop is not None, "Channel.start() was not called"
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()

    def _schedule_check(self) -> None:
        if not self._check_scheduled and self._loop is not None:
            self._check_scheduled = True
            self._loop.call_soon(self._on_events)

    def _on_events(self) -> None:
        self._check_scheduled = False
        if self.socket.closed:
            return
        events = int(self.socket.get(zmq.EVENTS))
        if events & zmq.POLLOUT and self._outbox:
            self._flush()
        if not events & zmq.POLLIN:
            return
        while True:
            try:
                if self._with_peer:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
                    user = frames[-1].get("User-Id")
                    peer = user.encode() if isinstance(user, str) else b""
                    self._inbox.append([*(frame.bytes for frame in frames), peer])
                else:
                    self._inbox.append(self.socket.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
