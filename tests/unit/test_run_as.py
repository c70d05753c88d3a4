"""`"sandbox": {"runAs": ...}`: names and numbers resolved, what cannot be honoured refused with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.supervisor.backend_launch import _closed_to
from mcp_supervisor.system.sandbox_policy import SandboxPolicy, SandboxUnavailable, resolve_run_as

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root may switch to another uid")


def test_the_config_spells_it_run_as() -> None:
    policy = msgspec.json.decode(b'{"runAs": "nobody:65534"}', type=SandboxPolicy)
    assert policy.run_as == "nobody:65534"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"runAs": "a b"}', type=SandboxPolicy)


@needs_root
def test_names_and_numbers_resolve() -> None:
    assert resolve_run_as("65534:65534", "k") == (65534, 65534)
    assert resolve_run_as("root", "k") == (0, 0)
    assert resolve_run_as("0:12345", "k") == (0, 12345)
    assert resolve_run_as("54321", "k") == (54321, 54321)  # a uid without an account: its number as the gid
    with pytest.raises(SandboxUnavailable, match="names no user 'no-such-user'"):
        resolve_run_as("no-such-user", "k")
    with pytest.raises(SandboxUnavailable, match="names no group 'no-such-group'"):
        resolve_run_as("0:no-such-group", "k")


@pytest.mark.skipif(os.geteuid() == 0, reason="as root any uid may be chosen")
def test_without_root_only_our_own_uid_is_accepted() -> None:
    assert resolve_run_as(f"{os.geteuid()}:{os.getegid()}", "k") == (os.geteuid(), os.getegid())
    with pytest.raises(SandboxUnavailable, match="needs the supervisor to run as root"):
        resolve_run_as("65534:65534", "k")


def test_a_home_behind_a_closed_directory_is_found(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "state").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(closed, 0o700)
    assert _closed_to(closed / "state", 65534, 65534) == closed
    os.chmod(closed, 0o711)
    found = _closed_to(closed / "state", 65534, 65534)
    assert found is None or found not in (closed, closed / "state")  # pytest's own 0700 tmp may be above
