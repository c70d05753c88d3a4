"""`mcp-supervisor start|status|restart|reload|stop|check-config` (and the internal `gateway`/`worker`).

The only place where errors become exit codes (`protocol/exit_codes.py`): 0 ok, 1 runtime failure,
2 configuration error, 3 the supervisor cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mcp_supervisor import __version__, tools_cli
from mcp_supervisor.config.loader import load_clients, load_servers, load_tool_config
from mcp_supervisor.config.settings import Settings, load_settings
from mcp_supervisor.config.tool_names import TOOL_NAME_RULE, display_name_effect
from mcp_supervisor.errors import ConfigError, ControlError
from mcp_supervisor.protocol.exit_codes import EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_UNREACHABLE
from mcp_supervisor.protocol.messages import BackendStatus

# Where `make run` serves its working copy of the sample config (the Makefile's RUN_CONFIG).
MAKE_RUN_CONFIG = Path(".run") / "config"


def _running_config_dir(args: argparse.Namespace) -> Path | None:
    """For the commands that talk to a running supervisor, given no --config-dir: ./config when a supervisor
    serves it (the default, as before), else ./.run/config when one serves that, so that `status` run from a
    checkout finds what `make run` started there. None: keep the default and its "no supervisor" error."""
    from mcp_supervisor.protocol.endpoints import RUNTIME_DIR_ENV, supervisor_running

    # Before Settings on purpose: which config dir to load settings from is what is being decided.
    if args.config_dir or os.environ.get("MCP_SUPERVISOR_CONFIG_DIR") or os.environ.get(RUNTIME_DIR_ENV):
        return None
    if supervisor_running(Path("config").resolve()) or not supervisor_running(MAKE_RUN_CONFIG.resolve()):
        return None
    print(
        f"mcp-supervisor: using the supervisor of {MAKE_RUN_CONFIG} (`make run`); ./config has none.", file=sys.stderr
    )
    return MAKE_RUN_CONFIG


def _settings(args: argparse.Namespace, find_running: bool = False) -> Settings:
    config_dir = Path(args.config_dir) if getattr(args, "config_dir", None) else None
    if find_running and config_dir is None:
        config_dir = _running_config_dir(args)
    settings = load_settings(config_dir=config_dir)
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if overrides:
        import msgspec

        settings = msgspec.structs.replace(settings, **overrides)
    # Children read the same settings from the environment.
    os.environ["HOST"] = settings.host
    os.environ["PORT"] = str(settings.port)
    os.environ["MCP_SUPERVISOR_CONFIG_DIR"] = str(settings.config_dir)
    return settings


def _cmd_start(args: argparse.Namespace) -> int:
    from mcp_supervisor.supervisor.process_entry import run_supervisor

    return run_supervisor(_settings(args))


def _cmd_stdio(args: argparse.Namespace) -> int:
    from mcp_supervisor.supervisor.process_entry import run_supervisor

    return run_supervisor(_settings(args), stdio=True)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from mcp_supervisor.config.claims_check import ownership_warnings
    from mcp_supervisor.supervisor.command_check import command_problems

    settings = _settings(args)
    servers = load_servers(settings.config_dir)
    tools = load_tool_config(settings.config_dir)
    clients = load_clients(settings.config_dir)
    active = servers.active()
    profiles = len(clients.entries) + (clients.fallback is not None)
    access = f"{profiles} client profile(s)" if clients.present else "no clients.json (everyone sees everything)"
    problems = command_problems(settings, servers.servers)
    verdict = f"{len(problems)} command(s) would not start" if problems else "OK"
    print(
        f"{settings.config_dir}: {len(servers.servers)} server(s), {len(active)} active, "
        f"{len(tools.tools)} tool override(s), {access}. {verdict}."
    )
    for key, entry in servers.servers.items():
        target = " ".join([entry.command or "", *entry.args]) if entry.type == "stdio" else entry.url
        print(f"  {key:<24} {entry.type:<6} {'active' if entry.active else 'inactive':<9} {target}")
    for qualified, override in tools.tools.items():
        if override.exposed_name:
            print(f"  {qualified}: {_display_name_outcome(qualified, override.exposed_name)}")
    for warning in ownership_warnings(servers.servers, tools, settings.separator):
        print(f"  warning: {warning}")
    for problem in problems:
        print(f"mcp-supervisor: {problem}", file=sys.stderr)
    return EXIT_CONFIG if problems else 0


def _display_name_outcome(qualified: str, display_name: str) -> str:
    """What a tool_config.json display name does: renames the tool, or becomes its title (config/tool_names.py)."""
    if display_name_effect(display_name) == "rename":
        return f"exposed as {display_name!r} (renamed)."
    return (
        f"display name {display_name!r} is not a valid tool name ({TOOL_NAME_RULE}), so it becomes the tool's "
        f"title; the name stays {qualified!r}."
    )


def _format_uptime(started_at: float | None) -> str:
    if started_at is None:
        return "-"
    seconds = int(time.time() - started_at)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def _format_bytes(count: int) -> str:
    return f"{count / 1_048_576:.0f}M" if count else "-"


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from mcp_supervisor.control_client import request_status
    from mcp_supervisor.status_json import status_document

    settings = _settings(args, find_running=True)
    snapshot = request_status(settings)
    if args.json:
        document = status_document(snapshot, settings.config_dir)
        document["tool_pinning"] = tools_cli.status_json(settings)
        print(json.dumps(document, indent=2))
        return 0
    if snapshot.config_error:
        print(f"config error (the running config stays): {snapshot.config_error}")
    if pins := tools_cli.status_line(settings):
        print(pins)
    if snapshot.worker_spawn:
        print(f"workers: {snapshot.worker_spawn}")
    header = (
        f"{'KEY':<20} {'TYPE':<7} {'STATE':<9} {'PID':>7} {'UPTIME':>7} {'RESTARTS':>8} {'RSS':>6} {'CPU%':>5} "
        f"{'SANDBOX (EXPOSURE)':<18} {'ERA':<6}"
    )
    print(f"{header}  LAST EXIT / ERROR / STDERR")
    rows = ([snapshot.gateway] if snapshot.gateway else []) + list(snapshot.backends)
    for status in rows:
        details = [d for d in (status.detail, status.last_exit, status.last_error, status.last_stderr) if d]
        if status.next_attempt_at is not None:
            details.insert(0, f"next try in {max(0.0, status.next_attempt_at - time.time()):.0f} s")
        print(
            f"{status.key:<20} {status.type:<7} {status.state:<9} {status.pid or '-':>7} "
            f"{_format_uptime(status.started_at):>7} {status.restarts:>8} {_format_bytes(status.rss_bytes):>6} "
            f"{status.cpu_percent:>5.1f} {_sandbox_summary(status):<18} {status.era or '-':<6}  {' | '.join(details)}"
        )
    if snapshot.catalog_problems:
        print(f"\ncatalog: {len(snapshot.catalog_problems)} problem(s) (docs/security.md, What backends may say)")
        for problem in snapshot.catalog_problems:
            print(f"  {problem}")
    return 0


def _sandbox_summary(status: BackendStatus) -> str:
    """The sandbox's method and exposure score, 0 confined .. 10 not at all (`status --json` has the whole account:
    enforced and not, feature by feature, and the points of each factor of the score)."""
    if status.sandbox is None:
        return "-"
    score = status.sandbox.exposure
    return status.sandbox.method + (f" ({score:.1f})" if score is not None else "")


def _cmd_logs(args: argparse.Namespace) -> int:
    from mcp_supervisor.protocol.endpoints import Endpoints, runtime_dir_for

    settings = _settings(args, find_running=True)
    endpoints = Endpoints(runtime_dir_for(settings.config_dir))
    path = endpoints.log_dir / f"{args.key}.log"
    if not path.exists():
        if not (endpoints.runtime_dir / "control.sock").exists():
            # The usual cause: run from another directory, so ./config is not the supervisor's config dir.
            print(
                f"mcp-supervisor: no supervisor is running for {settings.config_dir} "
                "(pass the --config-dir it was started with).",
                file=sys.stderr,
            )
            return EXIT_UNREACHABLE
        known = sorted(log.stem for log in endpoints.log_dir.glob("*.log"))
        print(f"mcp-supervisor: no log for {args.key!r} (logs: {', '.join(known) or 'none yet'}).", file=sys.stderr)
        return EXIT_FAILURE
    lines = path.read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.lines :]))
    return 0


def _cmd_command(args: argparse.Namespace) -> int:
    from mcp_supervisor.control_client import send_command

    name = getattr(args, "command_name", args.command)
    result = send_command(_settings(args, find_running=True), name, getattr(args, "key", ""))
    print(result.message)
    return 0 if result.ok else EXIT_FAILURE


def _cmd_gateway(args: argparse.Namespace) -> int:
    from mcp_supervisor.gateway.main import main as gateway_main

    fds: tuple[int, int] | None = None
    if args.stdio_fds:
        in_fd, out_fd = (int(fd) for fd in args.stdio_fds.split(","))
        fds = (in_fd, out_fd)
    return gateway_main(args.runtime_dir, fds)


def _cmd_worker(args: argparse.Namespace) -> int:
    from mcp_supervisor.worker.main import main as worker_main

    return worker_main()


def _cmd_zygote(args: argparse.Namespace) -> int:
    from mcp_supervisor.worker.zygote import main as zygote_main

    return zygote_main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-supervisor", description="Supervised multi-process MCP gateway.")
    parser.add_argument("--version", action="version", version=f"mcp-supervisor {__version__}")
    # The metavar lists only the public commands: the internal ones (gateway, worker) stay out of --help.
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config-dir", help="directory of mcp_server.json and tool_config.json (default ./config)")
        return sub

    start = with_config(commands.add_parser("start", help="run the supervisor, gateway and workers"))
    start.add_argument("--host", help="bind address (default $HOST or 127.0.0.1)")
    start.add_argument("--port", type=int, help="port (default $PORT or 3663)")
    start.set_defaults(func=_cmd_start)
    with_config(
        commands.add_parser("stdio", help="run the tree and speak MCP on stdin/stdout (for desktop clients)")
    ).set_defaults(func=_cmd_stdio)
    with_config(commands.add_parser("check-config", help="validate the config files")).set_defaults(
        func=_cmd_check_config
    )
    status = with_config(commands.add_parser("status", help="per-backend health of a running supervisor"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_status)
    logs = with_config(commands.add_parser("logs", help="recent stderr of a backend (its worker and process)"))
    logs.add_argument("key", help="a server key, or 'gateway'")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.set_defaults(func=_cmd_logs)
    restart = with_config(commands.add_parser("restart", help="restart one backend (clears FATAL)"))
    restart.add_argument("key")
    restart.set_defaults(func=_cmd_command)
    start_one = with_config(commands.add_parser("start-backend", help="start a stopped or FATAL backend"))
    start_one.add_argument("key")
    start_one.set_defaults(func=_cmd_command, command_name="start")
    with_config(commands.add_parser("reload", help="re-read mcp_server.json")).set_defaults(func=_cmd_command)
    tools_cli.add_parser(commands, with_config)
    stop = with_config(commands.add_parser("stop", help="stop a running supervisor, or with KEY one backend"))
    stop.add_argument("key", nargs="?", default="")
    stop.set_defaults(func=_cmd_command)
    # Internal (the supervisor spawns them): no help=, so argparse does not list them, not even as ==SUPPRESS==.
    gateway = commands.add_parser("gateway")
    gateway.add_argument("--runtime-dir", required=True)
    gateway.add_argument("--stdio-fds", help="IN,OUT: serve MCP over these inherited descriptors instead of HTTP")
    gateway.set_defaults(func=_cmd_gateway)
    commands.add_parser("worker").set_defaults(func=_cmd_worker)
    commands.add_parser("zygote").set_defaults(func=_cmd_zygote)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not in the interpreter's exit
        return code
    except ConfigError as exc:
        print(f"mcp-supervisor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ControlError as exc:
        print(f"mcp-supervisor: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`status | head -3`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again (the Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
