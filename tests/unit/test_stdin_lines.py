"""gateway/frontends/stdin_lines.py: the stdio client's input read as lines from a pipe, a file or /dev/null, on
both event loops. On the old code (connect_read_pipe for every descriptor) a file or /dev/null made uvloop
abort() the process (exit 134) and asyncio's loop raise ValueError or wait forever."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator

import pytest

from mcp_supervisor import event_loop
from mcp_supervisor.gateway.frontends.stdin_lines import open_lines

INPUT = b'{"a": 1}\n{"b": 2}\ntail without newline'


def _pipe() -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, INPUT)
    os.close(write_end)
    return read_end


def _file() -> int:
    with tempfile.TemporaryFile() as file:
        file.write(INPUT)
        file.seek(0)
        return os.dup(file.fileno())


async def _read_all(fd: int, limit: int = 1024) -> tuple[list[bytes], bytes]:
    lines = await open_lines(fd, limit)
    read: list[bytes] = []
    while True:
        try:
            read.append(await asyncio.wait_for(lines.readuntil(b"\n"), 5))
        except asyncio.IncompleteReadError as end:
            return read, end.partial


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_name(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.mark.parametrize("opener", [_pipe, _file], ids=["pipe", "file"])
def test_lines_and_the_tail(loop_name: str, opener: Callable[[], int]) -> None:
    read, tail = event_loop.run(_read_all(opener()), loop_name)
    assert read == [b'{"a": 1}\n', b'{"b": 2}\n']
    assert tail == b"tail without newline"


def test_dev_null_is_an_empty_input(loop_name: str) -> None:
    assert event_loop.run(_read_all(os.open(os.devnull, os.O_RDONLY)), loop_name) == ([], b"")


def test_a_line_over_the_limit_in_a_file(loop_name: str) -> None:
    with pytest.raises(asyncio.LimitOverrunError):
        event_loop.run(_read_all(_file(), limit=5), loop_name)
