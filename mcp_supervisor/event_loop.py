"""The event loop the gateway and the workers run on: uvloop's (libuv, in C) or asyncio's own.

Once HTTP parsing and message encoding were in C, most of what the gateway and a worker spent per relayed call
was asyncio's loop turn and its Python transports (issue 27); uvloop runs both in C. `asyncio` stays selectable
(MCP_SUPERVISOR_EVENT_LOOP, Settings.event_loop) to compare, or to step around a difference in behaviour.

Where uvloop differs in ways this code relies on (checked for issue 27): a subprocess's `preexec_fn` runs right
after the fork, before libuv sets up the child's stdio and cwd (the sandbox stage in the worker does nothing
that depends on those); libuv does not close inheritable fds in a child (`close_fds` is ignored), so every fd a
backend must not get is kept non-inheritable (protocol/spawn.py `take_*`); and libuv reaps its own children on
SIGCHLD, so asyncio's child watchers play no part (worker/startup.py). The supervisor stays on asyncio: it is
off the per-call path, and it reaps every child itself on SIGCHLD (libuv's own reaping would compete with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop called `name` ("uvloop" or "asyncio"); None is asyncio's default, as asyncio.run."""
    if name == "uvloop":
        import uvloop  # only here: a process on asyncio's loop need not load it

        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """asyncio.run(main) on the loop called `name`."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
