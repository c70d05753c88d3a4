"""The worker process: one backend connection, relayed to the gateway over a ZeroMQ DEALER.

Its lifetime is the backend connection's: when the backend goes away the worker exits non-zero and the
supervisor decides about a restart. On SIGTERM it drains (in-flight requests may finish, new ones are
refused) and then closes its backend. It never outlives the supervisor (parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

import msgspec

from mcp_supervisor import event_loop
from mcp_supervisor.errors import BackendError, ProtocolError, describe
from mcp_supervisor.protocol import codec
from mcp_supervisor.protocol.beat_page import BeatPage
from mcp_supervisor.protocol.error_codes import BACKEND_UNAVAILABLE
from mcp_supervisor.protocol.exit_codes import EXIT_BACKEND_FAILED
from mcp_supervisor.protocol.messages import (
    CATALOG_KINDS,
    BackendMessage,
    CatalogChanged,
    Forward,
    Notify,
    Reply,
    Resync,
    WorkerReady,
)
from mcp_supervisor.protocol.spawn import WorkerSpec, take_backend_stderr_fd, take_report_fd, take_worker_handoff
from mcp_supervisor.protocol.states import WorkerReport
from mcp_supervisor.protocol.versions import Era
from mcp_supervisor.redaction import redact
from mcp_supervisor.system.logs import configure_logging
from mcp_supervisor.system.process_tree import (
    become_subreaper,
    die_with_parent,
    kill_descendants,
    kill_rest_of_group,
    reap_adopted,
    set_title,
)
from mcp_supervisor.worker.backend import open_backend
from mcp_supervisor.worker.era import negotiate
from mcp_supervisor.worker.gateway_link import GatewayLink
from mcp_supervisor.worker.handshake_lane import HandshakeLane, idle, mirror, requests_in_flight
from mcp_supervisor.worker.relay import BackendRelay
from mcp_supervisor.worker.startup import race, watch_children_with_pidfds
from mcp_supervisor.worker.stdio_connection import spawn

log = logging.getLogger("mcp_supervisor.worker")

# The data-plane heartbeat only lets a gateway that does not know this worker ask for its catalog (Resync). A
# restarted gateway gets one as soon as the reconnection's handshake succeeds (`Worker._on_handshake`); this
# slow one is the safety net for anything else (a gateway that missed our ready).
GATEWAY_BEAT_EVERY = 15
_STOPPING_ERROR = msgspec.json.encode({"code": BACKEND_UNAVAILABLE, "message": "The backend's worker is stopping."})


class Worker:
    def __init__(
        self,
        spec: WorkerSpec,
        beats: BeatPage | None = None,
        report_fd: int | None = None,
        started: asyncio.subprocess.Process | Exception | None = None,
        backend_stderr: int | None = None,
    ) -> None:
        """`beats`, `report_fd`: see GatewayLink. `started`: the stdio backend, spawned before this (see `_main`),
        or why it could not be; `backend_stderr`: its stderr pipe, which a second connection's backend
        (handshake_lane.py) writes to too."""
        self.spec = spec
        self._started = started
        self._backend_stderr = backend_stderr
        self.key = spec.server.key
        self._link = GatewayLink(spec, beats, report_fd)
        self._send_data = self._link.send
        self._ready: WorkerReady | None = None
        self._relay: BackendRelay | None = None
        self._lane: HandshakeLane | None = None  # a dual-era backend's handshake-era connection (handshake_lane.py)
        self.stop_requested = asyncio.Event()
        self._draining = False

    async def run(self) -> int:
        self._link.start(self._on_handshake)
        heartbeats = asyncio.create_task(self._heartbeats())
        try:
            await self._run_backend()
        except Exception as exc:  # the SDK transports raise ExceptionGroups from their task groups
            if self.stop_requested.is_set():
                return 0
            return await self._fail(describe(exc))
        finally:
            heartbeats.cancel()
        return 0

    async def _run_backend(self) -> None:
        timeout = self.spec.init_timeout_s
        spec = self.spec
        async with open_backend(spec.server, spec.launch, spec.oauth_client_secret, self._started) as connection:
            relay = BackendRelay(
                connection,
                self._send_data,
                lambda kind: self._refresh(relay, kind, timeout),
                self._send_backend_message,
                name=self.key,
                roots=self.spec.server.roots,
            )
            self._relay = relay
            pump = asyncio.create_task(relay.pump())
            try:
                await self._start_serving(relay, pump, timeout)
                if relay.modern is not None and spec.server.protocol == "auto":
                    self._lane = HandshakeLane(
                        lambda: open_backend(
                            spec.server, spec.launch, spec.oauth_client_secret, stderr_fd=self._backend_stderr
                        ),
                        self._send_data,
                        lambda kind: self._refresh(relay, kind, timeout, lane=True),
                        self._send_backend_message,
                        self.key,
                        spec.server.roots,
                        timeout,
                    )
                await self._serve(relay, pump)
            finally:
                pump.cancel()
                if self._lane is not None:
                    await self._lane.aclose()

    async def _start_serving(self, relay: BackendRelay, pump: asyncio.Task[None], timeout: float) -> None:
        """Negotiate the era, list the catalog, tell the gateway (WorkerReady) and the supervisor (READY)."""
        entry = self.spec.server
        began = time.perf_counter()
        negotiated = await race(pump, negotiate(relay, entry.type, entry.protocol, timeout))
        negotiation_ms = (time.perf_counter() - began) * 1000
        if relay.modern is not None:
            # Listening before listing: a change between the two is not missed.
            listener = relay.modern.listener
            listener.start()
            if not await race(pump, listener.settled(1, timeout)):
                log.warning("No subscriptions/listen stream to the backend yet; trying again in the background.")
        catalog = {kind: await race(pump, relay.list_all(kind, timeout)) for kind in CATALOG_KINDS}
        encoded = {kind: msgspec.json.encode(items) for kind, items in catalog.items()}
        self._ready = WorkerReady(
            key=self.key,
            generation=self.spec.generation,
            pid=os.getpid(),
            initialize_result=msgspec.json.encode(negotiated.initialize_result),
            name_prefix=entry.namePrefix,
            display_name=entry.display_name,
            tools=encoded["tools"],
            resources=encoded["resources"],
            resource_templates=encoded["resource_templates"],
            prompts=encoded["prompts"],
            era=negotiated.era,
        )
        self._send_data(self._ready)
        summary = ", ".join(f"{len(items)} {kind.replace('_', ' ')}" for kind, items in catalog.items())
        summary += f"; {negotiated.era} era, {negotiated.protocol_version} (in {negotiation_ms:.1f} ms)"
        await self._link.report(WorkerReport.READY, summary, negotiated.era, negotiated.protocol_version)
        log.info("Backend %s is ready: %s.", self.key, summary)

    def _send_backend_message(self, body: bytes) -> None:
        self._send_data(BackendMessage(key=self.key, generation=self.spec.generation, body=body))

    async def _fail(self, reason: str) -> int:
        if self.spec.server.url:  # which endpoint failed, for `status` (credentials masked, as everywhere)
            reason = f"{reason} (backend at {self.spec.server.url})"
        reason = redact(reason)
        log.error("Backend %s failed: %s", self.key, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._link.report(WorkerReport.FAILED, reason), 1.0)
        return EXIT_BACKEND_FAILED

    async def _refresh(self, relay: BackendRelay, kind: str, timeout: float, lane: bool = False) -> None:
        try:
            items = msgspec.json.encode(await relay.list_all(kind, timeout))
        except BackendError as exc:
            log.warning("Could not refresh the %s of %s: %s", kind, self.key, exc)
            return
        # The backend's own list_changed is announced even when the list is unchanged: a direct client gets it
        # whatever the list holds (conformance sep-2575). The handshake lane's second process is ours, not the
        # client's: its start-up list_changed is news only when the list really changed.
        if self._ready is not None:
            if lane and getattr(self._ready, kind) == items:
                return
            self._ready = msgspec.structs.replace(self._ready, **{kind: items})
        self._send_data(CatalogChanged(key=self.key, generation=self.spec.generation, kind=kind, items=items))

    async def _serve(self, relay: BackendRelay, pump: asyncio.Task[None]) -> None:
        """Relay until the backend goes away or a stop is asked for; then drain (bounded) and return."""
        receiver = asyncio.create_task(self._receive(relay))
        stop = asyncio.ensure_future(self.stop_requested.wait())
        drained: asyncio.Future[Any] | None = None
        lane_ended = self._lane.ended if self._lane is not None else asyncio.get_running_loop().create_future()
        try:
            done, _ = await asyncio.wait({pump, receiver, stop, lane_ended}, return_when=asyncio.FIRST_COMPLETED)
            for finished in (pump, receiver, lane_ended):
                if finished in done:
                    finished.result()  # raises BackendClosed or the task's error
                    return
            self._draining = True  # from now on new requests are refused, replies still flow
            log.info("Draining %d in-flight request(s) before stopping.", requests_in_flight(self._relay, self._lane))
            drained = asyncio.ensure_future(idle(relay, self._lane))
            waiting: set[asyncio.Future[Any]] = {drained, pump}
            ended, _ = await asyncio.wait(
                waiting, timeout=self.spec.drain_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if pump in ended:
                pump.result()
        finally:
            for pending in (receiver, stop, drained):
                if pending is not None:
                    pending.cancel()

    async def _receive(self, relay: BackendRelay) -> None:
        """One loop for every message from the gateway: no task or wait set per message."""
        while True:
            frames = await self._link.data.recv()
            await self._handle(relay, frames[-1], draining=self._draining)

    async def _handle(self, relay: BackendRelay, frame: bytes, draining: bool) -> None:
        try:
            message = codec.decode_gateway_to_worker(frame)
        except ProtocolError as exc:
            log.error("%s", exc)
            return
        match message:
            case Forward(rid=rid) if draining:
                self._send_data(Reply(rid=rid, error=_STOPPING_ERROR))
            case Forward(rid=rid, body=body, era=Era.LEGACY) if self._lane is not None and not self._lane.refused:
                await self._lane.take(rid, body, relay.forward)  # a handshake-era client's, at a dual-era backend
            case Forward(rid=rid, body=body):
                mirror(self._lane, body)  # the gateway's own setLevel or unsubscribe concerns both connections
                try:
                    await relay.forward(rid, body)
                except (OSError, ValueError) as exc:  # answer instead of dropping the request
                    error = {
                        "code": BACKEND_UNAVAILABLE,
                        "message": f"The backend could not be sent the request: {exc}",
                    }
                    self._send_data(Reply(rid=rid, error=msgspec.json.encode(error)))
            case Resync():
                if self._ready is not None:
                    self._send_data(self._ready)
            case Notify(body=body):
                with contextlib.suppress(OSError):
                    lane = self._lane if self._lane is not None and self._lane.claims(body) else None
                    await (lane or relay).send_raw(body)

    async def _heartbeats(self) -> None:
        """From the event loop, so that a blocked or stopped loop is silence."""
        beats = 0
        while True:
            relay = self._relay
            in_flight = requests_in_flight(self._relay, self._lane)
            await self._link.beat(in_flight, relay.refused_replies if relay is not None else 0)
            beats += 1
            counts = relay.budget.counts if relay is not None and relay.budget is not None else (0, 0)
            if self._ready is not None:
                self._link.beat_gateway(counts, due=beats % GATEWAY_BEAT_EVERY == 0)
            # Orphans of the backend's tree are adopted by us (a subreaper), not by the supervisor: collect them.
            connection = relay.connection if relay is not None else None
            pids = {getattr(connection, "pid", None), self._lane.pid if self._lane is not None else None}
            reap_adopted({pid for pid in pids if isinstance(pid, int)})
            await asyncio.sleep(self.spec.heartbeat_interval_s)

    def _on_handshake(self) -> None:
        """A handshake with the gateway succeeded (a first connection, or one to a gateway that restarted): once
        we are ready, a heartbeat tells it about us at once, and it asks for our catalog if it lacks it."""
        if self._ready is not None:
            self._link.resend_beat()

    def close(self) -> None:
        self._link.close()


def main() -> int:
    # First: the fd must not outlive this line (a backend inherits nothing of it; exec drops the page's mapping).
    spec, beats = take_worker_handoff()
    report_fd = take_report_fd()
    backend_stderr = take_backend_stderr_fd()
    die_with_parent()
    # What the backend's tree orphans (a helper that daemonized) is adopted by this worker, not by the
    # supervisor, so this worker's exit sweeps exactly its own backend's processes and no one else's.
    become_subreaper()
    set_title(f"mcp-supervisor: worker[{spec.server.key}]")
    # Not Settings: a worker reads only its spawn environment and its spec; the supervisor sets this variable
    # from Settings.log_level before spawning (it is needed before the spec is acted on).
    configure_logging(
        os.environ.get("MCP_SUPERVISOR_LOG_LEVEL", "INFO"),
        f"%(asctime)s worker[{spec.server.key}] %(levelname)s %(message)s",
    )
    return event_loop.run(_main(spec, beats, report_fd, backend_stderr), spec.event_loop)


async def _main(
    spec: WorkerSpec, beats: BeatPage | None = None, report_fd: int | None = None, backend_stderr: int | None = None
) -> int:
    watch_children_with_pidfds()
    started: asyncio.subprocess.Process | Exception | None = None
    if spec.server.type == "stdio" and spec.launch is not None:
        # Before Worker(): its ZeroMQ context starts threads, and with a single thread the sandbox's outer stage
        # runs in the forked child instead of an exec'd launcher (stdio_connection.spawn).
        try:
            started = await spawn(spec.launch, backend_stderr)
        except Exception as exc:  # reported as the worker's failure, once it can report
            started = exc
    worker = Worker(spec, beats, report_fd, started, backend_stderr)
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if worker.stop_requested.is_set() or worker._ready is None:
            main_task.cancel()  # a second signal, or nothing to drain yet: stop now
        worker.stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        return await worker.run()
    except asyncio.CancelledError:
        if worker.stop_requested.is_set():
            return 0
        raise
    finally:
        worker.close()
        # The backend is closed by now; what it left in our group (its children) must not outlive us.
        left = kill_rest_of_group() + kill_descendants()
        if left:
            log.info("Killed %d leftover process(es) of the backend's group.", left)
