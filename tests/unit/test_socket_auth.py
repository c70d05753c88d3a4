"""Pure rules of the tree's socket credentials and of who may send what on the control socket."""

from __future__ import annotations

import pytest

from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.messages import (
    ControlCommand,
    GatewayHeartbeat,
    StatusRequest,
    Subscribe,
    WorkerHeartbeat,
    WorkerStateReport,
)
from mcp_supervisor.supervisor.control import _allowed, _known_peer

KEY = b"k" * 32


def test_passwords_are_per_user_and_per_instance() -> None:
    one = socket_auth.derive(KEY, "time/1")
    assert one == socket_auth.derive(KEY, "time/1")
    assert one.password != socket_auth.derive(KEY, "time/2").password
    assert one.password != socket_auth.derive(b"x" * 32, "time/1").password
    assert len(one.password) == 64


@pytest.mark.parametrize(
    ("user", "parsed"),
    [
        ("time/1", ("time", 1)),
        ("my.server_2/17", ("my.server_2", 17)),
        ("@gateway/1", None),
        ("@cli", None),
        ("time", None),
        ("time/x", None),
        (".hidden/1", None),
        ("a/b/1", None),
        ("", None),
    ],
)
def test_worker_user_names(user: str, parsed: tuple[str, int] | None) -> None:
    assert socket_auth.parse_worker(user) == parsed


def test_known_peers() -> None:
    assert _known_peer("time/3") and _known_peer("@gateway/2") and _known_peer("@cli")
    assert not _known_peer("@admin") and not _known_peer("anonymous") and not _known_peer("")


@pytest.mark.parametrize(
    ("peer", "message", "allowed"),
    [
        ("time/3", WorkerHeartbeat(key="time", generation=3), True),
        ("time/3", WorkerHeartbeat(key="time", generation=4), False),
        ("time/3", WorkerStateReport(key="victim", generation=3, state="failed"), False),
        ("time/3", WorkerStateReport(key="time", generation=3, state="ready"), True),
        ("time/3", StatusRequest(), False),  # the attack: a worker (its backend) reading the snapshot
        ("time/3", ControlCommand(name="stop", key="victim"), False),  # ...and stopping other backends
        ("time/3", Subscribe(), False),
        ("time/3", GatewayHeartbeat(pid=1), False),
        ("@gateway/1", Subscribe(), True),
        ("@gateway/1", GatewayHeartbeat(pid=1), True),
        ("@gateway/1", ControlCommand(name="restart", key="time"), True),
        ("@gateway/1", WorkerHeartbeat(key="time", generation=3), False),
        ("@cli", StatusRequest(), True),
        ("@cli", ControlCommand(name="stop", key="time"), True),
        ("@cli", Subscribe(), False),
        ("", StatusRequest(), False),
    ],
)
def test_what_each_role_may_send(peer: str, message: object, allowed: bool) -> None:
    assert _allowed(peer, message) is allowed  # type: ignore[arg-type]


def test_a_refused_name_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A reconnecting intruder does not flood the log: each refused name once, a correct password never."""
    import zmq

    context = zmq.Context()
    try:
        auth = socket_auth._Authenticator(context, KEY, lambda user: user == "time/1")
        with caplog.at_level("WARNING", logger="mcp_supervisor.auth"):
            for _ in range(5):
                assert auth._authenticate_plain("", "intruder", "guess")[0] is False
            assert auth._authenticate_plain("", "other", "guess")[0] is False
            assert auth._authenticate_plain("", "time/1", socket_auth.derive(KEY, "time/1").password)[0] is True
    finally:
        context.term()
    refused = [r.getMessage() for r in caplog.records if "Refused a ZeroMQ connection" in r.getMessage()]
    assert refused == [
        "Refused a ZeroMQ connection as 'intruder': bad credentials.",
        "Refused a ZeroMQ connection as 'other': bad credentials.",
    ]
