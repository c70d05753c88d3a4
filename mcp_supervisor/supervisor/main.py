"""The supervisor process: the root of the tree.

It spawns the gateway and one worker per active backend, reaps every exit (SIGCHLD), restarts crashed
children under the restart policy, replaces hung (no heartbeat) and oversized (RSS limit) workers, reloads
the config on file change, command or SIGHUP, and on SIGTERM/SIGINT stops everything and sweeps the tree so
no backend, worker or grandchild is left behind. It is never on the data path.

The Supervisor wires its collaborators and runs start-up, the loop and shut-down; each has one job: the host
(host.py), the config files (config_files.py), the slot state machine (children.py, starting a child in
child_start.py), the children's reports (reports.py), the watchdog and sampler (watchdog.py), the zygote
(zygote.py) and the control socket (control.py). The process entry is process_entry.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from mcp_supervisor.config.clients import CLIENTS_FILE
from mcp_supervisor.config.diff import diff_servers
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE
from mcp_supervisor.config.models import ServerEntry
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.protocol.messages import (
    ClientsUpdate,
    CommandResult,
    ConfigStatus,
    ControlCommand,
    Snapshot,
    ToolConfigUpdate,
)
from mcp_supervisor.supervisor import reaper
from mcp_supervisor.supervisor.backend_launch import BackendLauncher, cleanup_cgroup
from mcp_supervisor.supervisor.children import Children
from mcp_supervisor.supervisor.config_files import ConfigFiles
from mcp_supervisor.supervisor.control import ControlServer
from mcp_supervisor.supervisor.helpers import HelperProcesses
from mcp_supervisor.supervisor.host import Host
from mcp_supervisor.supervisor.reports import Reports
from mcp_supervisor.supervisor.slots import FATAL, STOPPED, Slot, policy_for
from mcp_supervisor.supervisor.stderr import StderrCapture
from mcp_supervisor.supervisor.watchdog import Watchdog
from mcp_supervisor.supervisor.watcher import watch_config
from mcp_supervisor.supervisor.zygote import Zygote, fork_unsupported
from mcp_supervisor.tasks import BackgroundTasks

log = logging.getLogger("mcp_supervisor.supervisor")


class Supervisor:
    def __init__(self, settings: Settings, stdio: bool = False) -> None:
        """No I/O here: stdio, the runtime dir, its lock and the instance cgroup are taken in start-up."""
        self.settings = settings
        self.host = Host(settings.config_dir, stdio)
        self.servers: dict[str, ServerEntry] = {}
        self.files = ConfigFiles(settings.config_dir, self._broadcast)
        self.control: ControlServer | None = None
        self._stopping = asyncio.Event()
        self._exit_code = 0
        self._tasks = BackgroundTasks()
        # Package fetches and cache copies before npx/uvx backends start (supervisor/package_cache.py).
        self._helpers = HelperProcesses()
        self._zygote_stderr: StderrCapture | None = None
        self.zygote = Zygote(policy_for(settings.supervision), self._zygote_output)
        unsupported = fork_unsupported()
        if settings.worker_spawn == "spawn":
            self.zygote.disable("WORKER_SPAWN=spawn")
        elif unsupported:
            self.zygote.disable(unsupported)
        self.children = Children(
            settings,
            self.host,
            self.zygote,
            self._helpers,
            self._stopping,
            self._finish,
            self._reap,
            self._publish,
            self._background,
            servers=lambda: self.servers,
            worker_fds=lambda: self.reports.worker_fds(),
        )
        self.reports = Reports(self.children.gateway, lambda: self.children.workers, self._publish)
        self.watchdog = Watchdog(
            self.children.all,
            self.zygote.check,
            self._publish,
            self.children.kill_unhealthy,
            self._background,
            sample_interval_s=settings.sample_interval_s,
        )

    # ------------------------------------------------------------------ start-up, loop, shut-down

    async def run(self) -> int:
        await self._start_up()
        loops = [
            self.watchdog.watch(),
            self.watchdog.sample(),
            watch_config(self.settings.config_dir, self._file_changed),
        ]
        running = [asyncio.ensure_future(work) for work in loops]
        await self._stopping.wait()  # a signal, `mcp-supervisor stop`, or a gateway that cannot go on
        for task in running:
            task.cancel()
        await self._shutdown()
        return self._exit_code

    async def _start_up(self) -> None:
        # Broken files at start are fatal (exit 2 with the reason); on reload they keep the running config.
        self.servers = self.files.load()
        self.host.take_over()
        launcher = BackendLauncher(self.settings, self.host.runtime_dir, self.host.log_dir, self.host.cgroups)
        self.children.starter.launcher = launcher
        self.host.become_root()
        self._handle_signals()
        self.host.write_cli_secret()
        self._open_control()
        # The workers' slots exist before the gateway does: its first snapshot must name every backend it is to
        # wait for. Made after the zygote, a fast gateway's snapshot named none, and a client's first tools/list
        # was answered at once, empty.
        slots = self.children.starting_slots(self.servers)
        self.children.spawn(self.children.gateway)
        self.reports.open()
        self.zygote.start(self.children.starter.child_env(), self.reports.worker_fds())
        await self.zygote.wait_ready()
        await self.children.spawn_many(slots)
        where = "stdio" if self.host.stdio_fds else f"http://{self.settings.host}:{self.settings.port}/mcp"
        log.info("Supervising %d backend(s); gateway on %s", len(self.servers), where)

    def _handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        self._reap()  # whatever exited before the handler was there
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _open_control(self) -> None:
        self.control = ControlServer(
            self.host.endpoints, self.host.instance_key, self.snapshot, self.reports.on_report, self._on_command
        )
        self.control.on_heartbeat = self.reports.on_heartbeat
        self.control.on_gateway_heartbeat = self.reports.on_gateway_heartbeat
        self.control.start()

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the config files.")
        self._background(self.reload())

    async def _shutdown(self) -> None:
        log.info("Stopping everything.")
        self._helpers.kill_all()
        await self.zygote.stop(1.0)
        self._reap()
        await asyncio.gather(*(self.children.stop(slot) for slot in self.children.all()))
        reaper.kill_processes(reaper.orphans(()))  # whatever is still below us
        if self.host.cgroups is not None:
            for slot in self.children.workers.values():
                cleanup_cgroup(slot.cgroup, slot.label)
            self.host.leave_cgroup()
        self._reap()
        if self.control is not None:
            self.control.close()
        self.host.remove_sockets()
        log.info("Stopped.")

    def _finish(self, exit_code: int) -> None:
        """A child that cannot go on ends the supervisor (the gateway: FATAL, its port taken, stdio closed)."""
        self._exit_code = exit_code
        self._stopping.set()

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without awaiting it, keeping a reference so the task is not garbage-collected."""
        self._tasks.spawn(work)

    # ------------------------------------------------------------------ the zygote and every exit

    def _zygote_output(self, read_fd: int) -> None:
        if self._zygote_stderr is not None:
            self._zygote_stderr.close()
        self._zygote_stderr = StderrCapture("zygote", read_fd, self.host.log_dir / "zygote.log")

    def _restart_zygote(self) -> None:
        if not self._stopping.is_set():
            self.zygote.start(self.children.starter.child_env(), self.reports.worker_fds())

    def _reap(self) -> None:
        reaper.reap_all(self._on_exit)

    def _on_exit(self, pid: int, code: int) -> None:
        if pid == self.zygote.pid:
            delay = self.zygote.on_exit(code)  # its unanswered requests are spawned instead (`Children.forked`)
            if not self._stopping.is_set():
                if delay is not None:
                    self.zygote.timer = asyncio.get_running_loop().call_later(delay, self._restart_zygote)
                self.children.sweep()  # workers it forked but never announced: nobody's, and so are their backends
            return
        if self._helpers.on_exit(pid, code):
            return
        self.watchdog.forget(pid)
        self.children.exited(pid, code)

    # ------------------------------------------------------------------ commands and reload

    async def _on_command(self, command: ControlCommand) -> CommandResult:
        match command.name:
            case "stop" if not command.key:
                self._stopping.set()
                return CommandResult(ok=True, message="Stopping.")
            case "stop" | "start" | "restart":
                return await self._command_backend(command.name, command.key)
            case "reload":
                return await self.reload()
            case other:
                return CommandResult(ok=False, message=f"Unknown command {other!r}.")

    async def _command_backend(self, name: str, key: str) -> CommandResult:
        slot = self.children.workers.get(key)
        if slot is None:
            return CommandResult(ok=False, message=f'No active backend "{key}".')
        if name == "stop":
            # Stays STOPPED until started, restarted, or its entry changes in a reload.
            await self.children.stop(slot)
            self._publish("stopped", slot)
            return CommandResult(ok=True, message=f'Stopped "{key}".')
        if name == "start" and slot.state not in (STOPPED, FATAL):
            return CommandResult(ok=True, message=f'"{key}" is {slot.state} already.')
        await self.children.replace(key, slot.entry)  # a new slot: fresh policy, FATAL cleared
        return CommandResult(ok=True, message=f'{name.capitalize()}ed "{key}".')

    async def _file_changed(self, name: str) -> None:
        if name == SERVERS_FILE:
            await self.reload()
        elif name in (TOOLS_FILE, CLIENTS_FILE):
            self.files.reload(name)

    async def reload(self) -> CommandResult:
        try:
            new = self.files.reload_servers()
        except ConfigError as exc:
            log.error("Reload refused, the running config stays: %s", exc)
            return CommandResult(ok=False, message=str(exc))
        # `reload` re-reads every file (the admin's clients.json save relies on it).
        others = [self.files.reload(name) for name in (TOOLS_FILE, CLIENTS_FILE)]
        diff = diff_servers(self.servers, new)
        self.servers = new
        work = [self.children.remove(key) for key in diff.removed]
        work += [self.children.replace(key, new[key]) for key in diff.changed]
        await self.children.spawn_many(self.children.starting_slots({key: new[key] for key in diff.added}))
        await asyncio.gather(*work)
        message = f"Reloaded: {len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed."
        for part in others:
            if not part.ok:
                message += f" {part.message}"
        log.info("%s", message)
        return CommandResult(ok=all(part.ok for part in others), message=message)

    # ------------------------------------------------------------------ what the gateway and the CLI hear

    def snapshot(self) -> Snapshot:
        return Snapshot(
            backends=[slot.status() for slot in self.children.workers.values()],
            config_error=self.files.error_text,
            gateway=self.children.gateway.status(),
            tool_config=self.files.tool_config,
            running_servers=self.files.running_servers,
            clients=self.files.clients,
            worker_spawn=self.zygote.describe(),
            catalog_problems=self.reports.catalog_problems,
        )

    def _broadcast(self, message: ClientsUpdate | ToolConfigUpdate | ConfigStatus) -> None:
        if self.control is not None:
            self._background(self.control.broadcast(message))

    def _publish(self, event: str, slot: Slot) -> None:
        if self.control is not None and slot.publishes(event):
            self._background(self.control.publish(event, slot.status()))
