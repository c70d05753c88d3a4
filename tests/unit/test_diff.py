"""diff_servers: which backends a new config adds, removes or changes."""

from __future__ import annotations

from typing import Any

from mcp_supervisor.config.diff import ServersDiff, diff_servers
from mcp_supervisor.config.loader import parse_servers
from mcp_supervisor.config.models import ServerEntry


def _stdio(key: str, command: str = "run", **fields: Any) -> ServerEntry:
    return ServerEntry(key=key, type="stdio", command=command, **fields)


def test_added_removed_changed() -> None:
    old = {"keep": _stdio("keep"), "gone": _stdio("gone"), "edit": _stdio("edit", args=("--a",))}
    new = {"keep": _stdio("keep"), "edit": _stdio("edit", args=("--b",)), "fresh": _stdio("fresh")}
    diff = diff_servers(old, new)
    assert diff == ServersDiff(added=("fresh",), removed=("gone",), changed=("edit",))
    assert diff.empty is False


def test_unchanged_entry_is_not_changed() -> None:
    old = {"a": _stdio("a", env={"X": "1"}), "b": _stdio("b")}
    new = {"a": _stdio("a", env={"X": "1"}), "b": _stdio("b", command="other")}
    diff = diff_servers(old, new)
    assert diff.changed == ("b",)
    assert "a" not in diff.changed
    assert diff.added == ()
    assert diff.removed == ()


def test_identical_configs_give_an_empty_diff() -> None:
    data = b'{"mcpServers": {"a": {"command": "x"}, "b": {"url": "http://h/sse", "apiKey": "k"}}}'
    old = parse_servers(data).servers
    new = parse_servers(data).servers
    diff = diff_servers(old, new)
    assert diff == ServersDiff()
    assert diff.empty is True


def test_empty_to_empty_is_empty() -> None:
    assert diff_servers({}, {}).empty is True


def test_every_field_counts_as_a_change() -> None:
    base = _stdio("a")
    for variant in (
        _stdio("a", name="Display"),
        _stdio("a", env={"K": "v"}),
        _stdio("a", cwd="/tmp"),
        _stdio("a", installCommands=("make",)),
        _stdio("a", extra={"unknown": 1}),
    ):
        assert diff_servers({"a": base}, {"a": variant}).changed == ("a",)


def test_everything_added_and_removed() -> None:
    servers = {"x": _stdio("x"), "y": _stdio("y")}
    assert diff_servers({}, servers) == ServersDiff(added=("x", "y"))
    assert diff_servers(servers, {}) == ServersDiff(removed=("x", "y"))


def test_order_follows_the_configs() -> None:
    old = {"c": _stdio("c"), "a": _stdio("a")}
    new = {"z": _stdio("z"), "b": _stdio("b")}
    diff = diff_servers(old, new)
    assert diff.added == ("z", "b")
    assert diff.removed == ("c", "a")


def test_deactivating_a_server_removes_it_from_the_active_diff() -> None:
    old = parse_servers(b'{"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}}')
    new = parse_servers(b'{"mcpServers": {"a": {"command": "x"}, "b": {"command": "y", "active": "false"}}}')
    assert diff_servers(old.active(), new.active()) == ServersDiff(removed=("b",))
