"""One supervised child slot and its states (`protocol/states.py` BackendState, where their transitions are
described): a `GatewaySlot` for the gateway, a `WorkerSlot` for the worker of one backend key. What differs
between the two kinds of child lives on the slot, so the supervisor's state machine never asks which it has."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from mcp_supervisor.config.models import ServerEntry, Supervision
from mcp_supervisor.protocol.beat_page import BeatPage
from mcp_supervisor.protocol.exit_codes import EXIT_CONFIG, EXIT_FAILURE, GATEWAY_PORT_IN_USE
from mcp_supervisor.protocol.messages import BackendStatus, SandboxReport
from mcp_supervisor.protocol.states import BackendState
from mcp_supervisor.redaction import redact_optional
from mcp_supervisor.supervisor.health import ResourceSample
from mcp_supervisor.supervisor.process import ChildProcess
from mcp_supervisor.supervisor.restart_policy import RestartPolicy, RestartSettings
from mcp_supervisor.supervisor.stderr import Source, StderrCapture
from mcp_supervisor.system.cgroups import BackendCgroup

log = logging.getLogger("mcp_supervisor.supervisor")

# The short names the state machine (supervisor/children.py) uses: the members themselves, not new strings.
STOPPED = BackendState.STOPPED
STARTING = BackendState.STARTING
RUNNING = BackendState.RUNNING
BACKOFF = BackendState.BACKOFF
STOPPING = BackendState.STOPPING
FATAL = BackendState.FATAL


def policy_for(options: Supervision, remote: bool = False) -> RestartPolicy:
    """`remote`: an SSE or HTTP backend. Its worker failing is mostly its server being unreachable, which is
    an outage to wait out (with capped backoff, for as long as it is configured), not a crash loop to stop."""
    return RestartPolicy(
        settings=RestartSettings(
            base_delay_s=options.backoffBase,
            max_delay_s=options.backoffMax,
            stable_after_s=options.stableAfter,
            max_restarts=sys.maxsize if remote else int(options.maxRestarts),
            window_s=options.restartWindow,
        ),
        clock=time.monotonic,
    )


class SlotStarter(Protocol):
    """What starts a slot's child (supervisor/child_start.py): one way per kind of slot."""

    def start_gateway(self, slot: GatewaySlot) -> None: ...

    def start_worker(self, slot: WorkerSlot) -> None: ...


@dataclass(eq=False)
class Slot(ABC):
    key: str
    options: Supervision
    policy: RestartPolicy
    state: BackendState = STOPPED
    generation: int = 0
    child: ChildProcess | None = None
    stderr: StderrCapture | None = None  # the worker's own (or the gateway's)
    backend_stderr: StderrCapture | None = None  # its stdio backend's, a pipe of its own
    restarts: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    commanded_stop: bool = False
    timer: asyncio.TimerHandle | None = None
    next_attempt_at: float | None = None  # wall clock of the timer's restart, for `status`
    last_heartbeat: float = 0.0
    # The gateway is watched only once its loop has beaten (it has no handshake that would bound its start).
    heartbeat_seen: bool = False
    in_flight: int = 0
    refused_replies: int = 0
    # The current generation's protocol era toward its backend and the version spoken (its ready report).
    era: str = ""
    protocol_version: str = ""
    # The current generation's heartbeat page (protocol/beat_page.py), and the beat count last read from it.
    beats: BeatPage | None = None
    beat_count: int = 0
    resources: ResourceSample = field(default_factory=ResourceSample)
    # The current generation's sandbox (stdio backends), and the cgroup its backend runs in.
    sandbox: SandboxReport | None = None
    cgroup: BackendCgroup | None = None
    # The package cache step before a start (supervisor/package_cache.py): what it is doing, the token of the
    # step in progress, whether it is done for the next spawn, and the variables it gives the backend.
    detail: str = ""
    preparing: object | None = None
    packages_ready: bool = False
    package_env: dict[str, str] | None = None
    # Set whenever the slot leaves STARTING (ready, crashed, stopped): what a replacement waits for.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    # The state a started child is in: RUNNING, or STARTING until its ready report.
    started_state: ClassVar[BackendState] = STARTING
    # How its stderr lines are written to its log (supervisor/stderr.py).
    stderr_role: ClassVar[Source] = "worker"
    # The supervisor's exit code when this child goes FATAL (None: it is retried after a cool-down).
    fatal_exit_code: ClassVar[int | None] = None

    @property
    @abstractmethod
    def label(self) -> str: ...

    @property
    @abstractmethod
    def type_name(self) -> str:
        """What `status` shows as its type: the backend's transport, or "gateway"."""

    @property
    def watched(self) -> bool:
        """Judged by the watchdog's heartbeat check."""
        return True

    @abstractmethod
    def start_with(self, starter: SlotStarter) -> None:
        """Start this slot's child the way its kind is started."""

    def publishes(self, event: str) -> bool:
        """Whether the gateway hears of this event about this slot."""
        return True

    def final_exit(self, code: int) -> int | None:
        """The supervisor's exit code when this exit ends the whole tree (None: handled as a crash)."""
        return None

    def attach_beats(self, handoff_fd: int) -> None:
        """Map the heartbeat page at the start of a new generation's handoff memfd (none: it beats by message)."""
        self.detach_beats()
        try:
            self.beats = BeatPage(handoff_fd, writable=False)
        except (OSError, ValueError):
            self.beats = None

    def detach_beats(self) -> None:
        if self.beats is not None:
            self.beats.close()
            self.beats = None
        self.beat_count = 0

    def read_beats(self, now: float) -> bool:
        """What the worker's loop wrote since the last look: a moved count is a heartbeat. True when the count
        of refused replies changed (worth publishing: it feeds /metrics, and it means a misbehaving backend)."""
        if self.beats is None:
            return False
        count, in_flight, refused = self.beats.read()
        if count == self.beat_count:
            return False
        self.beat_count = count
        self.last_heartbeat = now
        self.in_flight = in_flight
        changed, self.refused_replies = refused != self.refused_replies, refused
        return changed

    def last_stderr(self) -> str | None:
        """The backend's last line (escaped, bounded), or else what its worker wrote outside its log lines."""
        backend = self.backend_stderr.last_line if self.backend_stderr else None
        return backend or (self.stderr.last_line if self.stderr else None)

    def status(self) -> BackendStatus:
        child = self.child if self.child is not None and self.child.alive else None
        return BackendStatus(
            key=self.key,
            type=self.type_name,
            state=self.state,
            generation=self.generation,
            pid=child.pid if child else None,
            restarts=self.restarts,
            started_at=child.started_wall if child else None,
            last_exit=self.last_exit,
            # Errors of remote backends quote their URLs: never with the userinfo or a secret parameter.
            last_error=redact_optional(self.last_error),
            last_stderr=self.last_stderr(),
            rss_bytes=self.resources.rss_bytes if child else 0,
            cpu_percent=self.resources.cpu_percent if child else 0.0,
            fds=self.resources.fds if child else 0,
            processes=self.resources.processes if child else 0,
            in_flight=self.in_flight if child else 0,
            refused_replies=self.refused_replies,
            next_attempt_at=self.next_attempt_at if self.state in (BACKOFF, FATAL) else None,
            sandbox=self.sandbox,
            start_method=child.method if child else "",
            era=self.era,
            protocol_version=self.protocol_version,
            detail=self.detail if self.state == STARTING else "",
        )


@dataclass(eq=False)
class GatewaySlot(Slot):
    """The gateway: RUNNING once started (it has no handshake to wait for), watched only once its loop has
    beaten, and heard of by itself only through resource samples. Its end ends the tree."""

    stdio: bool = False  # it serves the supervisor's own stdin/stdout
    address: str = ""  # where it listens, for the error when it cannot
    started_state: ClassVar[BackendState] = RUNNING
    stderr_role: ClassVar[Source] = "own"
    fatal_exit_code: ClassVar[int | None] = EXIT_FAILURE

    @property
    def label(self) -> str:
        return "gateway"

    @property
    def type_name(self) -> str:
        return "gateway"

    @property
    def watched(self) -> bool:
        return self.heartbeat_seen  # an older gateway never beats at all

    def start_with(self, starter: SlotStarter) -> None:
        starter.start_gateway(self)

    def publishes(self, event: str) -> bool:
        # Its own `/health/backends` and the admin show its resources; the rest it knows.
        return event == "sample"

    def final_exit(self, code: int) -> int | None:
        if code == GATEWAY_PORT_IN_USE:
            # Another program has the port: every restart would fail the same way. Stop, and say why.
            self.state = FATAL
            self.last_error = f"{self.address} is in use"
            log.error(
                "The gateway cannot listen: %s. Stop the program that has it, or choose another port (--port or PORT).",
                self.last_error,
            )
            return EXIT_CONFIG
        if self.stdio and code == 0:
            self.state = STOPPED  # the stdio client closed its end: the whole tree's work is done
            return 0
        return None


@dataclass(eq=False)
class WorkerSlot(Slot):
    """The worker of one backend key: STARTING until its backend is initialized, retried after FATAL."""

    entry: ServerEntry = field(kw_only=True)

    @property
    def label(self) -> str:
        return f"worker[{self.key}]"

    @property
    def type_name(self) -> str:
        return self.entry.type

    def start_with(self, starter: SlotStarter) -> None:
        starter.start_worker(self)
