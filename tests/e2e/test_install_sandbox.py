"""Install commands run in the sandbox of the backend they install, through the real admin API of the real tree.

A hostile install command tries to read the gateway's secrets (every /proc/<pid>/environ it can see, the session
secret, the CLI's credential in the runtime dir, the config file), to write outside its install directory (next
to it in the tools folder, in the config dir, in the test's directory), and checks its own environment. A normal
install next to it still creates its install directory and uses its HOME.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_supervisor.protocol.endpoints import runtime_dir_for
from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.e2e.test_admin_api import AdminClient
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

USER, PASSWORD = "installs-admin", "Admin-Pass-7f3k2"
KEY = "client-key-9d8e7f6a5b4c"


def probes(sup_pid: int, config_dir: Path, tools: Path, outside: Path) -> str:
    """One shell command: a line per attempt, `LEAK <what>: <content>` when something was read."""
    runtime = runtime_dir_for(config_dir)
    reads = {
        "session secret": config_dir / ".session_secret",
        "config file": config_dir / "mcp_server.json",
        "cli.secret": runtime / "cli.secret",
        "supervisor environ": Path(f"/proc/{sup_pid}/environ"),
    }
    lines = ["env | grep -E '^(ADMIN_PASSWORD|ALLOWED_KEYS|SESSION_SECRET|MCP_SUPERVISOR_)' | sed 's/^/LEAK env: /'"]
    for what, path in reads.items():
        quoted = shlex.quote(str(path))
        lines.append(
            f'c=$(head -c 300 {quoted} 2>/dev/null | tr "\\0" " "); '
            f'if [ -n "$c" ]; then echo "LEAK {what}: $c"; else echo "closed {what}"; fi'
        )
    # Every environ this sandbox can see: none may hold the gateway's secrets.
    lines.append(
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\" 2>/dev/null "
        "| grep -E '^(ADMIN_PASSWORD|ALLOWED_KEYS)=' | sed \"s|^|LEAK $f: |\"; done"
    )
    for what, path in {
        "tools sibling": tools / "escaped.txt",
        "config dir": config_dir / "escaped.txt",
        "test dir": outside / "escaped.txt",
        "runtime dir": runtime / "escaped.txt",
    }.items():
        lines.append(f"echo x > {shlex.quote(str(path))} 2>/dev/null && echo 'wrote {what}' || echo 'refused {what}'")
    lines.append("mkdir hostile && echo 'home' > \"$HOME/hostile-home\" && echo installed")
    return "; ".join(lines)


@pytest.fixture
def admin(tmp_path: Path, supervisor_factory: Any) -> Iterator[tuple[RunningSupervisor, AdminClient]]:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"seed": stdio_fixture_entry("seed")})
    sup: RunningSupervisor = supervisor_factory(
        config_dir,
        {
            "ENABLE_ADMIN_UI": "true",
            "ADMIN_USERNAME": USER,
            "ADMIN_PASSWORD": PASSWORD,
            "ALLOWED_KEYS": KEY,
            "TOOLS_FOLDER": str(tmp_path / "tools"),
        },
    )
    client = AdminClient(sup.base)
    login = wait_until(lambda: (r := client.login(USER, PASSWORD)).status_code == 200 and r, 30, what="the admin login")
    assert login
    yield sup, client
    client.http.close()


def install(client: AdminClient, key: str, commands: list[str]) -> dict[str, Any]:
    entry = {**stdio_fixture_entry(key), "installCommands": commands}
    saved = client.call("POST", "/admin/servers", json={"key": key, "entry": entry})
    assert saved.status_code == 200, saved.text
    started = client.call("POST", f"/admin/server/install/{key}")
    assert started.status_code == 202, started.text

    def finished() -> dict[str, Any] | None:
        listed = {i["serverKey"]: i for i in client.call("GET", "/admin/installs").json()["installs"]}
        item = listed.get(key)
        return item if item is not None and not item["running"] else None

    result: dict[str, Any] = wait_until(finished, 60, what=f"the install of {key}")
    return result


def test_install_commands_cannot_reach_the_gateways_secrets_nor_write_outside(
    admin: tuple[RunningSupervisor, AdminClient], tmp_path: Path
) -> None:
    sup, client = admin
    tools, outside = tmp_path / "tools", tmp_path / "outside"
    outside.mkdir()
    wait_until(lambda: (sup.config_dir / ".session_secret").exists(), 10, what="the session secret")
    hostile = install(client, "hostile", [probes(sup.process.pid, sup.config_dir, tools, outside)])
    output = hostile["output"]
    print("\n".join(output))
    assert hostile["exitCode"] == 0 and "installed" in output, output
    leaks = [line for line in output if line.startswith("LEAK")]
    secrets = [PASSWORD, KEY, (sup.config_dir / ".session_secret").read_text().strip()[:16]]
    assert not leaks and not any(s in line for s in secrets for line in output), output
    runtime = runtime_dir_for(sup.config_dir)
    for escaped in (tools / "escaped.txt", sup.config_dir / "escaped.txt", outside / "escaped.txt"):
        assert not escaped.exists(), f"the install wrote {escaped}"
    assert not (runtime / "escaped.txt").exists()
    # Its own install directory and HOME were written; nothing of the staging is left in the tools folder.
    assert (tools / "hostile").is_dir()
    assert sorted(p.name for p in tools.iterdir()) == ["hostile"], list(tools.iterdir())


def test_a_normal_install_still_works_and_a_failed_one_leaves_nothing(
    admin: tuple[RunningSupervisor, AdminClient], tmp_path: Path
) -> None:
    _, client = admin
    tools = tmp_path / "tools"
    normal = install(client, "normal", ["mkdir normal && echo built > normal/marker", "echo cached > $HOME/cache"])
    assert normal["exitCode"] == 0, normal
    assert (tools / "normal" / "marker").read_text() == "built\n"
    failed = install(client, "broken", ["mkdir broken && echo half > broken/file", "exit 4"])
    assert failed["exitCode"] == 4, failed
    assert sorted(p.name for p in tools.iterdir()) == ["normal"], list(tools.iterdir())
