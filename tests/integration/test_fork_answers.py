"""The supervisor's handling of the zygote's answers (`Children.forked`), with real child processes.

A fork's answer (the worker's pid) and the worker's own ready report wait in line for the same loop: on a busy
machine the report can be handled first. The worker must then be kept, not killed as unwanted (a hundred
workers were, once, and sat RUNNING without a pid, never linked).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from mcp_supervisor.config.models import ServerEntry, Supervision
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.protocol.endpoints import RUNTIME_DIR_ENV
from mcp_supervisor.supervisor.main import Supervisor
from mcp_supervisor.supervisor.slots import RUNNING, STARTING, STOPPED, WorkerSlot, policy_for


def _supervisor(tmp_path: Path, slot: WorkerSlot, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(tmp_path / "run"))
    monkeypatch.setenv("MCP_SUPERVISOR_LOG_DIR", str(tmp_path))
    supervisor = Supervisor(Settings(config_dir=tmp_path, state_dir=tmp_path / "state"))  # no I/O
    supervisor.children.workers = {slot.key: slot}
    return supervisor


def _slot() -> WorkerSlot:
    options = Supervision()
    entry = ServerEntry(key="k", type="stdio", command="true")
    slot = WorkerSlot("k", options, policy_for(options), entry=entry)
    slot.generation = 1
    return slot


@pytest.mark.parametrize("state", [STARTING, RUNNING])
def test_the_answer_registers_the_worker_whether_or_not_its_ready_came_first(
    tmp_path: Path, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:

        async def scenario() -> None:
            slot = _slot()
            slot.state = state
            supervisor = _supervisor(tmp_path, slot, monkeypatch)
            read_fd, write_fd = os.pipe()
            os.close(write_fd)
            supervisor.children.forked(slot, 1, read_fd, worker.pid)
            assert slot.child is not None and slot.child.pid == worker.pid
            assert supervisor.children.by_pid == {worker.pid: slot}
            assert slot.state == state  # a ready worker stays RUNNING
            await asyncio.sleep(0.2)
            assert worker.poll() is None  # and alive

        asyncio.run(scenario())
    finally:
        worker.kill()
        worker.wait()


def test_an_answer_for_a_stopped_slot_kills_that_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:

        async def scenario() -> None:
            slot = _slot()
            slot.state = STOPPED  # stopped while its fork was pending
            supervisor = _supervisor(tmp_path, slot, monkeypatch)
            read_fd, write_fd = os.pipe()
            os.close(write_fd)
            supervisor.children.forked(slot, 1, read_fd, worker.pid)
            assert supervisor.children.by_pid == {} and slot.child is None

        asyncio.run(scenario())
        assert worker.wait(timeout=10) == -9
    finally:
        worker.kill()
        worker.wait()
