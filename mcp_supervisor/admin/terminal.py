"""The admin web terminal: a registry of PTY shells (`terminal_pty.Terminal`) with a cap and an idle reaper.

At most `max_terminals` run at once; one with no input and no output for `idle_timeout_s` is closed (its
subscribers see the end of the output and the exit code). `close_all()` is for the gateway's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from mcp_supervisor.admin.terminal_pty import Terminal, TerminalError, default_shell
from mcp_supervisor.tasks import BackgroundTasks

__all__ = ["DEFAULT_MAX_TERMINALS", "Terminal", "TerminalError", "TerminalLimitError", "TerminalManager"]

log = logging.getLogger("mcp_supervisor.admin.terminal")

DEFAULT_MAX_TERMINALS = 8


class TerminalLimitError(TerminalError):
    """Too many terminals are open."""


class TerminalManager:
    def __init__(
        self, idle_timeout_s: float, shell: str | None = None, max_terminals: int = DEFAULT_MAX_TERMINALS
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.shell = shell or default_shell()
        self.max_terminals = max_terminals
        self._terminals: dict[str, Terminal] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = BackgroundTasks()

    def start(self, cols: int = 80, rows: int = 24) -> Terminal:
        if len(self._terminals) >= self.max_terminals:
            raise TerminalLimitError(
                f"{len(self._terminals)} terminals are open, the most allowed; close one before starting another."
            )
        try:
            terminal = Terminal(secrets.token_urlsafe(12), self.shell, cols, rows, self._forget)
        except OSError as exc:
            raise TerminalError(f"The shell {self.shell} could not be started: {exc}.") from exc
        self._terminals[terminal.id] = terminal
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())
        log.info("terminal %s started (pid %d, %s)", terminal.id, terminal.pid, self.shell)
        return terminal

    def get(self, term_id: str) -> Terminal | None:
        return self._terminals.get(term_id)

    def list(self) -> list[dict[str, Any]]:
        return [terminal.info() for terminal in self._terminals.values()]

    async def close(self, term_id: str) -> bool:
        terminal = self._terminals.get(term_id)
        if terminal is None:
            return False
        await terminal.close()
        return True

    async def close_all(self) -> None:
        """Close every terminal and stop the idle reaper (gateway shutdown)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        await asyncio.gather(*(terminal.close() for terminal in list(self._terminals.values())))
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _forget(self, terminal: Terminal) -> None:
        self._terminals.pop(terminal.id, None)
        if terminal.sweep_task is not None:  # close_all() waits for it too
            self._closing.hold(terminal.sweep_task)

    async def _reap_idle(self) -> None:
        interval = min(max(self.idle_timeout_s / 5, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            for terminal in list(self._terminals.values()):
                if not terminal.closing and terminal.idle_for() >= self.idle_timeout_s:
                    log.info("terminal %s idle for %.0f s; closing it", terminal.id, terminal.idle_for())
                    self._closing.spawn(terminal.close())
