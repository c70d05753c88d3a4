"""A real authorization server for the OAuth tests: tests/fixtures/oidc_provider.mjs (panva's oidc-provider,
from the npm lock) on a loopback port, and a client-credentials token getter."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.helpers import free_port, port_open, stop_process, wait_until
from tests.npm_tools import INSTALL_HINT, NODE, NODE_MODULES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "fixtures" / "oidc_provider.mjs"
PROVIDER = NODE_MODULES / "oidc-provider" / "lib" / "index.js"


@dataclass
class AuthServer:
    port: int
    keys_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, kids: Sequence[str] = ("key-1",)) -> AuthServer:
        assert PROVIDER.is_file(), f"oidc-provider is not installed in {NODE_MODULES}. {INSTALL_HINT}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(NODE),
                    str(SCRIPT),
                    "--port",
                    str(self.port),
                    "--keys-dir",
                    str(self.keys_dir),
                    "--kids",
                    ",".join(kids),
                    "--provider",
                    str(PROVIDER),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: port_open(self.port), 30, what="the authorization server")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self, kids: Sequence[str]) -> None:
        """Key rotation: the same issuer, now signing with kids[0]."""
        self.stop()
        wait_until(lambda: not port_open(self.port), 10, what="the old authorization server to go")
        self.start(kids)

    def token(self, client_id: str, resource: str, scope: str = "mcp:tools") -> str:
        data = {"grant_type": "client_credentials", "resource": resource}
        if scope:
            data["scope"] = scope
        reply = httpx2.post(f"{self.issuer}/token", data=data, auth=(client_id, f"{client_id}-secret"), timeout=10)
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token

    def issued(self, client_id: str) -> int:
        """How many access tokens the server has issued to `client_id` since it started."""
        reply = httpx2.get(f"{self.issuer}/test/issued", timeout=10)
        assert reply.status_code == 200, reply.text
        count: int = reply.json().get(client_id, 0)
        return count


def auth_server(tmp: Path, kids: Sequence[str] = ("key-1",)) -> AuthServer:
    keys = tmp / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    return AuthServer(free_port(), keys, tmp / "oidc-provider.log").start(kids)
