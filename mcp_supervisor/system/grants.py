"""What a backend is granted (its command, its args' paths, its cwd, readPaths, writePaths) and which of the
other backends' grants are hidden from it: the paths `plan_sandbox` works with."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mcp_supervisor.system.paths import arg_paths, command_paths, is_within, minimal_cover, resolve_command
from mcp_supervisor.system.probe import HostCapabilities
from mcp_supervisor.system.sandbox_policy import SandboxPolicy


def _existing(paths: list[str] | tuple[str, ...], what: str, warnings: list[str]) -> list[str]:
    found = []
    for path in paths:
        if os.path.exists(path):
            found.append(os.path.abspath(path))
        else:
            warnings.append(f"The {what} path {path} does not exist; it was left out of the sandbox.")
    return found


def named_grants(
    program: str,
    args: Sequence[str],
    workdir: str,
    state_dir: str,
    path_env: str | None,
    policy: SandboxPolicy,
    warnings: list[str],
) -> tuple[list[str], list[str]]:
    """(readable, writable): what a backend is granted besides the system and its HOME, each path as named (not
    reduced to a cover: a path inside another may lie inside a neighbour's path too, and must be shown again)."""
    from_args, arg_warnings = arg_paths(args, workdir)
    warnings += arg_warnings
    readable = [
        *command_paths(program, path_env),
        *from_args,
        *([workdir] if workdir != state_dir and os.path.isdir(workdir) else []),
        *_existing(policy.read_paths, "readPaths", warnings),
    ]
    writable = _existing(policy.write_paths, "writePaths", warnings)
    return list(dict.fromkeys(map(os.path.normpath, readable))), list(dict.fromkeys(map(os.path.normpath, writable)))


def backend_grants(
    command: str, args: Sequence[str], cwd: str | None, path_env: str | None, policy: SandboxPolicy, state_dir: str
) -> list[str]:
    """Every existing path a backend is granted (its command's directory and interpreters, the paths in its args,
    its cwd, readPaths, writePaths), found as `plan_sandbox` finds them: what the other backends must not see."""
    state_dir = os.path.abspath(state_dir)
    workdir = os.path.abspath(cwd) if cwd else state_dir
    program = resolve_command(command, path_env, workdir)
    readable, writable = named_grants(program, args, workdir, state_dir, path_env, policy, [])
    return minimal_cover([*readable, *writable])


# Never hidden from a backend, whoever else is granted them: the mounts every sandbox makes itself.
_OWN_MOUNTS = ("/tmp", "/proc", "/dev")


def hidden_neighbours(neighbours: Sequence[str], host: HostCapabilities, own: Sequence[str]) -> list[str]:
    """The real paths of other backends' grants to hide from this one. Left visible: a path this backend is
    granted too (shared on purpose), a system directory (`node` under /usr is everybody's) and a path holding one
    (or /tmp, /proc, /dev). A neighbour's path that holds one of this backend's own grants is hidden, and the
    grant inside is shown again by the mounts (bwrap) or rules (Landlock)."""
    system = [os.path.realpath(p) for p in (*host.system_trees, *host.extra_read)]
    own_real = {os.path.realpath(p) for p in own}
    found: set[str] = set()
    for path in dict.fromkeys(neighbours):  # with many backends, most grants are shared (the same interpreter)
        if not os.path.lexists(path):
            continue
        real = os.path.realpath(path)
        if real in own_real or real == "/" or real in found:
            continue
        if any(is_within(real, s) or is_within(s, real) for s in system):
            continue
        if any(is_within(m, real) for m in _OWN_MOUNTS):
            continue
        found.add(real)
    # The outermost paths only: a path whose ancestor is hidden too adds nothing (linear in paths x depth).
    return sorted(p for p in found if not any(a in found for a in _ancestors(p)))


def _ancestors(path: str) -> list[str]:
    parents = []
    while (parent := os.path.dirname(path)) != path:
        parents.append(parent)
        path = parent
    return parents
