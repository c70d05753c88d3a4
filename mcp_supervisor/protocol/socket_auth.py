"""Who may connect to the tree's ZeroMQ sockets, and who a message came from.

Both ROUTERs (the gateway's data socket, the supervisor's control socket) are ZeroMQ PLAIN servers behind a
ZAP handler. A peer's password is an HMAC of its user name under the instance key, a secret the supervisor
draws at start and hands to the gateway through an inherited fd (`protocol/spawn.py`), never the environment.
Each worker gets only its own password, the same way; the CLI reads its own from a 0600 file in the runtime
dir. So the handler needs no table, and a worker is accepted the moment it connects (no race with the
supervisor telling the gateway about a spawn), while anything the supervisor did not spawn, a backend above
all, cannot connect at all.

User names say who the peer is, and ZeroMQ stamps each received message with the one its connection
authenticated as (the `User-Id` property), which the receivers check against what the message claims:
- a worker: `<key>/<generation>`, also its routing identity on the data socket;
- the gateway: `@gateway/<generation>`;
- the CLI: `@cli`.

PLAIN and not CURVE: every socket is `ipc://` in a 0700 directory that sandboxed backends cannot even see,
so there is nothing to encrypt against, and PLAIN costs nothing per message (CURVE would box every frame).
A `tcp://` transport between hosts would need CURVE; there is none today.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq
from zmq.auth.thread import ThreadAuthenticator

from mcp_supervisor.log_sparingly import Sparingly

log = logging.getLogger("mcp_supervisor.auth")

INSTANCE_KEY_BYTES = 32
GATEWAY_PREFIX = "@gateway/"
CLI_USER = "@cli"
CLI_SECRET_FILE = "cli.secret"
_WORKER_USER = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}/[0-9]{1,9}")


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    user: str
    password: str


def new_instance_key() -> bytes:
    return secrets.token_bytes(INSTANCE_KEY_BYTES)


def derive(instance_key: bytes, user: str) -> Credentials:
    password = hmac.new(instance_key, user.encode(), hashlib.sha256).hexdigest()
    return Credentials(user=user, password=password)


def worker_user(key: str, generation: int) -> str:
    return f"{key}/{generation}"


def gateway_user(generation: int) -> str:
    return f"{GATEWAY_PREFIX}{generation}"


def is_worker(user: str) -> bool:
    return _WORKER_USER.fullmatch(user) is not None


def is_gateway(user: str) -> bool:
    return user.startswith(GATEWAY_PREFIX)


def parse_worker(user: str) -> tuple[str, int] | None:
    """(key, generation) of a worker's user name, or None for any other peer."""
    if not is_worker(user):
        return None
    key, _, generation = user.rpartition("/")
    return key, int(generation)


def as_client(socket: zmq.Socket[Any], credentials: Credentials) -> None:
    socket.plain_username = credentials.user.encode()
    socket.plain_password = credentials.password.encode()


def as_server(socket: zmq.Socket[Any]) -> None:
    socket.plain_server = True


def peer_of(frame: zmq.Frame) -> str:
    """The user name the sender's connection authenticated as (set by ZeroMQ, not by the sender)."""
    user = frame.get("User-Id")
    return user if isinstance(user, str) else ""


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread, with passwords derived instead of looked up in a table (and never logged)."""

    def __init__(self, context: zmq.Context[Any], instance_key: bytes, accepts: Callable[[str], bool]) -> None:
        super().__init__(context, log=logging.getLogger("mcp_supervisor.auth.zap"))
        self._instance_key = instance_key
        self._accepts = accepts
        # Once per name (of at most 1000 names): a reconnecting intruder does not flood the log.
        self._refusals_said = Sparingly(math.inf, max_keys=1000)

    def _authenticate_plain(self, domain: str, username: str, password: str) -> tuple[bool, bytes]:
        expected = derive(self._instance_key, username).password
        if self._accepts(username) and hmac.compare_digest(expected, password):
            return True, b"OK"
        self._refusals_said.log(
            log, logging.WARNING, username, "Refused a ZeroMQ connection as %r: bad credentials.", username[:80]
        )
        return False, b"Invalid credentials"


class SocketGuard:
    """The process's ZAP handler: every PLAIN server socket of `context` is checked by it."""

    def __init__(self, context: zmq.Context[Any], instance_key: bytes, accepts: Callable[[str], bool]) -> None:
        self._auth = _Authenticator(context, instance_key, accepts)
        # ZeroMQ releases an inproc endpoint asynchronously after a close: a guard started right after another
        # one of the same context stopped may find the ZAP endpoint still taken for a few milliseconds.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                self._auth.start()
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def stop(self) -> None:
        self._auth.stop()
