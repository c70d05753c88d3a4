"""Neighbours' files: a backend sees the system and what it is granted, never what is granted to another backend.

Backend A ("victim") runs a script from an /opt-like directory next to a 0600 `.env` holding a token, with a cwd,
a readPath and a writePath of its own, all inside that directory. Backend B ("attacker", the hostile fixture) is
granted the whole /opt-like directory (as /opt itself used to be shown to every backend) and tries to read A's
files through each of A's grants. A directory granted to both (A as a readPath, B a file inside it) shows B its
own file and nothing of A's. A keeps serving all along.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import FIXTURE_SERVER
from tests.e2e.test_hostile_backend import (
    assert_steady,
    attack,
    failure,
    hostile_entry,
    launch,
    sandbox_status,
    session,
    shown,
    steady_victim,
    victim_serves,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = "GITHUB_TOKEN=ghp_neighbours_secret_0123456789"


def secret_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def neighbours_setup(tmp_path: Path) -> tuple[Path, dict[str, Path], Path, dict[str, Any]]:
    opt = tmp_path / "opt"
    script = opt / "victim" / "server.py"
    script.parent.mkdir(parents=True)
    shutil.copy(FIXTURE_SERVER, script)
    secrets = {
        "args path (.env next to the script)": secret_file(opt / "victim" / ".env", TOKEN),
        "cwd": secret_file(opt / "victim-work" / "notes.txt", "VICTIM-CWD-SECRET"),
        "readPaths": secret_file(opt / "victim-data" / "db.txt", "VICTIM-READPATH-SECRET"),
        "writePaths": secret_file(opt / "victim-out" / "log.txt", "VICTIM-WRITEPATH-SECRET"),
        "shared readPath": secret_file(opt / "shared" / "victim.txt", "VICTIM-SHARED-SECRET"),
    }
    own = opt / "shared" / "attacker.txt"
    own.write_text("ATTACKER-OWN-FILE")
    victim = {
        "type": "stdio",
        "command": sys.executable,
        "args": [str(script), "--name", "victim"],
        "cwd": str(opt / "victim-work"),
        "sandbox": {
            "readPaths": [str(opt / "victim-data"), str(opt / "shared")],
            "writePaths": [str(opt / "victim-out")],
        },
    }
    attacker = hostile_entry(tmp_path / "attacker", {"readPaths": [str(opt), str(own)]})
    return tmp_path / "config", secrets, own, {"victim": victim, "attacker": attacker}


async def test_backend_cannot_read_files_granted_to_another_backend(tmp_path: Path, supervisor_factory: Any) -> None:
    config_dir, secrets, own, servers = neighbours_setup(tmp_path)
    sup = launch(supervisor_factory, config_dir, servers)
    sup.wait_linked({"victim", "attacker"})
    sandbox_status(sup, "attacker")
    targets = [str(p) for p in secrets.values()] + [str(p.parent) for p in secrets.values()]
    async with session(sup) as client, steady_victim(sup) as steady:
        report = await attack(client, sup, "read", {"paths": [*targets, str(own)]})
        await victim_serves(client, sup)
    results = report["results"]
    print(f"\nread (attacker): {shown(results, 3000)}")
    # Masked paths may exist, empty: what must not leak is content (a name in a listing, a byte of a file). The
    # shared directory lists the attacker's own file (its mount point), and nothing else.
    leaked = {
        path: result
        for path, result in results.items()
        if path != str(own) and result["ok"] and (set(result.get("listing") or ()) - {own.name} or result.get("head"))
    }
    assert not leaked, failure(f"the attacker read its neighbour's files: {sorted(leaked)}", report, sup)
    assert results[str(own)].get("head") == "ATTACKER-OWN-FILE", failure("its own grant was hidden", report, sup)
    assert_steady(steady, sup)
