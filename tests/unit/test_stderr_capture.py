"""The supervisor's stderr capture (supervisor/stderr.py, stderr_limits.py): what a child writes costs the
supervisor a bounded amount, and what reaches its log is attributed and printable."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from mcp_supervisor.supervisor import stderr as capture_module
from mcp_supervisor.supervisor.stderr import LINE_LIMIT, StderrCapture, open_captures
from mcp_supervisor.supervisor.stderr_limits import LineCutter, TokenBucket
from mcp_supervisor.system.logs import configure_logging, escape_controls


def keep_all() -> bool:
    return True


def test_a_line_that_never_ends_is_kept_up_to_the_limit_and_the_rest_counted() -> None:
    cutter = LineCutter(1000)
    kept: list[tuple[bytes, bool]] = []
    for _ in range(50):
        lines, dropped = cutter.feed(b"x" * 300, keep_all)
        kept += lines
        assert dropped == 0
        assert cutter._size <= 1000  # never more than one line's worth held
    assert kept == [(b"x" * 1000, True)]  # said as soon as it reached the limit
    lines, _ = cutter.feed(b"yy\nnext\npartial", keep_all)
    assert lines == [(b"next", False)] and cutter.cut_bytes == 50 * 300 - 1000 + 2
    assert cutter.finish() == (b"partial", False) and cutter.finish() is None


def test_a_line_completed_over_the_limit_is_cut_there() -> None:
    cutter = LineCutter(10)
    assert cutter.feed(b"12345", keep_all) == ([], 0)
    assert cutter.feed(b"6789abcdef\n", keep_all) == ([(b"123456789a", True)], 0)
    assert cutter.cut_bytes == 5


def test_a_hundred_megabytes_without_a_newline_cost_no_re_copying() -> None:
    cutter = LineCutter(LINE_LIMIT)
    chunk = b"x" * 65536
    started = time.process_time()
    for _ in range(1600):
        cutter.feed(chunk, keep_all)
    assert time.process_time() - started < 1.0  # main re-joined the whole line on every read: minutes
    assert cutter.cut_bytes == 1600 * 65536 - LINE_LIMIT


def test_lines_past_the_budget_are_counted_in_bulk() -> None:
    cutter = LineCutter(100)
    budget = iter([True, True])
    lines, dropped = cutter.feed(b"par", keep_all)
    lines, dropped = cutter.feed(b"t1\nl2\nl3\nl4\nl5\nrest", lambda: next(budget, False))
    assert lines == [(b"part1", False), (b"l2", False)] and dropped == 3
    assert cutter.finish() == (b"rest", False)


def test_the_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(20)) == 5
    now[0] += 0.3
    assert sum(bucket.take() for _ in range(20)) == 3
    now[0] += 100
    assert sum(bucket.take() for _ in range(20)) == 5
    bucket.charge(25)
    assert bucket.wait_s() == pytest.approx(2.5)  # 25 tokens of debt at 10 a second


def test_control_characters_are_written_out() -> None:
    assert escape_controls("plain\ttext ünïcode") == "plain\ttext ünïcode"
    assert escape_controls("\x1b[31mred\r\n\x00\x7f\u009b1m\u202eevil") == (
        "\\x1b[31mred\\r\\n\\x00\\x7f\\x9b1m\\u202eevil"
    )


async def captured(tmp_path: Path, data: bytes, source: str, key: str = "attacker") -> StderrCapture:
    """A capture of a pipe that `data` was written to and closed: read until EOF."""
    read_fd, write_fd = os.pipe()
    capture = StderrCapture(key, read_fd, tmp_path / f"{key}.log", source)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    writer = loop.run_in_executor(None, _write_all, write_fd, data)
    for _ in range(500):
        if capture._fd < 0:
            break
        await asyncio.sleep(0.01)
    await writer
    assert capture._fd < 0, "the capture did not reach EOF"
    return capture


def _write_all(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


FORGED = (
    b"2026-01-01 00:00:00,000 worker[victim] ERROR forged\n"
    b"INFO:  forged\n"
    b"\x1b[2K\r2026-01-01 00:00:00,000 gateway ERROR forged\n"
    b"last \x1b]0;title\x07"
)


@pytest.mark.anyio
async def test_every_backend_line_is_prefixed_and_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = await captured(tmp_path, FORGED, "backend")
    echoed = capsys.readouterr().err.splitlines()
    assert echoed == [
        "attacker| 2026-01-01 00:00:00,000 worker[victim] ERROR forged",
        "attacker| INFO:  forged",
        "attacker| \\x1b[2K\\r2026-01-01 00:00:00,000 gateway ERROR forged",
        "attacker| last \\x1b]0;title\\x07",
    ]
    assert capture.last_line == "last \\x1b]0;title\\x07"
    assert "\x1b" not in (tmp_path / "attacker.log").read_text()


@pytest.mark.anyio
async def test_a_workers_own_lines_pass_and_nothing_else_passes_for_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = b"2026-12-07 10:00:00,123 worker[attacker] INFO Backend attacker is ready.\n"
    capture = await captured(tmp_path, own + b"Traceback (most recent call last):\n" + FORGED, "worker")
    echoed = capsys.readouterr().err.splitlines()
    assert echoed[0] == own.decode().strip()  # its own header, its own key: as it is
    assert all(line.startswith("worker[attacker]| ") for line in echoed[1:]), echoed  # anything else: marked
    assert capture.last_line == "last \\x1b]0;title\\x07"


@pytest.mark.anyio
async def test_the_echo_is_rate_limited_and_what_it_left_out_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    lines = 5000
    with caplog.at_level(logging.WARNING, "mcp_supervisor.supervisor"):
        capture = await captured(tmp_path, b"".join(b"line %d\n" % i for i in range(lines)), "backend")
    echoed = capsys.readouterr().err.splitlines()
    assert len(echoed) < 300 and echoed[0] == "attacker| line 0"
    reports = [r.getMessage() for r in caplog.records if "not echoed" in r.getMessage()]
    assert reports == [f"worker[attacker]: {lines - len(echoed)} backend stderr lines not echoed (rate limit)."]
    assert capture.last_line == f"line {lines - 1}"  # the ring and `status` still see every kept line
    assert len((tmp_path / "attacker.log").read_text().splitlines()) == lines


@pytest.mark.anyio
async def test_an_endless_line_is_cut_in_the_file_and_the_echo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "mcp_supervisor.supervisor"):
        await captured(tmp_path, b"y" * (3 * LINE_LIMIT) + b"\nafter\n", "backend")
    echoed = capsys.readouterr().err.splitlines()
    assert len(echoed) == 2 and len(echoed[0]) < 1200 and echoed[1] == "attacker| after", echoed
    assert echoed[0].endswith("more characters in its log file]")
    written = (tmp_path / "attacker.log").read_text().splitlines()
    assert written[0] == "y" * LINE_LIMIT + f" [cut at {LINE_LIMIT} bytes]" and written[1] == "after"
    assert any(f"{2 * LINE_LIMIT} bytes of backend stderr lines over" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_workers_two_captures_share_one_file(tmp_path: Path) -> None:
    worker_read, worker_write = os.pipe()
    backend_read, backend_write = os.pipe()
    worker, backend = open_captures("k", worker_read, backend_read, tmp_path / "k.log", "worker")
    assert backend is not None
    os.write(backend_write, b"from the backend\n")
    os.write(worker_write, b"2026-12-07 10:00:00,123 worker[k] INFO from the worker\n")
    for fd in (worker_write, backend_write):
        os.close(fd)
    for _ in range(200):
        if worker._fd < 0 and backend._fd < 0:
            break
        await asyncio.sleep(0.01)
    assert sorted((tmp_path / "k.log").read_text().splitlines()) == [
        "2026-12-07 10:00:00,123 worker[k] INFO from the worker",
        "from the backend",
    ]


@pytest.mark.anyio
async def test_past_its_read_rate_a_pipe_is_left_alone_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = capture_module.Limits(echo_rate=1, echo_burst=1, read_rate=1024 * 1024, read_burst=65536)
    monkeypatch.setitem(capture_module.LIMITS, "backend", limits)
    started = time.monotonic()
    await captured(tmp_path, b"z" * (512 * 1024), "backend")
    assert time.monotonic() - started > 0.3  # 512 KiB at 1 MiB/s after a 64 KiB burst: ~0.44 s


def test_our_own_log_messages_are_one_printable_line(capsys: pytest.CaptureFixture[str]) -> None:
    """What a worker logs may quote its backend: a newline in it cannot start a line with the worker's header."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        configure_logging("INFO", "%(asctime)s worker[k] %(levelname)s %(message)s")
        quoted = "bad reply\n2026-01-01 00:00:00,000 worker[k] ERROR forged\x1b[31m"
        logging.getLogger("mcp_supervisor.worker").warning("The backend said: %s", quoted)
    finally:
        root.handlers[:] = saved
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("bad reply\\n2026-01-01 00:00:00,000 worker[k] ERROR forged\\x1b[31m")
