"""Tool aggregation: prefixing, pass-through of every field, overrides, collisions and routing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcp_supervisor.config.models import ToolConfig, ToolOverride
from mcp_supervisor.gateway.server.catalog import ToolRoute, aggregate_tools, qualified_name

EMPTY = ToolConfig()

RICH_TOOL: dict[str, Any] = {
    "name": "get_time",
    "title": "Get the time",
    "description": "Current time in a timezone.",
    "inputSchema": {
        "type": "object",
        "properties": {"tz": {"type": "string", "description": "IANA name"}},
        "required": ["tz"],
    },
    "outputSchema": {"type": "object", "properties": {"iso": {"type": "string"}}},
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
    "_meta": {"vendor/x": {"n": 1}},
    "icons": [{"src": "https://example.com/i.png", "mimeType": "image/png", "sizes": ["48x48"]}],
    "x-unknown-field": ["kept", {"as": "is"}],
}


def _tool(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object"}, **fields}


@pytest.mark.parametrize("separator", ["--", "__"])
def test_names_are_prefixed_with_server_key_and_separator(separator: str) -> None:
    result = aggregate_tools({"time": [_tool("now")], "fs": [_tool("read"), _tool("write")]}, EMPTY, separator)
    assert [tool["name"] for tool in result.tools] == [
        f"fs{separator}read",
        f"fs{separator}write",
        f"time{separator}now",
    ]
    assert result.routes == {
        f"fs{separator}read": ToolRoute("fs", "read"),
        f"fs{separator}write": ToolRoute("fs", "write"),
        f"time{separator}now": ToolRoute("time", "now"),
    }
    assert result.problems == []


def test_qualified_name() -> None:
    assert qualified_name("srv", "__", "tool") == "srv__tool"


def test_every_other_field_passes_through_unchanged() -> None:
    original = copy.deepcopy(RICH_TOOL)
    result = aggregate_tools({"time": [RICH_TOOL]}, EMPTY, "--")
    # Only the title changes: it says whose tool it is (gateway/server/ownership.py).
    assert result.tools == [{**original, "name": "time--get_time", "title": "time: Get the time"}]
    # The backend's own dict is not mutated.
    assert original == RICH_TOOL


def test_disabled_tool_is_hidden_and_not_routed() -> None:
    config = ToolConfig(tools={"s--hidden": ToolOverride(enabled=False)})
    result = aggregate_tools({"s": [_tool("hidden"), _tool("shown")]}, config, "--")
    assert [tool["name"] for tool in result.tools] == ["s--shown"]
    assert "s--hidden" not in result.routes
    assert result.problems == []


def test_override_is_keyed_by_qualified_name_with_the_active_separator() -> None:
    # An override written for "--" does not apply when the separator is "__".
    config = ToolConfig(tools={"s--t": ToolOverride(enabled=False)})
    result = aggregate_tools({"s": [_tool("t")]}, config, "__")
    assert [tool["name"] for tool in result.tools] == ["s__t"]


def test_exposed_name_override_renames_and_routes_back() -> None:
    config = ToolConfig(tools={"time--get_time": ToolOverride(exposed_name="clock")})
    result = aggregate_tools({"time": [RICH_TOOL]}, config, "--")
    assert [tool["name"] for tool in result.tools] == ["clock"]
    assert result.routes == {"clock": ToolRoute(server_key="time", original_name="get_time")}
    assert "time--get_time" not in result.routes
    assert result.tools[0]["description"] == RICH_TOOL["description"]
    assert result.tools[0]["inputSchema"] == RICH_TOOL["inputSchema"]
    assert result.problems == []


def test_description_override() -> None:
    config = ToolConfig(tools={"time--get_time": ToolOverride(exposed_description="Tells the time.")})
    result = aggregate_tools({"time": [RICH_TOOL]}, config, "--")
    expected = {**RICH_TOOL, "name": "time--get_time", "title": "time: Get the time", "description": "Tells the time."}
    assert result.tools == [expected]
    assert RICH_TOOL["description"] == "Current time in a timezone."


def test_description_override_adds_a_description_when_backend_had_none() -> None:
    config = ToolConfig(tools={"s--t": ToolOverride(exposed_description="New.")})
    result = aggregate_tools({"s": [_tool("t")]}, config, "--")
    assert result.tools == [{**_tool("s--t"), "description": "New."}]


@pytest.mark.parametrize("display", ["My Custom Tool Name", "has space", "x" * 129, "slash/name", "ünï", "clock\n"])
def test_a_display_name_that_is_no_valid_name_becomes_the_title_and_the_name_stays(display: str) -> None:
    """mcp-proxy-server's own README example, `"displayName": "My Custom Tool Name"`, is applied as MCP's title."""
    config = ToolConfig(tools={"s--t": ToolOverride(exposed_name=display)})
    result = aggregate_tools({"s": [_tool("t", title="Old")]}, config, "--")
    assert [(tool["name"], tool["title"]) for tool in result.tools] == [("s--t", display)]
    assert result.routes == {"s--t": ToolRoute("s", "t")}
    assert result.problems == []


def test_backend_tool_name_outside_alphabet_is_withheld_and_reported() -> None:
    result = aggregate_tools({"s": [_tool("do thing"), _tool("\u0440ead"), _tool("<script>")]}, EMPTY, "--")
    assert result.tools == []
    assert result.routes == {}
    assert len(result.problems) == 3
    assert '"s"' in result.problems[0] and "'s--do thing'" in result.problems[0]
    assert "[A-Za-z0-9_.-]" in result.problems[1]


def test_collision_on_exposed_name_first_sorted_server_wins() -> None:
    config = ToolConfig(
        tools={
            "alpha--one": ToolOverride(exposed_name="shared"),
            "beta--two": ToolOverride(exposed_name="shared"),
        }
    )
    # Insertion order puts beta first; the sorted key order must still make alpha win.
    catalogs = {"beta": [_tool("two", description="b")], "alpha": [_tool("one", description="a")]}
    result = aggregate_tools(catalogs, config, "--")
    assert result.tools == [
        {"name": "shared", "inputSchema": {"type": "object"}, "description": "a", "title": "alpha: one"}
    ]
    assert result.routes == {"shared": ToolRoute("alpha", "one")}
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert '"alpha"' in problem
    assert '"beta"' in problem
    assert "'shared'" in problem


def test_collision_between_override_and_qualified_name() -> None:
    config = ToolConfig(tools={"a--x": ToolOverride(exposed_name="b--y")})
    result = aggregate_tools({"a": [_tool("x")], "b": [_tool("y")]}, config, "--")
    assert [tool["name"] for tool in result.tools] == ["b--y"]
    assert result.routes == {"b--y": ToolRoute("a", "x")}
    assert len(result.problems) == 1
    assert '"a"' in result.problems[0]
    assert '"b"' in result.problems[0]


def test_duplicate_tool_within_one_backend_keeps_the_first() -> None:
    result = aggregate_tools({"s": [_tool("t", description="1"), _tool("t", description="2")]}, EMPTY, "--")
    assert [tool["description"] for tool in result.tools] == ["1"]
    assert len(result.problems) == 1


@pytest.mark.parametrize("tool", [{"description": "nameless"}, {"name": ""}, {"name": 5}, {"name": None}])
def test_tool_without_a_name_is_reported(tool: dict[str, Any]) -> None:
    result = aggregate_tools({"srv": [tool, _tool("ok")]}, EMPTY, "--")
    assert [t["name"] for t in result.tools] == ["srv--ok"]
    assert list(result.routes) == ["srv--ok"]
    assert len(result.problems) == 1
    assert '"srv"' in result.problems[0]
    assert "without a name" in result.problems[0]


def test_output_order_is_sorted_by_server_then_backend_order() -> None:
    catalogs = {
        "zeta": [_tool("b"), _tool("a")],
        "alpha": [_tool("z"), _tool("y"), _tool("x")],
        "mid": [_tool("m")],
    }
    expected = ["alpha--z", "alpha--y", "alpha--x", "mid--m", "zeta--b", "zeta--a"]
    result = aggregate_tools(catalogs, EMPTY, "--")
    assert [tool["name"] for tool in result.tools] == expected
    assert list(result.routes) == expected
    reordered = aggregate_tools(dict(reversed(list(catalogs.items()))), EMPTY, "--")
    assert reordered.tools == result.tools


def test_empty_catalogs() -> None:
    result = aggregate_tools({}, EMPTY, "--")
    assert result.tools == []
    assert result.routes == {}
    assert result.problems == []
