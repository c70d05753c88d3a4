"""`check-config`'s look at each stdio command: does it resolve to a program its backend can exec?

The same lookup the sandbox plan makes at start (`system/sandbox.py`: the backend's PATH, with our venv's bin
last, and its cwd, else its HOME), so a typo such as `mcp-server-tiem` is reported with the server's key when
the config is checked, not as bubblewrap's "execvp: No such file or directory" in a backend's log. Read-only:
nothing is created, not even the backend's state directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mcp_supervisor.config.models import ServerEntry, oauth_secret_names
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.protocol.endpoints import runtime_dir_for
from mcp_supervisor.supervisor.backend_launch import stdio_environment
from mcp_supervisor.system.paths import is_within, resolve_command, shebang


def command_problems(settings: Settings, servers: Mapping[str, ServerEntry]) -> list[str]:
    """One sentence per active stdio server whose command would not start; [] when every one resolves."""
    withheld = oauth_secret_names(servers)
    problems = []
    for key, entry in servers.items():
        if entry.type != "stdio" or not entry.active or not entry.command:
            continue
        problem = _problem(settings, entry, stdio_environment(entry, withheld=withheld))
        if problem:
            problems.append(f"Server {key!r}: {problem}")
    return problems


def _problem(settings: Settings, entry: ServerEntry, env: dict[str, str]) -> str:
    command = entry.command or ""
    home = settings.state_dir / entry.key
    workdir = os.path.abspath(entry.cwd) if entry.cwd else str(home)
    path_env = env.get("PATH")
    program = resolve_command(command, path_env, workdir)
    if not os.path.isabs(program):
        return (
            f"the command {command!r} is not found on the backend's PATH ({path_env or os.defpath}); "
            "check its spelling, install it, or give its absolute path."
        )
    if not os.path.isfile(program):
        return f"the command {command!r} resolves to {program}, which does not exist."
    if not os.access(program, os.X_OK):
        return f"the command {command!r} resolves to {program}, which is not executable (chmod +x)."
    if settings.sandbox_mode != "off" and entry.sandbox.enabled:
        for real in dict.fromkeys((program, os.path.realpath(program))):
            where = _hidden_where(settings, entry, real)
            if where is not None:
                return (
                    f"the command {command!r} resolves to {real}, inside {where}, which the sandbox hides from "
                    "every backend (the config, runtime and state directories); install it elsewhere."
                )
    words = shebang(os.path.realpath(program))
    for word in words[:2] if words and os.path.basename(words[0]) == "env" else words[:1]:
        interpreter = resolve_command(word, path_env, "/")
        if not os.path.isabs(interpreter) or not os.path.isfile(interpreter):
            return (
                f"the command {command!r} ({program}) is a script whose interpreter {word!r} (its #! line) is not "
                f"found on the backend's PATH ({path_env or os.defpath})."
            )
    return ""


def _hidden_where(settings: Settings, entry: ServerEntry, path: str) -> str | None:
    """The hidden directory `path` lies in, as far as the config tells: the config and runtime directories, and
    the state directory but for this backend's own HOME in it. (The supervisor also hides the other backends'
    directories; a command there is named by its own backend too, so that is left to the start.)"""
    for hidden in (settings.config_dir, runtime_dir_for(settings.config_dir)):
        if is_within(path, os.path.realpath(hidden)):
            return str(hidden)
    state = os.path.realpath(settings.state_dir)
    if is_within(path, state) and not is_within(path, os.path.join(state, entry.key)):
        return str(settings.state_dir)
    return None
