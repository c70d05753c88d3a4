"""`mcp-supervisor tools`: the pinned tools and prompts, their diffs, and the operator's approvals.

The CLI reads the pin file and never writes it: approvals and rejections go to the running gateway through
its request inbox (gateway/server/pinning/store.py), and the gateway answers beside each request. A request
made while the gateway is down stays queued and is applied when it starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_supervisor.config.settings import Settings, load_settings
from mcp_supervisor.gateway.server.pinning.review import diff_lines, held, read_entries, row
from mcp_supervisor.gateway.server.pinning.store import Entry, Request, pin_path, requests_path, submit
from mcp_supervisor.protocol.exit_codes import EXIT_FAILURE

ANSWER_TIMEOUT_S = 10.0


def add_parser(commands: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    tools = with_config(commands.add_parser("tools", help="pinned tools and prompts; review and approve changes"))
    tools.add_argument("--json", action="store_true")
    tools.set_defaults(func=_run(_cmd_list))
    actions = tools.add_subparsers(dest="tools_action", metavar="ACTION")
    diff = _config_too(actions.add_parser("diff", help="what changed in a held tool or prompt"))
    diff.add_argument("name", help="the exposed name")
    diff.set_defaults(func=_run(_cmd_diff))
    approve = _config_too(actions.add_parser("approve", help="pin what a tool or prompt serves now, and serve it"))
    target = approve.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", help="the exposed name")
    target.add_argument("--backend", help="every held tool and prompt of this backend")
    approve.set_defaults(func=_run(_cmd_decide), action_name="approve")
    reject = _config_too(actions.add_parser("reject", help="keep a held tool or prompt hidden"))
    reject.add_argument("name", help="the exposed name")
    reject.set_defaults(func=_run(_cmd_decide), action_name="reject", backend=None)


def _config_too(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--config-dir after the action too; SUPPRESS keeps one given before it (argparse would reset it)."""
    sub.add_argument("--config-dir", default=argparse.SUPPRESS, help="as for `tools`")
    return sub


def _run(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings(config_dir=Path(args.config_dir) if args.config_dir else None)
        try:
            return command(args, settings)
        except ValueError as exc:  # an unreadable pin file
            print(f"mcp-supervisor: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    return run


def _entries(settings: Settings) -> list[Entry]:
    return read_entries(pin_path(settings))


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    entries = sorted(_entries(settings), key=lambda e: (e.kind, e.exposed))
    if args.json:
        print(json.dumps({"mode": settings.tool_pinning, "entries": [row(e) for e in entries]}, indent=2))
        return 0
    print(f"{'KIND':<7} {'NAME':<40} {'BACKEND':<20} {'STATE':<12} REASON")
    for entry in entries:
        print(f"{entry.kind:<7} {entry.exposed:<40} {entry.backend:<20} {entry.state:<12} {entry.reason}")
    waiting = held(entries)
    if waiting:
        print(f"\n{len(waiting)} held: `mcp-supervisor tools diff NAME`, then `mcp-supervisor tools approve NAME`.")
    return 0


def _cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    named = [e for e in _entries(settings) if e.exposed == args.name]
    if not named:
        print(f"mcp-supervisor: no pinned tool or prompt is named {args.name!r}.", file=sys.stderr)
        return EXIT_FAILURE
    for entry in named:
        print(f'{entry.kind} "{entry.exposed}" of backend "{entry.backend}": {entry.state}. {entry.reason}'.rstrip())
        if entry.pending is None:
            print("  Served as pinned; nothing to review.")
            continue
        sys.stdout.writelines(diff_lines(entry))
    return 0


def _cmd_decide(args: argparse.Namespace, settings: Settings) -> int:
    request = Request(action=args.action_name, name=args.name or "", backend=args.backend or "")
    waiting = [
        e
        for e in _entries(settings)
        if e.pending is not None and (e.exposed == request.name if request.name else e.backend == request.backend)
    ]
    if not waiting:
        target = f"named {request.name!r}" if request.name else f"of backend {request.backend!r}"
        print(f"mcp-supervisor: no tool or prompt {target} awaits approval (`mcp-supervisor tools`).", file=sys.stderr)
        return EXIT_FAILURE
    answer = _wait_for(submit(requests_path(settings), request))
    if answer is None:
        print("Queued: the gateway did not answer yet; it applies the request as soon as it runs.")
        return 0
    print(answer)
    return 0 if answer.startswith(("Approved", "Rejected")) else EXIT_FAILURE


def _wait_for(done: Path) -> str | None:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        if done.exists():
            answer = done.read_text()
            done.unlink(missing_ok=True)
            return answer
        time.sleep(0.1)
    return None


def status_line(settings: Settings) -> str | None:
    """For `mcp-supervisor status`: the held tools and prompts, if any."""
    try:
        waiting = held(_entries(settings))
    except ValueError as exc:
        return str(exc)
    if not waiting:
        return None
    names = ", ".join(f"{e.exposed} ({e.state})" for e in waiting)
    return f"tool pinning holds {len(waiting)}: {names}. Review with `mcp-supervisor tools`."


def status_json(settings: Settings) -> dict[str, Any]:
    """For `mcp-supervisor status --json`: the mode and what pinning holds."""
    try:
        return {"mode": settings.tool_pinning, "held": [row(e) for e in held(_entries(settings))]}
    except ValueError as exc:
        return {"mode": settings.tool_pinning, "error": str(exc)}
