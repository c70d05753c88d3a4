"""`sandbox.network.hostPorts`: a TCP port of the host's loopback, offered inside a backend's own network
namespace at 127.0.0.1 on the same port.

The listening socket was made inside the namespace (system/netns.py) and handed to the worker, which lives in
the host's: a socket stays in the namespace it was made in, so accept() takes the backend's connections there and
the worker connects out to the host's 127.0.0.1. Only the named ports: slirp4netns keeps the rest of the host's
loopback refused. The copy costs the worker per byte, which is why this is opt-in, per port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger("mcp_supervisor.worker")
_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def relay(listener: socket.socket, port: int) -> asyncio.Server:
    """Serve `listener` (made in the backend's namespace), each connection joined to the host's 127.0.0.1:port."""

    async def joined(inner_reader: asyncio.StreamReader, inner_writer: asyncio.StreamWriter) -> None:
        try:
            outer_reader, outer_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            log.info("hostPorts: the host's 127.0.0.1:%d refused a connection of the backend: %s", port, exc)
            await _close(inner_writer)
            return
        try:
            await asyncio.gather(_pump(inner_reader, outer_writer), _pump(outer_reader, inner_writer))
        except asyncio.CancelledError:
            pass  # the relay closes with the backend (3.11's streams would log a cancelled handler as an error)
        finally:
            await _close(outer_writer)
            await _close(inner_writer)

    listener.setblocking(False)
    return await asyncio.start_server(joined, sock=listener)
