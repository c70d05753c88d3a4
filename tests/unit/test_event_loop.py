"""mcp_supervisor/event_loop.py: a coroutine runs on the loop the setting names."""

from __future__ import annotations

import asyncio

import pytest

from mcp_supervisor import event_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("name", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")])
def test_run_uses_the_named_loop(name: str, module: str) -> None:
    assert event_loop.run(_loop_module(), name) == module


def test_run_closes_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def keep() -> None:
        loops.append(asyncio.get_running_loop())

    event_loop.run(keep(), "uvloop")
    assert loops[0].is_closed()
