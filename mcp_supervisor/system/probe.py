"""What this host offers a sandbox, measured once per process (every worker start pays it, so it must be cheap:
one bubblewrap run, ~6 ms here, plus a syscall and a few /proc reads)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from mcp_supervisor.system import landlock
from mcp_supervisor.system.cgroups import CgroupHost, probe_cgroups

# Top-level trees shown read-only to every backend (those that exist). Not /home, /root, /var, /run, /mnt, /media:
# users' files, databases, logs and daemons' sockets (docker.sock) are not the system a program needs to run.
# Not /opt and /srv either: that is where operators put servers, next to their `.env` files; a backend sees there
# only what it is granted (its command's directory, the paths in its args, readPaths...), as under Flatpak.
SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Runtimes read CPU topology here (glibc's get_nprocs, JVMs); the rest of /sys stays out of sight.
SYSTEM_EXTRA = ("/sys/devices/system/cpu",)
# Root-only secrets inside /etc. A backend running as uid 0 is their owner (a user namespace maps it to 0
# again), so the mode bits do not protect them: they are always masked.
SECRET_GLOBS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/security/opasswd",
)
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BwrapSupport:
    path: str
    # True: the sandbox gets a user namespace of its own (--unshare-user), so --disable-userns can forbid nested
    # ones. Always true for non-root (bwrap is not setuid on Debian); as root it is used whenever it works.
    userns: bool


@dataclass(frozen=True)
class HostCapabilities:
    """Everything the planner needs to know about the host. Tests build these by hand."""

    euid: int
    bwrap: BwrapSupport | None = None
    bwrap_problem: str = "bubblewrap (bwrap) is not installed"
    landlock_abi: int = 0
    cgroup: CgroupHost | None = None
    cgroup_problem: str = "no cgroup hierarchy was probed"
    python: str = ""  # interpreter that runs the launcher: /usr/bin/python3 when present, else sys.executable
    launcher: str = ""  # path of launch.py
    shell: str = ""  # a POSIX sh for the cheap outer stage (cgroup join + core limit), "" to always use Python
    system_trees: tuple[str, ...] = ("/usr", "/etc")
    system_links: tuple[tuple[str, str], ...] = ()  # (link, target) for merged-/usr symlinks such as /bin -> usr/bin
    extra_read: tuple[str, ...] = ()  # host specifics: /sys/devices/system/cpu, resolv.conf's real directory
    secret_files: tuple[str, ...] = field(default_factory=tuple)
    slirp4netns: str = ""  # the user-mode network stack of a backend's own namespace (system/network.py)
    slirp_problem: str = "slirp4netns was not probed"


_cached: HostCapabilities | None = None


def _probe_bwrap(euid: int) -> tuple[BwrapSupport | None, str]:
    # PATH is the host's command search path, not a setting of ours.
    path = shutil.which("bwrap")
    if path is None:
        return None, "bubblewrap (bwrap) is not installed"
    true = shutil.which("true") or "/bin/true"
    base = [path, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--ro-bind", "/", "/"]
    base += ["--proc", "/proc", "--dev", "/dev"]
    attempts = [(True, ["--unshare-user", "--disable-userns"])]
    if euid == 0:
        attempts.append((False, []))  # root without user namespaces (e.g. userns disabled by sysctl)
    problem = ""
    for userns, extra in attempts:
        try:
            done = subprocess.run(
                [*base[:1], *extra, *base[1:], "--", true],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"bubblewrap could not be run: {exc}"
        if done.returncode == 0:
            return BwrapSupport(path, userns), ""
        problem = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
    return None, f"bubblewrap cannot create namespaces here ({problem})"


def probe_slirp4netns() -> tuple[str, str]:
    """(path, "") when a private network can be wired here, else ("", why not)."""
    path = shutil.which("slirp4netns", path=f"{os.environ.get('PATH', '')}:/usr/bin:/bin") or ""
    if not path:
        return "", "slirp4netns is not installed (Debian package slirp4netns)"
    if not os.path.exists("/dev/net/tun"):
        return "", "/dev/net/tun is missing (a container needs --device /dev/net/tun)"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "", f"/dev/net/tun cannot be opened by uid {os.geteuid()} (its mode is usually 0666)"
    return path, ""


def _system_layout() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    trees, links = [], []
    for path in SYSTEM_TREES:
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            trees.append(path)
    extra = [p for p in SYSTEM_EXTRA if os.path.isdir(p)]
    # DNS: on systemd-resolved hosts /etc/resolv.conf links into /run, which is not shown otherwise.
    resolv = os.path.realpath("/etc/resolv.conf")
    if os.path.exists(resolv) and not any(resolv.startswith(t + "/") for t in trees):
        extra.append(os.path.dirname(resolv))
    return tuple(trees), tuple(links), tuple(extra)


def probe_host(*, refresh: bool = False) -> HostCapabilities:
    """Measure the host once per process (cached); `refresh=True` measures again."""
    global _cached
    if _cached is not None and not refresh:
        return _cached
    euid = os.geteuid()
    bwrap, bwrap_problem = _probe_bwrap(euid)
    cgroup, cgroup_problem = probe_cgroups()
    trees, links, extra = _system_layout()
    slirp, slirp_problem = probe_slirp4netns()
    secrets = sorted({p for pattern in SECRET_GLOBS for p in glob.glob(pattern)})
    # The launcher needs any Python 3.8+ with ctypes, not ours: the system one starts fast and is reachable by any
    # uid (after a drop to run_as), where ours may live in a venv or under /root.
    python = next(
        (os.path.realpath(p) for p in ("/usr/bin/python3", sys.executable) if os.access(p, os.X_OK)),
        os.path.realpath(sys.executable),
    )
    _cached = HostCapabilities(
        euid=euid,
        bwrap=bwrap,
        bwrap_problem=bwrap_problem,
        landlock_abi=landlock.abi_version(),
        cgroup=cgroup,
        cgroup_problem=cgroup_problem,
        python=python,
        launcher=os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch.py"),
        shell=shutil.which("sh", path="/usr/bin:/bin") or "",
        system_trees=trees,
        system_links=links,
        extra_read=extra,
        secret_files=tuple(secrets),
        slirp4netns=slirp,
        slirp_problem=slirp_problem,
    )
    return _cached
