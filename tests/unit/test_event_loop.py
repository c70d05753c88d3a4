"""mcp_supervisor/event_loop.py: a coroutine runs on the loop the setting names."""

from __future__ import annotations

import asyncio
import os

import pytest
import uvloop

from mcp_supervisor import event_loop


async def _is_uvloop() -> bool:
    await asyncio.sleep(0)
    return isinstance(asyncio.get_running_loop(), uvloop.Loop)


@pytest.mark.parametrize(("name", "expected"), [("uvloop", True), ("asyncio", False)])
def test_run_uses_the_named_loop(name: str, expected: bool) -> None:
    assert event_loop.run(_is_uvloop(), name) is expected


def test_run_closes_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def keep() -> None:
        loops.append(asyncio.get_running_loop())

    event_loop.run(keep(), "uvloop")
    assert loops[0].is_closed()


async def _child_fds(*, pass_fds: tuple[int, ...] = ()) -> set[int]:
    """The fds a child holds at exec, other than its stdio (and the one `ls` opens for its listing)."""
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", "ls /proc/$$/fd", stdout=asyncio.subprocess.PIPE, pass_fds=pass_fds
    )
    out, _ = await process.communicate()
    return {int(name) for name in out.split()} - {0, 1, 2}


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
def test_a_child_gets_no_inheritable_fd_it_was_not_passed(name: str) -> None:
    """libuv hands every inheritable fd to a child (uvloop ignores close_fds): on the old code the child of a
    uvloop held the pipe below."""
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    os.set_inheritable(write_end, True)
    try:
        leaked = event_loop.run(_child_fds(), name)
        assert read_end not in leaked and write_end not in leaked, leaked
        passed = event_loop.run(_child_fds(pass_fds=(write_end,)), name)
        assert write_end in passed and read_end not in passed, passed
    finally:
        os.close(read_end)
        os.close(write_end)
