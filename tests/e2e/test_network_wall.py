"""Issue 22, the network wall, end to end: each sandboxed stdio backend has a network namespace of its own.

A hostile backend (`tests/fixtures/network_server.py`) under the default config tries the front door (the
gateway's own /mcp, to call another backend's tool), a database on the host's 127.0.0.1, the host's own
non-loopback address (a server bound to 0.0.0.0), cloud metadata at 169.254.169.254 and the gateway's PORT and
HOST in its environment; every attempt fails and the other backend keeps serving.

"Outside" is a network namespace the test makes (`outside` fixture): a veth pair on 10.213.0.0/30 and an HTTP
server inside, also answering on 10.213.1.1 (a second address, routed through the veth). A backend with the
default network reaches it, one with `network: false` does not; `allow` reaches only what it names (and only the
named port), `hostPorts` only the named loopback port. No traffic leaves loopback and that namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import ROOT, RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_hostile_backend import attack, cli, session, text_of
from tests.helpers import free_port, stop_process, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

NETWORK_SERVER = ROOT / "tests" / "fixtures" / "network_server.py"
OUTSIDE, OUTSIDE_OTHER, OUTSIDE_HOST = "10.213.0.2", "10.213.1.1", "10.213.0.1"
OUTSIDE_BODY = "outside-ok"


def needs_namespaces() -> None:
    if shutil.which("slirp4netns") is None or shutil.which("bwrap") is None:
        pytest.skip("slirp4netns and bubblewrap are needed (make sandbox-tools)")


def entry(name: str, network: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "stdio", "command": sys.executable, "args": [str(NETWORK_SERVER), "--name", name]}
    if network is not None:
        found["sandbox"] = {"network": network}
    return found


@contextlib.contextmanager
def listener(address: str) -> Iterator[int]:
    """A TCP listener that accepts nothing (the kernel completes connects): a stand-in database."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def host_address() -> str | None:
    """One of this host's own IPv4 addresses outside loopback (and outside the test's own namespace)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith(("127.", "10.213.")):
                return str(address.address)
    return None


def _ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[int]:
    """A network namespace with an HTTP server on port (yielded) of 10.213.0.2 and 10.213.1.1; removed after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("making a network namespace needs root and iproute2")
    tag = f"mnw{os.getpid() % 100000}"
    namespace, host_end, inner_end = tag, f"{tag}h", f"{tag}n"
    served = tmp_path / "served"
    served.mkdir()
    (served / "index.html").write_text(OUTSIDE_BODY)
    port = free_port()
    server = None
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        _ip("link", "set", inner_end, "netns", namespace)
        _ip("addr", "add", f"{OUTSIDE_HOST}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        for command in (
            ("addr", "add", f"{OUTSIDE}/30", "dev", inner_end),
            ("link", "set", inner_end, "up"),
            ("link", "set", "lo", "up"),
            ("addr", "add", f"{OUTSIDE_OTHER}/32", "dev", "lo"),
        ):
            _ip("-n", namespace, *command)
        _ip("route", "add", f"{OUTSIDE_OTHER}/32", "via", OUTSIDE)
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "http.server", "--bind", "0.0.0.0", str(port)],
            cwd=served,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open_at(OUTSIDE, port), 15, what="the outside HTTP server")
        yield port
    finally:
        if server is not None:
            stop_process(server)
        _ip("route", "del", f"{OUTSIDE_OTHER}/32", check=False)
        _ip("link", "del", host_end, check=False)
        _ip("netns", "del", namespace, check=False)


def port_open_at(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
        return True
    return False


def start(
    factory: Any, tmp_path: Path, servers: dict[str, Any], env: dict[str, str] | None = None
) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, servers)
    sup: RunningSupervisor = factory(config_dir, env)
    sup.wait_linked(set(servers))
    return sup


def network_account(sup: RunningSupervisor, key: str) -> dict[str, Any]:
    sandbox = sup.backends()[key]["sandbox"]
    status = json.loads(cli(sup.config_dir, "status", "--json").stdout)
    shown = next(b for b in status["backends"] if b["key"] == key)["sandbox"]
    print(f"\n{key}: enforced {sandbox['enforced'].get('network')!r}; gaps {sandbox['not_enforced'].get('network')!r}")
    assert shown["enforced"].get("network") == sandbox["enforced"].get("network")
    return dict(sandbox)


async def test_default_network_walls_off_the_host(tmp_path: Path, supervisor_factory: Any) -> None:
    needs_namespaces()
    own_address = host_address()
    servers = {"attacker": entry("attacker"), "victim": stdio_fixture_entry("victim")}
    with listener("127.0.0.1") as database, listener("0.0.0.0") as wildcard:
        sup = start(supervisor_factory, tmp_path, servers, {"PORT": "3663", "HOST": "127.0.0.1"})
        sandbox = network_account(sup, "attacker")
        async with session(sup) as client:
            front = await attack(client, sup, "gateway", {"port": sup.port, "tool": "victim--echo", "text": "x"})
            db = await attack(client, sup, "connect", {"host": "127.0.0.1", "port": database})
            own = None
            if own_address is not None:
                own = await attack(client, sup, "connect", {"host": own_address, "port": wildcard})
            metadata = await attack(client, sup, "connect", {"host": "169.254.169.254", "port": 80, "timeout": 5})
            link6 = await attack(client, sup, "connect", {"host": "fe80::1%tap0", "port": 80, "timeout": 5})
            env = await attack(client, sup, "env", {"names": ["PORT", "HOST", "ALLOWED_HOSTS", "ENABLE_ADMIN_UI"]})
            victim = await client.call_tool("victim--echo", {"text": "still here"})
    print(f"front door: {front}\ndatabase: {db}\nown address {own_address}: {own}\nmetadata: {metadata}")
    print(f"fe80::1: {link6}\nenv: {env}")
    broken = {
        "called another backend's tool through the gateway's /mcp": front["ok"],
        "reached a database on the host's 127.0.0.1": db["ok"],
        f"reached the host's own address {own_address} (a 0.0.0.0 listener)": own is not None and own["ok"],
        "169.254.169.254 was routed (or took long to fail)": metadata["ok"] or metadata["ms"] >= 2000,
        "fe80::1 on tap0 was routed (or took long to fail)": link6["ok"] or link6["ms"] >= 2000,
        f"its environment holds the gateway's {sorted(env['found'])}": bool(env["found"]),
    }
    assert not [what for what, bad in broken.items() if bad], [what for what, bad in broken.items() if bad]
    assert text_of(victim) == "victim: still here"
    assert "own network namespace" in sandbox["enforced"]["network"], sandbox


async def test_default_network_reaches_outside_and_false_does_not(
    tmp_path: Path, supervisor_factory: Any, outside: int
) -> None:
    needs_namespaces()
    servers = {"online": entry("online"), "offline": entry("offline", False)}
    sup = start(supervisor_factory, tmp_path, servers)
    network_account(sup, "online")
    url = f"http://{OUTSIDE}:{outside}/"
    async with session(sup) as client:
        online = await attack(client, sup, "get", {"url": url}, key="online")
        offline = await attack(client, sup, "get", {"url": url}, key="offline")
    print(f"online: {online}\noffline: {offline}")
    assert online["ok"] and OUTSIDE_BODY in online["body"], f"the default network did not reach outside: {online}"
    assert not offline["ok"], f"network false reached outside: {offline}"


async def test_allow_and_host_ports_reach_only_what_they_name(
    tmp_path: Path, supervisor_factory: Any, outside: int
) -> None:
    needs_namespaces()
    with listener("127.0.0.1") as named, listener("127.0.0.1") as unnamed:
        servers = {
            "allowed": entry("allowed", {"allow": [OUTSIDE]}),
            "allowport": entry("allowport", {"allow": [f"{OUTSIDE}:{outside}"]}),
            "ports": entry("ports", {"hostPorts": [named]}),
        }
        sup = start(supervisor_factory, tmp_path, servers)
        network_account(sup, "allowport")
        other_port = free_port()
        async with session(sup) as client:
            reports = {
                "allowed named": await attack(
                    client, sup, "get", {"url": f"http://{OUTSIDE}:{outside}/"}, key="allowed"
                ),
                "allowed other": await attack(
                    client, sup, "connect", {"host": OUTSIDE_OTHER, "port": outside}, key="allowed"
                ),
                "port named": await attack(
                    client, sup, "get", {"url": f"http://{OUTSIDE}:{outside}/"}, key="allowport"
                ),
                "port other": await attack(
                    client, sup, "connect", {"host": OUTSIDE, "port": other_port}, key="allowport"
                ),
                "host named": await attack(client, sup, "connect", {"host": "127.0.0.1", "port": named}, key="ports"),
                "host other": await attack(client, sup, "connect", {"host": "127.0.0.1", "port": unnamed}, key="ports"),
                "host outside": await attack(client, sup, "connect", {"host": OUTSIDE, "port": outside}, key="ports"),
            }
    for what, report in reports.items():
        print(f"{what}: {report}")
    expected = {"allowed named", "port named", "host named", "host outside"}  # hostPorts alone keeps the egress
    wrong = {what: r for what, r in reports.items() if r["ok"] != (what in expected)}
    assert not wrong, f"reached what was not named, or not what was: {wrong}"
