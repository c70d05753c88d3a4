"""Which host paths a backend needs to see: its command and interpreter chain, its install directory, the paths
named in its arguments. Read-only lookups (exists, realpath, a shebang line), no side effects, so the planner
stays testable with a tmp directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

# A file argument's project root is the nearest ancestor holding one of these (node_modules first, since node
# resolves packages upwards from the script: `node /opt/x/dist/index.js` needs /opt/x/node_modules).
_NODE_MARKERS = ("node_modules",)
_PROJECT_MARKERS = ("package.json", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "pyvenv.cfg", ".git")
_MAX_WALK_UP = 6
_SHEBANG_DEPTH = 3


def is_within(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def _is_home_or_top(path: str) -> bool:
    """Too broad to grant as somebody's "install dir": /, a top-level dir, /root, /home/<user>."""
    parent = os.path.dirname(path)
    return path in ("/", "/root") or parent == "/" or parent == "/home"


def minimal_cover(paths: Iterable[str]) -> list[str]:
    """Drop duplicates and paths inside another listed path; keeps first-seen order."""
    unique = list(dict.fromkeys(os.path.normpath(p) for p in paths))
    return [p for p in unique if not any(q != p and is_within(p, q) for q in unique)]


def resolve_command(command: str, path_env: str | None, cwd: str) -> str:
    """The absolute program path, found as execvp would (PATH, or relative to cwd when it has a slash)."""
    if "/" in command:
        return os.path.normpath(os.path.join(cwd, command))
    found = shutil.which(command, path=path_env if path_env is not None else os.defpath)
    return os.path.abspath(found) if found else command


def install_prefix(program: str) -> str:
    """The directory to grant for a program: the venv/prefix for `<prefix>/bin/x`, the project for
    `<project>/node_modules/.bin/x`, else the program's own directory."""
    directory = os.path.dirname(program)
    if os.path.basename(directory) == ".bin" and os.path.basename(os.path.dirname(directory)) == "node_modules":
        prefix = os.path.dirname(os.path.dirname(directory))
    elif os.path.basename(directory) in ("bin", "sbin"):
        prefix = os.path.dirname(directory)
    else:
        prefix = directory
    return directory if _is_home_or_top(prefix) else prefix


def shebang(program: str) -> list[str]:
    """The interpreter words of a script's `#!` line ([] for a binary or an unreadable file)."""
    try:
        with open(program, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    if words and os.path.basename(words[0]) == "env":
        # `#!/usr/bin/env node` and `#!/usr/bin/env -S node --flag`: the interpreter is the first non-option.
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return [words[0], *rest[:1]]
    return words[:1]


def command_paths(program: str, path_env: str | None) -> list[str]:
    """Directories a program needs readable: its prefix and its symlink target's, and the same for the
    interpreters its shebang names (a venv script points at the venv's python, itself a link to the base)."""
    needed: list[str] = []
    todo, seen = [program], set()
    for _ in range(_SHEBANG_DEPTH * 2):
        if not todo:
            break
        current = todo.pop(0)
        if current in seen or not os.path.isabs(current) or not os.path.exists(current):
            continue
        seen.add(current)
        real = os.path.realpath(current)
        needed += [install_prefix(current), install_prefix(real)]
        for word in shebang(real):
            todo.append(resolve_command(word, path_env, "/"))
    return minimal_cover(needed)


def project_root(file_path: str) -> str:
    """The tree a script needs: nearest ancestor with node_modules, else with a project marker, else its dir
    (or only the file, when its dir is too broad to grant: /tmp/x.py, /root/server.py)."""
    start = os.path.dirname(file_path)
    if _is_home_or_top(start):
        return file_path
    for markers in (_NODE_MARKERS, _PROJECT_MARKERS):
        current = start
        for _ in range(_MAX_WALK_UP):
            if _is_home_or_top(current):
                break
            if any(os.path.exists(os.path.join(current, m)) for m in markers):
                return current
            current = os.path.dirname(current)
    return start


def arg_paths(args: Iterable[str], cwd: str) -> tuple[list[str], list[str]]:
    """(paths to grant, warnings) for the existing paths named in args (`/x`, `./x`, `--opt=/x`).

    A directory is granted as is; a file brings its project root. Only words with a slash (or . and ..) count,
    so that a bare word like `stdio` never grants a same-named directory of the cwd.
    """
    granted: list[str] = []
    warnings: list[str] = []
    for arg in args:
        candidates = [arg]
        if arg.startswith("-") and "=" in arg:
            candidates.append(arg.split("=", 1)[1])
        for word in candidates:
            if "/" not in word and word not in (".", ".."):
                continue
            path = os.path.normpath(os.path.join(cwd, os.path.expanduser(word)))
            if not os.path.exists(path):
                continue
            for variant in dict.fromkeys((path, os.path.realpath(path))):
                if variant == "/":
                    warnings.append(f"The argument {word!r} names the whole filesystem; it was not made readable.")
                    continue
                granted.append(variant if os.path.isdir(variant) else project_root(variant))
    return minimal_cover(granted), warnings
