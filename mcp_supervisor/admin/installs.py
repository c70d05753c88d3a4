"""Running a server's `installCommands` from the admin UI, with live output on the admin event stream.

As in mcp-proxy-server: the target is `installDirectory` (relative to the tools folder) or
`<tools folder>/<key>`; when it exists nothing runs. Otherwise the commands run one by one with `/bin/sh -c` in
the target's parent directory and the first non-zero exit stops the install. They run in the sandbox of the
backend they install (`install_sandbox.py`): writable is only the install directory, besides its HOME and /tmp.
Unlike mcp-proxy-server, the target must resolve inside the tools folder, each command runs in its own process
group (a cancel kills the whole tree), and output is streamed line by line.

Events (docs/admin.md): `install_info {serverKey, message}`, `install_stdout|install_stderr {serverKey, output}`,
`install_error {serverKey, error, code?}`, `install_complete {serverKey, message, exitCode}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_supervisor.admin.events import EventHub
from mcp_supervisor.admin.install_sandbox import InstallRun, InstallSandbox, InstallSandboxError
from mcp_supervisor.config.loader import SERVER_KEY_PATTERN
from mcp_supervisor.config.settings import without_gateway_secrets
from mcp_supervisor.errors import BackendError, SupervisorError
from mcp_supervisor.protocol.exit_codes import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_NOT_STARTED
from mcp_supervisor.system.netns import exec_planned

log = logging.getLogger("mcp_supervisor.admin.installs")

OUTPUT_LINES = 200  # kept per install for GET /admin/installs
MAX_LINE_CHARS = 4096  # longer lines are cut (progress bars without newlines)
_MAX_LINE_BYTES = MAX_LINE_CHARS * 4
KILL_GRACE_S = 3.0  # SIGTERM to the process group, then SIGKILL
PIPE_DRAIN_S = 5.0  # after a command exits, how long its pipes may stay open (an escaped grandchild)


class InstallError(SupervisorError):
    """An install cannot start: bad key, target outside the tools folder, not stdio, no installCommands."""


class InstallConflict(InstallError):
    """An install of that key is already running (HTTP 409)."""


@dataclass
class _Install:
    key: str
    target: Path
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    exit_code: int | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False


class InstallManager:
    def __init__(
        self,
        hub: EventHub,
        tools_folder: Path,
        on_finished: Callable[[str, int], None] | None = None,
        withheld: Callable[[], frozenset[str]] = frozenset,
        sandbox: InstallSandbox | None = None,
    ) -> None:
        """`withheld`: names of further variables install commands must not inherit (remote backends' OAuth
        client secrets), asked at each command, since the config may have changed. `sandbox`: where the commands
        run (the sandbox of the backend they install); None runs them unsandboxed, in the proxy's environment
        minus the tree's secrets (the admin always passes one; SANDBOX=off makes it run them unsandboxed too)."""
        self.hub = hub
        self.tools_folder = tools_folder
        self.on_finished = on_finished
        self._withheld = withheld
        self._sandbox = sandbox
        self._installs: dict[str, _Install] = {}  # the last install of each key, running or finished
        self._closing = False

    def _environment(self) -> dict[str, str]:
        """Install commands are third-party code too: the proxy's environment minus every secret of the tree."""
        withheld = self._withheld()
        return {name: value for name, value in without_gateway_secrets(os.environ).items() if name not in withheld}

    def target_dir(self, key: str, entry: Mapping[str, Any]) -> Path:
        if not SERVER_KEY_PATTERN.fullmatch(key):
            raise InstallError(f"Server key {key!r} is not a valid key, so it cannot name an install directory.")
        root = self.tools_folder.resolve()
        configured = entry.get("installDirectory")
        if configured is not None and not isinstance(configured, str):
            raise InstallError(f'Server "{key}": "installDirectory" must be a string.')
        target = (root / configured) if configured else (root / key)  # an absolute path replaces root
        resolved = target.resolve()  # follows symlinks, including a final one
        if resolved == root or not resolved.is_relative_to(root):
            raise InstallError(
                f'Server "{key}": the install directory {str(target)!r} resolves to {str(resolved)!r}, '
                f"which is not inside the tools folder {str(root)!r}."
            )
        return resolved

    def start(self, key: str, entry: Mapping[str, Any]) -> str:
        target = self.target_dir(key, entry)
        running = self._installs.get(key)
        if running is not None and running.finished_at is None:
            raise InstallConflict(f'An install of server "{key}" is already running.')
        if _transport(entry) != "stdio":
            raise InstallError(f'Server "{key}" is not a stdio server, so it has nothing to install.')
        commands = entry.get("installCommands")
        if not commands:
            raise InstallError(f'Server "{key}" has no "installCommands".')
        if not isinstance(commands, list | tuple) or not all(isinstance(c, str) and c.strip() for c in commands):
            raise InstallError(f'Server "{key}": "installCommands" must be a list of non-empty strings.')
        install = _Install(key, target)
        install.task = asyncio.get_running_loop().create_task(self._run(install, tuple(commands), dict(entry)))
        self._installs[key] = install
        if target.exists():
            return f'Server "{key}" is already installed in {target}.'
        return f'Installing server "{key}" into {target}; progress follows on the event stream.'

    async def cancel(self, key: str) -> bool:
        """Cancel a running install of `key` (its process group is killed); False when none runs."""
        install = self._installs.get(key)
        if install is None or install.task is None or install.task.done():
            return False
        if not install.cancel_requested:  # once: a second cancel would interrupt the kill in progress
            install.cancel_requested = True
            install.task.cancel()
        await asyncio.wait({install.task})  # neither raises nor cancels the install if our caller goes away
        if install.finished_at is None:  # cancelled before its first step: _run never ran
            self._cancelled(install)
        return True

    def list(self) -> list[dict[str, Any]]:
        return [
            {
                "serverKey": install.key,
                "running": install.finished_at is None,
                "exitCode": install.exit_code,
                "startedAt": install.started_at,
                "finishedAt": install.finished_at,
                "output": list(install.output),
            }
            for install in self._installs.values()
        ]

    async def close(self) -> None:
        """Cancel every running install (gateway shutdown; `on_finished` is not called); returns when their
        processes are gone."""
        self._closing = True
        for key in list(self._installs):
            await self.cancel(key)

    # The install task.

    def _publish(self, event: str, install: _Install, **data: Any) -> None:
        self.hub.publish(event, {"serverKey": install.key, **data})

    async def _run(self, install: _Install, commands: tuple[str, ...], entry: Mapping[str, Any]) -> None:
        exit_code = 0
        run: InstallRun | None = None
        try:
            if install.target.exists():
                self._publish("install_info", install, message=f"{install.target} already exists; nothing to run.")
                self._finish(install, 0, "already installed")
                return
            install.target.parent.mkdir(parents=True, exist_ok=True)
            if self._sandbox is not None:
                run = self._sandbox.prepare(install.key, entry, install.target)
                if run.method != "none":
                    message = f"Sandbox: {run.method}; only {install.target} is written to (besides HOME and /tmp)."
                    self._publish("install_info", install, message=message)
            for command in commands:
                exit_code = await self._run_command(install, command, run)
                if exit_code != 0:
                    break
            if run is not None:
                (run.commit if exit_code == 0 else run.discard)()
        except asyncio.CancelledError:
            # Cancelled on purpose by cancel()/close(): this task is ours alone, so the cancel ends here.
            if install.process is not None:
                await _kill_group(install.process)
            if run is not None:
                run.discard()
            self._cancelled(install)
            return
        except (OSError, InstallSandboxError) as exc:
            if run is not None:
                run.discard()
            self._publish("install_error", install, error=f'The install of server "{install.key}" failed: {exc}.')
            exit_code = EXIT_FAILURE
        message = "install finished" if exit_code == 0 else f"install failed with exit code {exit_code}"
        self._finish(install, exit_code, message)

    async def _run_command(self, install: _Install, command: str, run: InstallRun | None) -> int:
        self._publish("install_info", install, message=f"Running: {command}")
        setup = None
        if run is None:
            argv, cwd, env = ["/bin/sh", "-c", command], str(install.target.parent), self._environment()
        else:
            plan = run.plan_of(command)
            argv, cwd, env, setup = plan.argv, plan.cwd or str(install.target.parent), plan.env, plan.network
        try:
            # The backend's own network policy applies to its install too (a namespace of its own by default).
            process, network = await exec_planned(
                argv,
                setup,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a cancel kills the whole tree
            )
        except (OSError, BackendError) as exc:
            error = f"The command {command!r} could not be started: {exc}."
            self._publish("install_error", install, error=error, code=EXIT_NOT_STARTED)
            return EXIT_NOT_STARTED
        install.process = process
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(self._pump(install, process.stdout, "install_stdout")),
            asyncio.create_task(self._pump(install, process.stderr, "install_stderr")),
        ]
        try:
            code = await process.wait()
            _signal_group(process.pid, signal.SIGKILL)  # leave nothing behind that still holds the pipes
            await asyncio.wait(pumps, timeout=PIPE_DRAIN_S)
        finally:
            for pump in pumps:
                pump.cancel()
            if network is not None:
                network.close()
        install.process = None
        if code != 0:
            error = f"The command {command!r} exited with code {code}."
            self._publish("install_error", install, error=error, code=code)
        return code

    async def _pump(self, install: _Install, stream: asyncio.StreamReader, event: str) -> None:
        pending = bytearray()
        discarding = False  # inside an over-long line whose start was already published
        while chunk := await stream.read(65536):
            pending += chunk
            while (newline := pending.find(b"\n")) >= 0:
                line = bytes(pending[:newline])
                del pending[: newline + 1]
                if not discarding:
                    self._line(install, event, line)
                discarding = False
            if len(pending) > _MAX_LINE_BYTES:
                if not discarding:
                    self._line(install, event, bytes(pending))
                discarding = True
                pending.clear()
        if pending and not discarding:
            self._line(install, event, bytes(pending))

    def _line(self, install: _Install, event: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")[:MAX_LINE_CHARS]
        install.output.append(line)
        self._publish(event, install, output=line)

    def _cancelled(self, install: _Install) -> None:
        error = f'The install of server "{install.key}" was cancelled.'
        self._publish("install_error", install, error=error, code="cancelled")
        self._finish(install, EXIT_INTERRUPTED, "install cancelled")

    def _finish(self, install: _Install, exit_code: int, message: str) -> None:
        install.exit_code = exit_code
        install.finished_at = time.time()
        self._publish("install_complete", install, message=message, exitCode=exit_code)
        log.info('install of server "%s" finished: %s (exit code %d)', install.key, message, exit_code)
        if self.on_finished is not None and not self._closing:
            try:
                self.on_finished(install.key, exit_code)
            except Exception:
                log.exception('on_finished failed after the install of server "%s"', install.key)


def _transport(entry: Mapping[str, Any]) -> str:
    """The entry's transport as the loader infers it: an explicit type, else a command means stdio."""
    raw = entry.get("type", entry.get("transport"))
    if raw is None:
        return "stdio" if entry.get("command") else "remote"
    return str(raw).strip().lower()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the command's process group, SIGKILL after KILL_GRACE_S; the leader is reaped."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), KILL_GRACE_S)
    _signal_group(process.pid, signal.SIGKILL)  # the leader's survivors too
    await process.wait()
