"""The admin's tool list (every tool of every linked backend with its override) and exposed-name checks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mcp_supervisor.admin.tool_routes import check_exposed_names, tool_rows
from mcp_supervisor.config.loader import parse_tool_config
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.gateway.dataplane.backends import BackendLink


def link(key: str, tools: list[dict[str, Any]], name_prefix: str | None = None) -> BackendLink:
    return BackendLink(
        key=key,
        generation=1,
        identity=key.encode(),
        initialize_result={"capabilities": {"tools": {}}},
        catalog={"tools": tools, "prompts": [{"name": "not-a-tool"}]},
        name_prefix=name_prefix,
    )


def config(tools: dict[str, Any]) -> ToolConfig:
    return parse_tool_config(json.dumps({"tools": tools}).encode())


LINKS = {
    # Given out of order on purpose: rows come in key order.
    "time": link(
        "time",
        [
            {"name": "now", "description": "Current time", "inputSchema": {"type": "object"}},
            {"name": "convert", "inputSchema": {"type": "object"}},
        ],
    ),
    "echo": link("echo", [{"name": "say", "description": "Echo it"}, {"description": "no name"}, {"name": 7}], ""),
}


def row(
    name: str,
    server: str,
    exposed: str,
    description: str = "",
    separator: str = "--",
    enabled: bool = True,
    override_name: str | None = None,
    override_description: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "serverName": server,
        "description": description,
        "configKey": f"{server}{separator}{name}",
        "exposedName": exposed,
        "title": title,
        "enabled": enabled,
        "overrideName": override_name,
        "overrideDescription": override_description,
    }


# ---------------------------------------------------------------- tool_rows


def test_rows_without_overrides() -> None:
    assert tool_rows(LINKS, ToolConfig(), "--") == [
        row("say", "echo", "say", "Echo it"),  # namePrefix "": the bare name
        row("now", "time", "time--now", "Current time"),  # default prefix <key><SEP>
        row("convert", "time", "time--convert"),
    ]


def test_rows_with_another_separator() -> None:
    assert tool_rows(LINKS, ToolConfig(), "__") == [
        row("say", "echo", "say", "Echo it", separator="__"),
        row("now", "time", "time__now", "Current time", separator="__"),
        row("convert", "time", "time__convert", separator="__"),
    ]


def test_rows_with_a_custom_prefix() -> None:
    links = {"time": link("time", [{"name": "now"}], "t_")}
    assert tool_rows(links, ToolConfig(), "--") == [row("now", "time", "t_now")]


def test_rows_with_overrides() -> None:
    tool_config = config(
        {
            "time--now": {"exposedName": "clock", "exposedDescription": "What time is it"},
            "time--convert": {"enabled": False},
            "echo--say": {"displayName": "shout", "description": "Loud echo", "enabled": True},
            "time--unknown": {"enabled": False},  # a tool no backend lists: no row
        }
    )
    assert tool_rows(LINKS, tool_config, "--") == [
        row("say", "echo", "shout", "Echo it", override_name="shout", override_description="Loud echo"),
        row(
            "now",
            "time",
            "clock",
            "Current time",
            override_name="clock",
            override_description="What time is it",
        ),
        row("convert", "time", "time--convert", enabled=False),
    ]


def test_disabled_tool_with_a_new_name_keeps_both() -> None:
    tool_config = config({"time--now": {"enabled": "false", "exposedName": "clock"}})
    rows = tool_rows({"time": LINKS["time"]}, tool_config, "--")
    assert rows[0] == row("now", "time", "clock", "Current time", enabled=False, override_name="clock")


def test_override_description_only_keeps_the_name() -> None:
    tool_config = config({"time--now": {"exposedDescription": "Better words", "exposedName": ""}})
    rows = tool_rows({"time": LINKS["time"]}, tool_config, "--")
    assert rows[0] == row("now", "time", "time--now", "Current time", override_description="Better words")


def test_rows_of_no_backends() -> None:
    assert tool_rows({}, config({"time--now": {"enabled": False}}), "--") == []
    assert tool_rows({"idle": link("idle", [])}, ToolConfig(), "--") == []


# ---------------------------------------------------------------- check_exposed_names


def simple_row(config_key: str, exposed: str, enabled: bool = True) -> dict[str, Any]:
    return {"configKey": config_key, "exposedName": exposed, "enabled": enabled}


def test_unique_valid_names_pass() -> None:
    check_exposed_names(tool_rows(LINKS, ToolConfig(), "--"))
    check_exposed_names([simple_row("a--x", "x" * 128), simple_row("b--y", "A.b-c_9")])
    check_exposed_names([])


def test_duplicate_exposed_names_are_refused() -> None:
    rows = tool_rows(LINKS, config({"time--now": {"exposedName": "say"}}), "--")
    expected = """Tool "time--now": exposed name 'say' is already the name of "echo--say"."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_exposed_names(rows)


def test_a_rename_onto_a_default_name_is_refused() -> None:
    rows = tool_rows(LINKS, config({"echo--say": {"exposedName": "time--convert"}}), "--")
    with pytest.raises(ConfigError, match="already the name of"):
        check_exposed_names(rows)


@pytest.mark.parametrize("name", ["has space", "x" * 129, "tool/name", "ünï", "semi;colon", "My Custom Tool Name"])
def test_a_display_name_that_is_no_valid_name_becomes_the_title(name: str) -> None:
    rows = tool_rows(LINKS, config({"time--now": {"displayName": name}}), "--")
    assert rows[1] == row("now", "time", "time--now", "Current time", override_name=name, title=name)
    check_exposed_names(rows)  # not refused: the name stays valid


def test_a_rename_onto_a_later_tools_name_names_the_renamed_tool_first() -> None:
    """The renamed tool takes a name in use, whatever order the rows come in (issue 15: it was backwards)."""
    # time--now's row comes before time--convert's, and takes its name.
    rows = tool_rows(LINKS, config({"time--now": {"exposedName": "time--convert"}}), "--")
    expected = """Tool "time--now": exposed name 'time--convert' is already the name of "time--convert"."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_exposed_names(rows)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_exposed_names(rows, only="time--now")


def test_an_invalid_backend_name_is_refused_too() -> None:
    links = {"odd": link("odd", [{"name": "bad name"}])}
    with pytest.raises(ConfigError, match="is not 1-128 of"):
        check_exposed_names(tool_rows(links, ToolConfig(), "--"))


def test_disabled_tools_are_ignored() -> None:
    clash = config({"time--now": {"exposedName": "say", "enabled": False}})
    check_exposed_names(tool_rows(LINKS, clash, "--"))
    invalid = config({"time--now": {"exposedName": "bad name", "enabled": False}})
    check_exposed_names(tool_rows(LINKS, invalid, "--"))
    check_exposed_names([simple_row("a--x", "same", enabled=False), simple_row("b--y", "same")])
    check_exposed_names([simple_row("a--x", "same"), simple_row("b--y", "same", enabled=False)])


def test_a_clash_of_three_names_the_first_owner() -> None:
    rows = [simple_row("a--x", "same"), simple_row("b--y", "same"), simple_row("c--z", "same")]
    with pytest.raises(ConfigError, match=r'Tool "b--y": .* already the name of "a--x"'):
        check_exposed_names(rows)


def test_only_ignores_problems_of_other_tools() -> None:
    rows = [
        simple_row("a--x", "same"),
        simple_row("b--y", "same"),
        simple_row("c--z", "bad name"),
        simple_row("d--w", "fine"),
    ]
    check_exposed_names(rows, only="d--w")
    check_exposed_names(rows, only="no--such-tool")
    with pytest.raises(ConfigError, match=r'Tool "a--x": .* already the name of "b--y"'):
        check_exposed_names(rows, only="a--x")  # the tool being edited is the one that takes the name
    with pytest.raises(ConfigError, match=r'Tool "b--y": .* already the name of "a--x"'):
        check_exposed_names(rows, only="b--y")  # the later one
    with pytest.raises(ConfigError, match=r'Tool "c--z": .* is not 1-128 of'):
        check_exposed_names(rows, only="c--z")
    with pytest.raises(ConfigError):
        check_exposed_names(rows)


def test_only_finds_a_clash_whatever_the_order() -> None:
    rows = [simple_row("a--x", "same"), simple_row("b--y", "same"), simple_row("c--z", "same")]
    for only in ("a--x", "b--y", "c--z"):
        with pytest.raises(ConfigError, match="already the name of"):
            check_exposed_names(rows, only=only)
    reordered = [simple_row("b--y", "same"), simple_row("c--z", "same"), simple_row("a--x", "same")]
    with pytest.raises(ConfigError, match=r'Tool "a--x": .* already the name of "b--y"'):
        check_exposed_names(reordered, only="a--x")


def test_only_with_rows_from_a_patch() -> None:
    # Another pair already clashes (a hand edit); renaming an unrelated tool is still allowed...
    broken = config({"time--now": {"exposedName": "say"}, "time--convert": {"exposedName": "converter"}})
    check_exposed_names(tool_rows(LINKS, broken, "--"), only="time--convert")
    # ...but not when the rename itself clashes.
    clashing = config({"time--now": {"exposedName": "say"}, "time--convert": {"exposedName": "say"}})
    with pytest.raises(ConfigError, match='"time--convert"'):
        check_exposed_names(tool_rows(LINKS, clashing, "--"), only="time--convert")
