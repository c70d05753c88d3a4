"""The gateway's data socket on real ZeroMQ sockets: who may connect, and whose replies count.

`Backends` (the gateway's ROUTER and pending table) runs in the test's loop; "workers" are plain DEALERs the
test drives by hand, so each can misbehave exactly as a hostile backend behind a worker would make it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.asyncio

from mcp_supervisor.gateway.dataplane.backends import Backends
from mcp_supervisor.protocol import codec, socket_auth
from mcp_supervisor.protocol.endpoints import configure_dealer, prepare_runtime_dir
from mcp_supervisor.protocol.messages import Forward, Reply, WorkerReady
from mcp_supervisor.protocol.socket_auth import Credentials
from tests.helpers import async_wait_until

pytestmark = pytest.mark.anyio
KEY = socket_auth.new_instance_key()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    endpoints = prepare_runtime_dir(tmp_path / "run")
    gateway = Backends(endpoints, KEY, lambda: None)
    gateway.start()
    try:
        yield gateway
    finally:
        await gateway.close()


class FakeWorker:
    """A DEALER speaking the worker's wire protocol, with whatever identity and credentials it is given."""

    def __init__(self, backends: Backends, identity: str, credentials: Credentials | None) -> None:
        self.socket = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        configure_dealer(self.socket, identity)
        if credentials is not None:
            socket_auth.as_client(self.socket, credentials)
        self.socket.connect(backends_endpoint(backends))

    async def send(self, message: msgspec.Struct) -> None:
        """Never blocks: a refused peer's connection is torn down, and a DEALER with no peer left would wait
        forever to send (what an intruder sends is lost either way, which is the point)."""
        with contextlib.suppress(zmq.Again):
            zmq.Socket.send(self.socket, codec.encode(message), zmq.NOBLOCK)  # the synchronous send: raises Again

    async def next_forward(self, timeout: float = 5.0) -> Forward:
        frame = await asyncio.wait_for(self.socket.recv(), timeout)
        message = codec.decode_gateway_to_worker(frame)
        assert isinstance(message, Forward), message
        return message

    def close(self) -> None:
        self.socket.close(0)


def backends_endpoint(backends: Backends) -> str:
    endpoint = backends._router.socket.get(zmq.LAST_ENDPOINT)
    assert isinstance(endpoint, bytes)
    return endpoint.decode()


def worker(backends: Backends, key: str, generation: int) -> FakeWorker:
    user = socket_auth.worker_user(key, generation)
    return FakeWorker(backends, user, socket_auth.derive(KEY, user))


async def linked(backends: Backends, fake: FakeWorker, key: str, generation: int) -> None:
    await fake.send(WorkerReady(key=key, generation=generation, pid=1))
    await async_wait_until(lambda: key in backends.links, 5, what=f"{key} to link")


def result_of(text: str) -> bytes:
    return msgspec.json.encode({"content": [{"type": "text", "text": text}]})


async def test_a_reply_counts_only_from_the_worker_the_request_went_to(backends: Backends) -> None:
    victim, attacker = worker(backends, "victim", 1), worker(backends, "attacker", 1)
    try:
        await linked(backends, victim, "victim", 1)
        await linked(backends, attacker, "attacker", 1)
        call = asyncio.create_task(backends.call("victim", "tools/call", {"name": "sleep"}, timeout=10))
        forward = await victim.next_forward()
        # The attacker answers the victim's pending request id (ids are gateway-wide and sequential).
        await attacker.send(Reply(rid=forward.rid, result=result_of("forged")))
        await async_wait_until(lambda: backends.metrics.refused_messages == 1, 5, what="the forgery to be refused")
        assert not call.done()
        await victim.send(Reply(rid=forward.rid, result=result_of("genuine")))
        result, error = await asyncio.wait_for(call, 5)
        assert b"genuine" in result and not error
    finally:
        victim.close()
        attacker.close()


async def test_nothing_connects_without_this_instances_credentials(backends: Backends) -> None:
    user = socket_auth.worker_user("victim", 1)
    intruders = [
        FakeWorker(backends, user, None),  # no credentials at all
        FakeWorker(backends, user, Credentials(user=user, password="guessed")),
        FakeWorker(backends, user, socket_auth.derive(socket_auth.new_instance_key(), user)),  # another instance
    ]
    try:
        for intruder in intruders:
            await intruder.send(WorkerReady(key="victim", generation=1, pid=1))
        genuine = worker(backends, "other", 1)
        await linked(backends, genuine, "other", 1)  # it gets through meanwhile: the intruders' did not
        assert "victim" not in backends.links
        genuine.close()
    finally:
        for intruder in intruders:
            intruder.close()


async def test_a_worker_cannot_borrow_another_workers_identity(backends: Backends) -> None:
    """Valid credentials of one worker, the routing identity of another: dropped, never routed to."""
    victim = worker(backends, "victim", 1)
    borrower = FakeWorker(backends, "victim/2", socket_auth.derive(KEY, socket_auth.worker_user("attacker", 1)))
    try:
        await linked(backends, victim, "victim", 1)
        await borrower.send(WorkerReady(key="victim", generation=2, pid=1))
        await async_wait_until(lambda: backends.metrics.refused_messages == 1, 5, what="the borrower to be refused")
        assert backends.links["victim"].generation == 1
        # Nor can it speak for another key under its own name.
        attacker = worker(backends, "attacker", 1)
        await attacker.send(WorkerReady(key="victim", generation=3, pid=1))
        await async_wait_until(lambda: backends.metrics.refused_messages == 2, 5, what="the impostor to be refused")
        assert backends.links["victim"].generation == 1
        attacker.close()
    finally:
        victim.close()
        borrower.close()
