"""Landlock through raw syscalls (ctypes): the ABI probe and a ruleset applied to the calling process.

Stdlib only and no import from this package: the launcher (`launch.py`) imports this file as a top-level
module when it runs as `python -I -S launch.py`, where the package is not importable (and needs not be, inside a
sandbox that only shows this directory).

Landlock is an allow-list: a path is reachable only beneath a rule. That is also how we hide a path that lies
inside an allowed tree: the tree is replaced by rules on each of its entries except the branch that leads to the
hidden path (`expand_allowed`). The expansion is a snapshot taken just before exec; entries created later in such
a tree stay unreadable, which is acceptable for the read-only system trees it is meant for.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # the launcher imports this module: no typing import at run time
    from collections.abc import Iterable, Sequence

# asm-generic numbers, shared by x86_64 and aarch64 (and every architecture added since 5.x).
_SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}
_SUPPORTED_MACHINES = frozenset({"x86_64", "aarch64", "arm64"})

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2  # ABI 4
_PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_FS_WRITE_V1 = (
    FS_WRITE_FILE
    | FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_CHAR
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SOCK
    | FS_MAKE_FIFO
    | FS_MAKE_BLOCK
    | FS_MAKE_SYM
)
# Rights that make sense on a file (a rule on a non-directory with any other right is EINVAL).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE
# IOCTL_DEV (ABI 5) is deliberately never handled: denying it makes isatty() on /dev/null fail with EACCES
# instead of ENOTTY, and TIOCSTI is already closed by the new session the launcher's caller creates.


class LandlockError(OSError):
    """A Landlock syscall failed; the message names the step."""


def _syscall(name: str, *args: object) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = int(libc.syscall(ctypes.c_long(_SYSCALLS[name]), *args))
    if result < 0:
        errno = ctypes.get_errno()
        raise LandlockError(errno, f"landlock_{name}: {os.strerror(errno)}")
    return result


def abi_version() -> int:
    """The Landlock ABI this kernel offers: 0 when Landlock is absent, disabled or on an unknown architecture."""
    if sys.platform != "linux" or os.uname().machine not in _SUPPORTED_MACHINES:
        return 0
    try:
        return _syscall("create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (LandlockError, OSError):
        return 0


def handled_fs(abi: int) -> int:
    """Every filesystem right this ABI knows (so each is denied unless a rule grants it)."""
    rights = FS_READ | _FS_WRITE_V1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    return rights


def write_rights(abi: int) -> int:
    return handled_fs(abi) & ~FS_READ


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the UAPI header: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _pack_ = 1  # packed in the UAPI header: 16 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _is_within(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def expand_allowed(trees: Iterable[str], hidden: Sequence[str]) -> list[str]:
    """The paths to grant so that each tree is reachable except the hidden paths inside it.

    A tree inside a hidden path is dropped; a tree containing one is replaced by its entries, recursively along
    the branch towards the hidden path. Paths are compared after `realpath`, as Landlock rules bind inodes.
    """
    hidden_real = [os.path.realpath(h) for h in hidden]
    out: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        # A rule follows symlinks (it is made from an open fd), so compare where an entry leads, not its name:
        # /tmp/pytest-of-root/pytest-current -> pytest-26 must not grant a tree that holds a hidden path.
        path = os.path.realpath(path)
        if path in seen or any(_is_within(path, h) for h in hidden_real):
            return
        seen.add(path)
        if not any(_is_within(h, path) for h in hidden_real):
            out.append(path)
            return
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            visit(os.path.join(path, name))

    for tree in trees:
        if os.path.lexists(tree):
            visit(tree)
    return out


def rules(
    read: Sequence[str], write: Sequence[str], own: Sequence[str], hidden: Sequence[str], neighbours: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(paths to grant read, paths to grant write). `hidden` and `neighbours` (other backends' paths) are both
    subtracted from `read` and `write`; a read or write path inside a neighbour's path is granted again (minus
    `hidden`, which always wins); `own` (the state dir) is granted as is, even inside a hidden path."""
    every = [*hidden, *neighbours]
    again_read, again_write = _inside(read, neighbours), _inside(write, neighbours)
    return (
        [*expand_allowed(read, every), *expand_allowed(again_read, hidden)],
        [*expand_allowed(write, every), *expand_allowed(again_write, hidden), *own],
    )


def _inside(paths: Sequence[str], trees: Sequence[str]) -> list[str]:
    real = [os.path.realpath(t) for t in trees]
    return [p for p in paths if any(_is_within(os.path.realpath(p), t) and os.path.realpath(p) != t for t in real)]


def restrict_self(
    abi: int,
    read: Iterable[str],
    write: Iterable[str],
    *,
    filesystem: bool = True,
    deny_tcp: bool = False,
    connect_ports: Sequence[int] = (),
    scope: bool = True,
) -> None:
    """Apply a ruleset to this process (and everything it execs or forks); irreversible.

    `read` paths get read+execute, `write` paths get read+write; `filesystem=False` leaves the filesystem alone
    (under bubblewrap the mounts already decide it). `deny_tcp` handles TCP bind/connect with no rule,
    so every TCP port is refused (ABI 4+); `connect_ports` handles TCP connect and allows only those ports.
    `scope` (ABI 6+) forbids connecting to abstract unix sockets and
    signalling processes outside this domain: abstract sockets live in the network namespace, so a backend that
    shares the host network could otherwise reach any host daemon listening on one.
    """
    if abi < 1:
        raise LandlockError(0, "Landlock is not available on this kernel")
    attr = _RulesetAttr(handled_access_fs=handled_fs(abi) if filesystem else 0)
    size = 8
    if abi >= 4:
        size = 16
        if deny_tcp:
            attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        elif connect_ports:
            attr.handled_access_net = NET_CONNECT_TCP
    if abi >= 6:
        size = 24
        if scope:
            attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    ruleset = _syscall("create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        if filesystem:
            for path in read:
                _add_path_rule(ruleset, path, FS_READ)
            for path in write:
                _add_path_rule(ruleset, path, FS_READ | write_rights(abi))
        if abi >= 4 and not deny_tcp:
            for port in connect_ports:
                rule = _NetPortAttr(allowed_access=NET_CONNECT_TCP, port=port)
                _syscall(
                    "add_rule",
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_NET_PORT),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
        libc = ctypes.CDLL(None, use_errno=True)
        # Landlock requires no_new_privs (or CAP_SYS_ADMIN); it also keeps setuid binaries from regaining rights.
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise LandlockError(errno, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(errno)}")
        _syscall("restrict_self", ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # vanished since planning: nothing to grant
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _syscall(
            "add_rule", ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)
        )
    finally:
        os.close(fd)
