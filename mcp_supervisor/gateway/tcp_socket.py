"""The gateway's listening socket, bound before uvicorn starts: a port in use is then an exit code the
supervisor acts on (stop, exit 2, say why), not a crash it restarts six times."""

from __future__ import annotations

import errno
import socket

from mcp_supervisor.errors import SupervisorError


class PortInUse(SupervisorError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is in use")


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host:port` (uvicorn listens on it); PortInUse when another program holds it."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restarted gateway may bind while the old one's connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    return sock
