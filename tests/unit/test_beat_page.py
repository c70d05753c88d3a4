"""The heartbeat page: the worker's writes are what the supervisor reads, through the handoff memfd."""

from __future__ import annotations

import os

import pytest

from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.protocol import socket_auth
from mcp_supervisor.protocol.beat_page import PAGE_SIZE, BeatPage
from mcp_supervisor.protocol.spawn import (
    HANDOFF_FD_ENV,
    WORKER_SPEC_OFFSET,
    GatewaySpec,
    WorkerSpec,
    take_gateway_spec,
    take_worker_handoff,
    write_handoff,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd is Linux only")


def spec() -> WorkerSpec:
    return WorkerSpec(
        server=ServerEntry(key="k", type="stdio", command="true"),
        generation=3,
        runtime_dir="/tmp",
        credentials=socket_auth.derive(b"x" * 32, socket_auth.worker_user("k", 3)),
    )


def open_fds() -> set[str]:
    return {
        os.readlink(f"/proc/self/fd/{fd}")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    }


def test_the_workers_beats_are_what_the_supervisor_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    fd = write_handoff(spec(), WORKER_SPEC_OFFSET)
    supervisor = BeatPage(fd, writable=False)
    assert supervisor.read() == (0, 0, 0)
    monkeypatch.setenv(HANDOFF_FD_ENV, str(fd))
    taken, worker = take_worker_handoff()  # reads the spec after the page, maps the page, closes the fd
    assert taken == spec() and worker is not None
    assert not any("mcp-supervisor-handoff" in target for target in open_fds())  # no fd kept by either mapping
    worker.beat(in_flight=2, refused_replies=7)
    worker.beat(in_flight=1, refused_replies=7)
    assert supervisor.read() == (2, 1, 7)
    worker.close()
    supervisor.close()
    supervisor.close()  # idempotent


def test_a_handoff_without_a_page_is_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    fd = write_handoff(spec())
    monkeypatch.setenv(HANDOFF_FD_ENV, str(fd))
    taken, page = take_worker_handoff()
    assert taken == spec() and page is None


def test_the_gateways_handoff_has_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = GatewaySpec(generation=1, instance_key="00")
    fd = write_handoff(gateway)
    assert os.fstat(fd).st_size < PAGE_SIZE
    monkeypatch.setenv(HANDOFF_FD_ENV, str(fd))
    assert take_gateway_spec() == gateway


def test_a_report_is_read_as_written_and_cut_to_the_page() -> None:
    fd = write_handoff(spec(), WORKER_SPEC_OFFSET)
    worker, supervisor = BeatPage(fd, writable=True), BeatPage(fd, writable=False)
    os.close(fd)
    assert supervisor.read_report() is None  # starting: nothing reported yet
    worker.report("ready", "20 tools, 0 resources", "legacy", "2025-11-25")
    assert supervisor.read_report() == ("ready", "20 tools, 0 resources", "legacy", "2025-11-25")
    worker.report("failed", "é" * PAGE_SIZE)  # longer than the page: cut (at a byte, decoded with replacement)
    report = supervisor.read_report()
    assert report is not None and report.state == "failed" and (report.era, report.protocol_version) == ("", "")
    assert report.detail.startswith("é" * 100) and len(report.detail.encode()) <= PAGE_SIZE
    worker.beat(in_flight=3, refused_replies=1)
    assert supervisor.read()[1:] == (3, 1) and supervisor.read_report() == report  # apart from the beats
    worker.close()
    supervisor.close()


def test_a_version_string_cannot_spill_into_the_detail() -> None:
    """The protocol version is the backend's own text: delimited by length, whatever it contains."""
    fd = write_handoff(spec(), WORKER_SPEC_OFFSET)
    worker, supervisor = BeatPage(fd, writable=True), BeatPage(fd, writable=False)
    os.close(fd)
    worker.report("ready", "1 tool", "legacy", "2025-11-25\x1fready\x00" + "v" * 500)
    report = supervisor.read_report()
    assert report is not None and report.detail == "1 tool" and report.era == "legacy"
    assert report.protocol_version == ("2025-11-25\x1fready\x00" + "v" * 500)[:64]
    worker.close()
    supervisor.close()
