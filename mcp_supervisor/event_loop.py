"""The event loop the gateway and the workers run on: uvloop's (libuv, in C) or asyncio's own.

Once HTTP parsing and message encoding were in C, most of what the gateway and a worker spent per relayed call
was asyncio's loop turn and its Python transports (issue 27); uvloop runs both in C. `asyncio` stays selectable
(MCP_SUPERVISOR_EVENT_LOOP, Settings.event_loop) to compare, or to step around a difference in behaviour.

Where uvloop differs in ways this code relies on (checked for issue 27): libuv passes every inheritable fd on to
a child (uvloop ignores `close_fds`), so `Loop` below marks the others close-on-exec before each spawn, which is
what `close_fds=True` guarantees on asyncio's loop; a subprocess's `preexec_fn` runs right after the fork,
before libuv sets up the child's stdio and cwd (the sandbox stage in the worker depends on neither); libuv reaps
its own children on SIGCHLD, so asyncio's child watchers play no part (worker/startup.py). The supervisor stays
on asyncio: it is off the per-call path, and it reaps every child itself on SIGCHLD (libuv's reaping would
compete with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
P = TypeVar("P", bound=asyncio.BaseProtocol)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop called `name` ("uvloop" or "asyncio"); None is asyncio's default, as asyncio.run."""
    if name == "uvloop":
        return _uvloop_class()
    return None


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """asyncio.run(main) on the loop called `name`."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def close_on_exec_except(keep: Iterable[int]) -> None:
    """Mark every fd but stdio and `keep` close-on-exec: what `close_fds=True` does in the child, done before
    the fork (a backend must get no fd of its worker's it was not meant to: the worker's own pipes, sockets)."""
    kept = {0, 1, 2, *keep}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in kept:
            with contextlib.suppress(OSError):  # the listing's own fd, closed by now
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)


@functools.cache
def _uvloop_class() -> Callable[[], asyncio.AbstractEventLoop]:
    import uvloop  # only here: a process on asyncio's loop need not load it

    class Loop(uvloop.Loop):
        """uvloop's loop, honouring `close_fds` (its default True included) as asyncio's does."""

        async def subprocess_exec(  # type: ignore[override]
            self, protocol_factory: Callable[[], P], *args: Any, **kwargs: Any
        ) -> tuple[asyncio.BaseProtocol, P]:
            _honour_close_fds(kwargs)
            return await super().subprocess_exec(protocol_factory, *args, **kwargs)

        async def subprocess_shell(  # type: ignore[override]
            self, protocol_factory: Callable[[], P], cmd: bytes | str, **kwargs: Any
        ) -> tuple[asyncio.BaseProtocol, P]:
            _honour_close_fds(kwargs)
            return await super().subprocess_shell(protocol_factory, cmd, **kwargs)

    return Loop


def _honour_close_fds(kwargs: dict[str, Any]) -> None:
    if kwargs.get("close_fds", True):  # asyncio's default, which uvloop ignores
        close_on_exec_except(kwargs.get("pass_fds", ()))
