"""The audit trail (AUDIT_LOG): one JSON line per client request that reaches a backend, naming who called what,
for two clients with static keys over /mcp; arguments absent by default, and redacted when AUDIT_ARGUMENTS=true."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

KEY_A, KEY_B = "key-of-team-a", "key-of-team-b"
CLIENTS = {
    "clients": {
        "team-a": {"match": {"keys": [KEY_A]}, "servers": ["*"]},
        "team-b": {"match": {"keys": [KEY_B]}, "servers": ["*"]},
    }
}
SECRET_ARGUMENTS = {
    "text": "visible",
    "apiToken": "tok-123",
    "nested": {"password": "pw-456", "list": [{"secret": "s"}]},
}


def _start(tmp_path: Path, supervisor_factory: Any, arguments: bool) -> tuple[RunningSupervisor, Path]:
    config = tmp_path / "config"
    write_config(config, {"alpha": stdio_fixture_entry("alpha")})
    (config / "clients.json").write_text(json.dumps(CLIENTS))
    audit = tmp_path / "audit" / "audit.jsonl"
    audit.parent.mkdir()
    env = {"ALLOWED_KEYS": f"{KEY_A},{KEY_B}", "AUDIT_LOG": str(audit)}
    if arguments:
        env["AUDIT_ARGUMENTS"] = "true"
    sup: RunningSupervisor = supervisor_factory(config, env)
    sup.wait_linked({"alpha"})
    return sup, audit


def _lines(audit: Path) -> list[dict[str, Any]]:
    if not audit.exists():
        return []
    return [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]


async def test_one_line_per_call_for_two_clients(tmp_path: Path, supervisor_factory: Any) -> None:
    sup, audit = _start(tmp_path, supervisor_factory, arguments=False)
    async with mcp_client(sup.url, {"X-Api-Key": KEY_A}) as team_a, mcp_client(sup.url, {"X-Api-Key": KEY_B}) as team_b:
        await team_a.list_tools()  # answered from the gateway's cache: never reaches a backend, never audited
        assert (await team_a.call_tool("alpha--echo", SECRET_ARGUMENTS)).is_error is not True
        assert (await team_b.call_tool("alpha--add", {"a": 1, "b": 2})).is_error is not True
        assert (await team_a.call_tool("alpha--add", {"a": 3, "b": 4})).is_error is not True
    await async_wait_until(lambda: len(_lines(audit)) >= 3, 10, what="three audit lines")
    lines = _lines(audit)
    assert len(lines) == 3, lines
    first, second, third = lines
    assert first["principal"] == {"client": "team-a", "credential": "key#0", "subject": ""}
    assert second["principal"] == {"client": "team-b", "credential": "key#1", "subject": ""}
    assert third["principal"]["client"] == "team-a"
    assert [line["name"] for line in lines] == ["alpha--echo", "alpha--add", "alpha--add"]
    for line in lines:
        assert line["method"] == "tools/call"
        assert line["backend"] == "alpha"
        assert line["outcome"] == "ok"
        assert line["clientInfo"].get("name")  # the SDK client's own clientInfo
        assert line["durationMs"] >= 0
        assert line["bytesIn"] > 0 and line["bytesOut"] > 0
        assert line["time"].endswith("Z")
        assert "arguments" not in line  # off by default
    assert "tok-123" not in audit.read_text() and "visible" not in audit.read_text()


async def test_arguments_are_redacted_when_on(tmp_path: Path, supervisor_factory: Any) -> None:
    sup, audit = _start(tmp_path, supervisor_factory, arguments=True)
    async with mcp_client(sup.url, {"X-Api-Key": KEY_B}) as team_b:
        await team_b.call_tool("alpha--echo", SECRET_ARGUMENTS)
    await async_wait_until(lambda: len(_lines(audit)) >= 1, 10, what="an audit line")
    (line,) = _lines(audit)
    assert line["arguments"] == {
        "text": "visible",
        "apiToken": "[redacted]",
        "nested": {"password": "[redacted]", "list": [{"secret": "[redacted]"}]},
    }
    text = audit.read_text()
    assert "tok-123" not in text and "pw-456" not in text
