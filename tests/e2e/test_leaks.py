"""What health endpoints and logs show: never a credential from a URL, and nothing to a rebinding page.

A remote backend whose URL carries userinfo and a token parameter points at a loopback server of the test's
that answers every request 401, so it fails with errors (and library log lines) that quote its URL; the secrets
must not appear in `/health/backends`, `status --json`, the supervisor's log or `mcp-supervisor logs KEY`.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PASSWORD, TOKEN = "PWSECRET-4711", "QSECRET-0815"


class Refuse(BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        self.send_response(401)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def start(tmp_path: Path, supervisor_factory: Any, port: int) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(
        config_dir,
        {
            "local": stdio_fixture_entry("local"),
            "remote": {"type": "http", "url": f"http://user:{PASSWORD}@127.0.0.1:{port}/mcp?token={TOKEN}"},
        },
    )
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"local"})
    return sup


async def test_urls_are_shown_and_logged_without_their_credentials(
    tmp_path: Path, supervisor_factory: Any, refusing_port: int
) -> None:
    """Issue 14: /health/backends and status --json showed `http://user:PWSECRET@…` in a remote's last_error."""
    sup = start(tmp_path, supervisor_factory, refusing_port)
    remote = wait_until(
        lambda: (r := sup.backends().get("remote")) and r.get("last_error") and r, 30, what="the remote to fail"
    )
    status = subprocess.run(
        [SUPERVISOR_CMD, "status", "--json", "--config-dir", str(sup.config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    logs = subprocess.run(
        [SUPERVISOR_CMD, "logs", "remote", "--config-dir", str(sup.config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    shown = {
        "/health/backends": httpx2.get(f"{sup.base}/health/backends", timeout=5).text,
        "status --json": status.stdout,
        "logs remote": logs.stdout + logs.stderr,
        "supervisor log": sup.log_path.read_text(errors="replace"),
    }
    print(f"\nremote's last error: {remote['last_error']}")
    # The URL is quoted (which endpoint failed), its credentials masked.
    assert f"http://***@127.0.0.1:{refusing_port}/mcp?token=***" in remote["last_error"], remote
    for where, text in shown.items():
        assert PASSWORD not in text and TOKEN not in text, f"{where} shows a credential:\n{text[-3000:]}"


@pytest.mark.parametrize("path", ["/health", "/health/backends", "/metrics"])
async def test_health_and_metrics_refuse_a_rebinding_host(
    tmp_path: Path, supervisor_factory: Any, refusing_port: int, path: str
) -> None:
    """Issue 14: /health* and /metrics skipped the Host check, so a DNS-rebinding page could read them."""
    sup = start(tmp_path, supervisor_factory, refusing_port)
    with httpx2.Client(base_url=sup.base, timeout=5) as http:
        assert http.get(path, headers={"host": "attacker.example"}).status_code == 421
        assert http.get(path, headers={"host": f"localhost:{sup.port}"}).status_code == 200
        # Probes ask by address (a pod IP, Docker's 127.0.0.1): an IP cannot be rebound, so it always passes.
        assert http.get(path, headers={"host": f"10.1.2.3:{sup.port}"}).status_code == 200
