"""Wiring a backend's own network namespace while it starts (worker side; the plan is system/network.py).

bwrap makes the namespaces, reports its namespace init's pid on `--info-fd`, and waits on `--block-fd`. Meanwhile:

1. `/proc/PID/ns/net`, and (ioctl NS_GET_USERNS) the user namespace that owns it: bwrap's outer one, not the
   nested one --disable-userns leaves the backend in, which does not own the netns (setns there fails EPERM);
2. once bwrap has brought the namespace's `lo` up (slirp4netns does too, and bwrap dies if it finds the address
   there first), slirp4netns enters both by fd (--userns-path, --netns-type=path: /proc/self/fd/N) and makes tap0
   with 10.0.2.100, a default route and DNS at 10.0.2.3, with --disable-host-loopback, its own sandbox and
   seccomp filter. It exits when the write end of its --exit-fd closes: when the backend's connection closes, or
   the worker dies;
3. a forked child enters both namespaces and sets routes (netlink.py): the host's own addresses and 169.254.0.0/16
   unreachable, or only the allowed networks routed; and binds the listeners of `hostPorts` on 127.0.0.1 there,
   sent back over a socketpair (the worker relays them to the host: port_relay.py);
4. a byte on the block fd: bwrap execs the backend. A failure before it kills bwrap (and its namespace): the
   backend never runs with half a network.

Nothing touches the backend's stdio, so a call costs what it did. About 12 ms per start, most of it slirp4netns'.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from mcp_supervisor.errors import BackendError
from mcp_supervisor.system.launch import EXIT_LAUNCH_FAILED
from mcp_supervisor.system.netlink import CLONE_NEWNET, CLONE_NEWUSER, apply_routes, host_addresses, setns
from mcp_supervisor.system.network import BLOCK_FD, INFO_FD, RESOLV_CONF, RESOLV_FD, SLIRP_GATEWAY, NetworkSetup
from mcp_supervisor.system.port_relay import relay

NS_GET_USERNS = 0xB701
SIOCGIFFLAGS, IFF_UP = 0x8913, 0x1
WIRE_TIMEOUT_S = 10.0
LINK_LOCAL = "169.254.0.0/16"
# What a user-mode stack gives a sandbox: slirp4netns' own example. 65520 saves per-packet work in both directions.
_SLIRP_OPTIONS = ("--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp")
# The outer stage's cgroup join (system/sandbox.py's SHELL_STAGE, without its core-dump limit).
_JOIN = f'while [ "$1" != -- ]; do echo 0 > "$1" || exit {EXIT_LAUNCH_FAILED}; shift; done; shift; exec "$@"'


@dataclass
class Network:
    """What lives as long as the backend: slirp4netns (ends when `exit_fd` closes) and the port relays."""

    slirp: asyncio.subprocess.Process
    exit_fd: int
    listeners: list[socket.socket] = field(default_factory=list)  # hostPorts, made in the namespace, in order
    relays: list[asyncio.Server] = field(default_factory=list)  # serving them (port_relay.py)

    def close(self) -> None:
        for server in self.relays:
            server.close()
        for listener in self.listeners:
            listener.close()
        with contextlib.suppress(OSError):
            os.close(self.exit_fd)


class Wiring:
    """The fds of one start: made before the spawn (`pass_fds`, `substitute`), the child's ends closed after it."""

    def __init__(self, setup: NetworkSetup) -> None:
        self.setup = setup
        self._info_r, self._info_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._block_r, self._block_w = os.pipe2(os.O_CLOEXEC)
        self._resolv_r, resolv_w = os.pipe2(os.O_CLOEXEC)
        os.write(resolv_w, RESOLV_CONF.encode())
        os.close(resolv_w)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._info_w, self._block_r, self._resolv_r)

    def substitute(self, argv: Sequence[str]) -> list[str]:
        fds = {INFO_FD: self._info_w, BLOCK_FD: self._block_r, RESOLV_FD: self._resolv_r}
        return [str(fds[arg]) if arg in fds else arg for arg in argv]

    def spawned(self) -> None:
        """The child has its copies: drop ours, so the info pipe ends when bwrap closes it."""
        for fd in (self._info_w, self._block_r, self._resolv_r):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for fd in (self._info_r, self._block_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def wire(self) -> Network:
        """Steps 1 to 4 of the module's text; BackendError (the caller kills bwrap) when a step fails."""
        try:
            async with asyncio.timeout(WIRE_TIMEOUT_S):
                pid = await _namespace_pid(self._info_r)
                netfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    userfd = fcntl.ioctl(netfd, NS_GET_USERNS)
                    try:
                        return await self._wire_namespace(userfd, netfd)
                    finally:
                        os.close(userfd)
                finally:
                    os.close(netfd)
        except (OSError, ValueError, TimeoutError) as exc:
            raise BackendError(f"The backend's network namespace could not be set up: {exc}") from None

    async def _wire_namespace(self, userfd: int, netfd: int) -> Network:
        await _loopback_up(userfd, netfd)
        network = await _start_slirp(self.setup, userfd, netfd)
        try:
            network.listeners = _configure(self.setup, userfd, netfd)
            os.write(self._block_w, b"1")
        except BaseException:
            network.close()
            raise
        return network


async def connect(process: asyncio.subprocess.Process, wiring: Wiring) -> Network:
    """After `process` (the planned argv, `wiring.substitute`d, with `wiring.pass_fds`) was started: wire its
    namespace and relay its hostPorts. On failure, bwrap (still waiting) is killed, and with it the namespace:
    the backend never runs; BackendError says why."""
    try:
        wiring.spawned()
        network = await wiring.wire()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        if process.stdin is not None:
            process.stdin.close()  # 3.11's wait() also waits for the pipes
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 2.0)
        raise
    finally:
        wiring.close()
    try:
        for port, listener in zip(wiring.setup.host_ports, network.listeners, strict=True):
            network.relays.append(await relay(listener, port))
    except BaseException:
        network.close()
        raise
    return network


async def exec_planned(
    argv: Sequence[str], setup: NetworkSetup | None, **options: Any
) -> tuple[asyncio.subprocess.Process, Network | None]:
    """Start a planned argv as asyncio.create_subprocess_exec does (`options`), with its own network when the plan
    has one: for what runs a plan besides the worker (install commands). `Network.close()` once it exited."""
    if setup is None:
        return await asyncio.create_subprocess_exec(*argv, **options), None
    wiring = Wiring(setup)
    try:
        process = await asyncio.create_subprocess_exec(*wiring.substitute(argv), pass_fds=wiring.pass_fds, **options)
    except BaseException:
        wiring.spawned()
        wiring.close()
        raise
    return process, await connect(process, wiring)


async def _readable(fd: int) -> None:
    """Until `fd` can be read (in the event loop: the worker starts no thread before its backend runs)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await readable
    finally:
        loop.remove_reader(fd)


async def _namespace_pid(info_fd: int) -> int:
    """bwrap's `{"child-pid": N}` on the info fd."""
    data = b""
    while True:
        await _readable(info_fd)
        chunk = os.read(info_fd, 4096)
        if not chunk:
            raise ValueError("bubblewrap exited before it made the namespaces")
        data += chunk
        with contextlib.suppress(ValueError):
            return int(json.loads(data)["child-pid"])


def _userns_is_ours(userfd: int) -> bool:
    """As root without user namespaces, bwrap's netns belongs to our own user namespace: nothing to enter."""
    mine, theirs = os.stat("/proc/self/ns/user"), os.fstat(userfd)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


async def _start_slirp(setup: NetworkSetup, userfd: int, netfd: int) -> Network:
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    argv = [setup.slirp4netns, *_SLIRP_OPTIONS, "--ready-fd", str(ready_w), "--exit-fd", str(exit_r)]
    if not _userns_is_ours(userfd):
        argv += ["--userns-path", f"/proc/self/fd/{userfd}"]
    argv += ["--netns-type=path", f"/proc/self/fd/{netfd}", "tap0"]
    if setup.cgroup_procs:  # accounted to the backend: its cgroup's memory limit and kill cover it
        argv = ["/bin/sh", "-c", _JOIN, "mcp-slirp-join", *setup.cgroup_procs, "--", *argv]
    # Its progress lines (four per start) would fill the worker's log: kept aside, read only if it fails.
    said = os.memfd_create("slirp4netns-stderr", os.MFD_CLOEXEC)
    try:
        slirp = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=said,
            pass_fds=(userfd, netfd, ready_w, exit_r),
            start_new_session=True,  # not in the worker's group: it exits by its exit fd, after the backend
        )
    except OSError:
        for fd in (ready_r, ready_w, exit_r, exit_w, said):
            os.close(fd)
        raise
    os.close(ready_w)
    os.close(exit_r)
    network = Network(slirp, exit_w)
    try:
        await _readable(ready_r)
        if os.read(ready_r, 1) != b"1":
            status = await slirp.wait()
            words = os.pread(said, 2000, 0).decode(errors="replace").strip().splitlines()[-3:]
            raise OSError(f"slirp4netns exited before it was ready (status {status}: {' / '.join(words)})")
    except BaseException:
        network.close()
        raise
    finally:
        os.close(ready_r)
        os.close(said)
    return network


async def _loopback_up(userfd: int, netfd: int) -> None:
    """Until bwrap has set up the namespace's loopback: slirp4netns brings `lo` up too, and bwrap dies when its
    own RTM_NEWADDR finds the address there already ("loopback: Failed RTM_NEWADDR", seen under load). A forked
    child enters the namespace and polls `lo`'s flags; its pidfd says when it is done."""
    enter_user = not _userns_is_ours(userfd)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if enter_user:
                setns(userfd, CLONE_NEWUSER)
            setns(netfd, CLONE_NEWNET)
            status = 0 if _wait_for_up("lo", WIRE_TIMEOUT_S) else 2
        finally:
            os._exit(status)
    pidfd = os.pidfd_open(pid)
    try:
        await _readable(pidfd)
    except BaseException:  # the timeout, a cancellation: end the child rather than wait for it
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(pidfd)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # noqa: ASYNC222 - it has exited: no wait
    if status != 0:
        raise OSError(f"bubblewrap did not bring the namespace's loopback up (status {status})")


def _wait_for_up(name: str, timeout_s: float) -> bool:
    request = struct.pack("16sH", name.encode(), 0)
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while time.monotonic() < deadline:
            flags = struct.unpack_from("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
            if flags & IFF_UP:
                return True
            time.sleep(0.001)
    return False


def _resolve(setup: NetworkSetup) -> list[str] | None:
    """The allowed destinations as IPv4 CIDRs (host names resolved now: a later change of address is not followed);
    None when the default route stays."""
    if not setup.restrict:
        return None
    cidrs = []
    for target in setup.allow:
        try:
            network = ipaddress.ip_network(target, strict=False)
        except ValueError:
            infos = socket.getaddrinfo(target, None, socket.AF_INET, socket.SOCK_STREAM)
            cidrs += [f"{info[4][0]}/32" for info in infos]
            continue
        if network.version == 4:  # slirp4netns is run without IPv6
            cidrs.append(str(network))
    return cidrs


def _configure(setup: NetworkSetup, userfd: int, netfd: int) -> list[socket.socket]:
    """Step 3 in a forked child (setns needs a single thread); the hostPorts listeners it made, in order."""
    unreachable = [f"{address}/32" for address in host_addresses()] + [LINK_LOCAL]
    allow = _resolve(setup)
    enter_user = not _userns_is_ours(userfd)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours:
        pid = os.fork()
        if pid == 0:
            ours.close()
            _configure_child(theirs, userfd if enter_user else -1, netfd, unreachable, allow, setup.host_ports)
        theirs.close()
        ours.settimeout(WIRE_TIMEOUT_S)
        try:
            message, fds, _, _ = socket.recv_fds(ours, 4096, max(1, len(setup.host_ports)))
        except OSError:  # the timeout included: never wait for a child that hangs
            os.kill(pid, signal.SIGKILL)
            raise
        finally:
            os.waitpid(pid, 0)
    listeners = [socket.socket(fileno=fd) for fd in fds]
    if message != b"ok" or len(listeners) != len(setup.host_ports):
        for listener in listeners:
            listener.close()
        raise OSError(message.decode(errors="replace") or "the namespace set-up ended without a word")
    return listeners


def _without_ipv6() -> None:
    """slirp4netns runs without IPv6, so packets to any IPv6 address (fe80::/10 too) would vanish unanswered: turn
    it off on tap0, and such connects fail at once. The loopback keeps ::1. (/proc/sys/net shows the namespace of
    whoever opens it: ours, now.)"""
    with contextlib.suppress(FileNotFoundError), open("/proc/sys/net/ipv6/conf/tap0/disable_ipv6", "w") as knob:
        knob.write("1")


def _configure_child(
    sock: socket.socket, userfd: int, netfd: int, unreachable: list[str], allow: list[str] | None, ports: Sequence[int]
) -> NoReturn:
    status = 1
    try:
        if userfd >= 0:
            setns(userfd, CLONE_NEWUSER)
        setns(netfd, CLONE_NEWNET)
        apply_routes(unreachable, allow, SLIRP_GATEWAY)
        _without_ipv6()
        listeners = []
        for port in ports:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            listeners.append(listener.fileno())
        socket.send_fds(sock, [b"ok"], listeners)
        status = 0
    except BaseException as exc:  # a forked child: report, never return into the worker's code
        with contextlib.suppress(OSError):
            sock.send(f"routes and listeners: {exc}".encode(errors="replace")[:4000])
    finally:
        os._exit(status)
