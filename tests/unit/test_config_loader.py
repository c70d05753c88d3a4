"""Parsing mcp_server.json / tool_config.json: seed compatibility, normalization and error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_supervisor.config.loader import (
    SERVERS_FILE,
    load_servers,
    load_tool_config,
    parse_servers,
    parse_tool_config,
)
from mcp_supervisor.config.models import ServerEntry, ToolConfig, ToolOverride
from mcp_supervisor.errors import ConfigError

SOURCE = "conf/servers-under-test.json"
TOOLS_SOURCE = "conf/tools-under-test.json"

# The full example `config/mcp_server.json` of mcp-proxy-server's README, verbatim.
SEED_EXAMPLE = b"""
{
  "mcpServers": {
    "unique-server-key1": {
      "type": "stdio",
      "name": "My Stdio Server",
      "active": true,
      "command": "/path/to/server/executable",
      "args": [
        "--port",
        "1234"
      ],
      "env": {
        "API_KEY": "server_specific_key"
      },
      "installDirectory": "/custom_install_path/unique-server-key1",
      "installCommands": [
        "git clone https://github.com/some/repo unique-server-key1",
        "cd unique-server-key1 && npm install && npm run build"
      ]
    },
    "another-sse-server": {
      "type": "sse",
      "name": "My SSE Server",
      "active": true,
      "url": "http://localhost:8080/sse",
      "apiKey": "sse_server_api_key"
    },
    "http-mcp-server": {
      "type": "http",
      "name": "My Streamable HTTP Server",
      "active": true,
      "url": "http://localhost:8081/mcp",
      "bearerToken": "some_secure_token_for_http_server"
    },
    "stdio-default-install": {
      "type": "stdio",
      "name": "Stdio Server with Default Install Path",
      "active": true,
      "command": "my_other_server",
      "installCommands": [
        "echo 'Installing to default location...'"
      ]
    }
  }
}
"""


def _servers(servers: dict[str, Any]) -> bytes:
    return json.dumps({"mcpServers": servers}).encode()


def _one(entry: dict[str, Any], key: str = "srv") -> ServerEntry:
    return parse_servers(_servers({key: entry}), SOURCE).servers[key]


def _tools(tools: Any) -> bytes:
    return json.dumps({"tools": tools}).encode()


# ---------------------------------------------------------------- mcp-proxy-server's example


def test_seed_example_parses_all_four_servers_in_file_order() -> None:
    config = parse_servers(SEED_EXAMPLE, SOURCE)
    assert list(config.servers) == [
        "unique-server-key1",
        "another-sse-server",
        "http-mcp-server",
        "stdio-default-install",
    ]
    assert list(config.active()) == list(config.servers)


def test_seed_example_stdio_server_with_env_and_install() -> None:
    entry = parse_servers(SEED_EXAMPLE, SOURCE).servers["unique-server-key1"]
    assert entry == ServerEntry(
        key="unique-server-key1",
        type="stdio",
        name="My Stdio Server",
        active=True,
        command="/path/to/server/executable",
        args=("--port", "1234"),
        env={"API_KEY": "server_specific_key"},
        installDirectory="/custom_install_path/unique-server-key1",
        installCommands=(
            "git clone https://github.com/some/repo unique-server-key1",
            "cd unique-server-key1 && npm install && npm run build",
        ),
    )
    assert entry.display_name == "My Stdio Server"
    assert entry.url is None
    assert entry.extra == {}


def test_seed_example_sse_server_with_api_key() -> None:
    entry = parse_servers(SEED_EXAMPLE, SOURCE).servers["another-sse-server"]
    assert entry.type == "sse"
    assert entry.name == "My SSE Server"
    assert entry.url == "http://localhost:8080/sse"
    assert entry.apiKey == "sse_server_api_key"
    assert entry.bearerToken is None
    assert entry.command is None
    assert entry.args == ()
    assert entry.outbound_headers() == {"X-Api-Key": "sse_server_api_key"}


def test_seed_example_http_server_with_bearer_token() -> None:
    entry = parse_servers(SEED_EXAMPLE, SOURCE).servers["http-mcp-server"]
    assert entry.type == "http"
    assert entry.name == "My Streamable HTTP Server"
    assert entry.url == "http://localhost:8081/mcp"
    assert entry.bearerToken == "some_secure_token_for_http_server"
    assert entry.apiKey is None
    assert entry.outbound_headers() == {"Authorization": "Bearer some_secure_token_for_http_server"}


def test_seed_example_stdio_server_with_default_install() -> None:
    entry = parse_servers(SEED_EXAMPLE, SOURCE).servers["stdio-default-install"]
    assert entry.type == "stdio"
    assert entry.command == "my_other_server"
    assert entry.args == ()
    assert entry.env == {}
    assert entry.installDirectory is None
    assert entry.installCommands == ("echo 'Installing to default location...'",)


# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize("flag", [False, "false", "False", " false ", "0", "no"])
def test_inactive_flag_spellings_make_the_server_inactive(flag: object) -> None:
    config = parse_servers(
        _servers({"off": {"command": "a", "active": flag}, "on": {"command": "b"}}),
        SOURCE,
    )
    assert config.servers["off"].active is False
    assert list(config.active()) == ["on"]
    assert list(config.servers) == ["off", "on"]


@pytest.mark.parametrize("flag", [True, "true", "TRUE", "1", "yes"])
def test_active_flag_spellings_keep_the_server_active(flag: object) -> None:
    assert _one({"command": "a", "active": flag}).active is True


def test_active_missing_defaults_to_true() -> None:
    assert _one({"command": "a"}).active is True


def test_unknown_fields_land_in_extra_verbatim() -> None:
    unknown = {
        "description": "kept",
        "timeout": 42,
        "nested": {"a": [1, 2, {"b": None}], "ü": "ß"},
        "disabledTools": ["x", "y"],
        "flag": False,
    }
    entry = _one({"command": "a", **unknown})
    assert entry.extra == unknown
    assert entry.command == "a"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"command": "npx", "args": ["-y", "server"]}, "stdio"),
        ({"url": "http://localhost:8080/sse"}, "sse"),
        ({"url": "https://example.com/v1/sse/"}, "sse"),
        ({"url": "http://localhost:8081/mcp"}, "http"),
        ({"url": "https://example.com/ssevents"}, "http"),
        ({"type": "streamable-http", "url": "http://h/mcp"}, "http"),
        ({"type": "streamable_http", "url": "http://h/mcp"}, "http"),
        ({"type": "streamableHttp", "url": "http://h/mcp"}, "http"),
        ({"type": " SSE ", "url": "http://h/events"}, "sse"),
        ({"type": "HTTP", "url": "http://h/sse"}, "http"),
        ({"transport": "sse", "url": "http://h/events"}, "sse"),
    ],
)
def test_type_inference_and_aliases(entry: dict[str, Any], expected: str) -> None:
    assert _one(entry).type == expected


def test_bearer_token_wins_over_api_key() -> None:
    entry = _one({"type": "http", "url": "http://h/mcp", "apiKey": "k", "bearerToken": "t"})
    assert entry.outbound_headers() == {"Authorization": "Bearer t"}


def test_api_key_alone_sends_x_api_key_and_keeps_custom_headers() -> None:
    entry = _one({"url": "http://h/sse", "apiKey": "k", "headers": {"X-Trace": "1"}})
    assert entry.outbound_headers() == {"X-Trace": "1", "X-Api-Key": "k"}


def test_no_credentials_means_only_custom_headers() -> None:
    entry = _one({"url": "http://h/mcp", "headers": {"X-A": "b"}})
    assert entry.outbound_headers() == {"X-A": "b"}


def test_empty_credentials_count_as_unset() -> None:
    entry = _one({"url": "http://h/mcp", "apiKey": "", "bearerToken": ""})
    assert entry.apiKey is None
    assert entry.bearerToken is None
    assert entry.outbound_headers() == {}


def test_env_scalars_become_strings() -> None:
    entry = _one({"command": "a", "env": {"PORT": 8080, "RATIO": 1.5, "ON": True, "OFF": False, "S": "x"}})
    assert entry.env == {"PORT": "8080", "RATIO": "1.5", "ON": "true", "OFF": "false", "S": "x"}
    assert all(isinstance(value, str) for value in entry.env.values())


def test_null_env_is_empty() -> None:
    assert _one({"command": "a", "env": None}).env == {}


def test_display_name_falls_back_to_key() -> None:
    assert _one({"command": "a"}, key="my.key_1-x").display_name == "my.key_1-x"


# ---------------------------------------------------------------- tool_config.json


def test_tool_config_both_spellings_give_the_same_override() -> None:
    readme = parse_tool_config(
        _tools({"s--t": {"enabled": True, "displayName": "Nice", "description": "Better."}}), TOOLS_SOURCE
    )
    code = parse_tool_config(
        _tools({"s--t": {"enabled": True, "exposedName": "Nice", "exposedDescription": "Better."}}),
        TOOLS_SOURCE,
    )
    expected = ToolOverride(enabled=True, exposed_name="Nice", exposed_description="Better.")
    assert readme.tools == {"s--t": expected}
    assert code.tools == {"s--t": expected}
    assert readme.override_for("s--t") == expected
    assert readme.override_for("s--other") is None


def test_tool_config_seed_readme_example() -> None:
    data = b"""
    {
      "tools": {
        "unique-server-key1--tool-name-from-server": {
          "enabled": true,
          "displayName": "My Custom Tool Name",
          "description": "A more user-friendly description."
        },
        "another-sse-server--another-tool": {
          "enabled": false
        }
      }
    }
    """
    config = parse_tool_config(data, TOOLS_SOURCE)
    assert config.tools == {
        "unique-server-key1--tool-name-from-server": ToolOverride(
            enabled=True,
            exposed_name="My Custom Tool Name",
            exposed_description="A more user-friendly description.",
        ),
        "another-sse-server--another-tool": ToolOverride(enabled=False),
    }


def test_tool_config_empty_strings_count_as_unset() -> None:
    config = parse_tool_config(
        _tools({"s--t": {"exposedName": "", "exposedDescription": "", "displayName": "", "description": ""}}),
        TOOLS_SOURCE,
    )
    assert config.tools["s--t"] == ToolOverride(enabled=True, exposed_name=None, exposed_description=None)


def test_tool_config_empty_code_spelling_falls_back_to_readme_spelling() -> None:
    config = parse_tool_config(
        _tools({"s--t": {"exposedName": "", "displayName": "D", "exposedDescription": "", "description": "X"}}),
        TOOLS_SOURCE,
    )
    assert config.tools["s--t"] == ToolOverride(exposed_name="D", exposed_description="X")


def test_tool_config_enabled_missing_means_true() -> None:
    config = parse_tool_config(_tools({"s--t": {}}), TOOLS_SOURCE)
    assert config.tools["s--t"].enabled is True


@pytest.mark.parametrize("flag", [False, "false"])
def test_tool_config_disabled_spellings(flag: object) -> None:
    config = parse_tool_config(_tools({"s--t": {"enabled": flag}}), TOOLS_SOURCE)
    assert config.tools["s--t"].enabled is False


@pytest.mark.parametrize("data", [b"", b"   \n\t"])
def test_tool_config_empty_file_is_empty_config(data: bytes) -> None:
    assert parse_tool_config(data, TOOLS_SOURCE) == ToolConfig()
    assert parse_tool_config(data, TOOLS_SOURCE).tools == {}


def test_tool_config_without_tools_section_is_empty() -> None:
    assert parse_tool_config(b'{"other": 1}', TOOLS_SOURCE).tools == {}


# ---------------------------------------------------------------- bad files


def _error(data: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        parse_servers(data, SOURCE)
    message = str(info.value)
    assert SOURCE in message
    return message


def test_invalid_json_names_the_file() -> None:
    message = _error(b'{"mcpServers": {')
    assert "not valid JSON" in message


@pytest.mark.parametrize(("data", "kind"), [(b"[]", "an array"), (b"null", "null"), (b'"x"', "a string")])
def test_top_level_not_an_object(data: bytes, kind: str) -> None:
    message = _error(data)
    assert "top level" in message
    assert kind in message


def test_missing_mcp_servers() -> None:
    assert '"mcpServers"' in _error(b'{"servers": {}}')


def test_mcp_servers_not_an_object() -> None:
    message = _error(b'{"mcpServers": [1, 2]}')
    assert '"mcpServers"' in message
    assert "an array" in message


def test_entry_not_an_object() -> None:
    message = _error(_servers({"srv": "npx"}))
    assert 'server "srv"' in message
    assert "a string" in message


@pytest.mark.parametrize(
    ("entry", "fragments"),
    [
        ({"type": "stdio"}, ['"command"', "stdio"]),
        ({"type": "stdio", "command": ""}, ['"command"']),
        ({"type": "sse"}, ['"url"', "sse"]),
        ({"type": "http", "url": ""}, ['"url"', "http"]),
        ({"type": "sse", "url": "localhost:8080/sse"}, ['"url"', "http://", "localhost:8080/sse"]),
        ({"type": "http", "url": "ftp://h/mcp"}, ['"url"', "ftp://h/mcp"]),
        ({"command": "a", "args": "--port 1"}, ['"args"']),
        ({"command": "a", "args": ["--port", 1]}, ['"args"']),
        ({"command": "a", "args": None}, ['"args"']),
        ({"command": "a", "installCommands": [["x"]]}, ['"installCommands"']),
        ({"command": "a", "active": 5}, ['"active"', "a number"]),
        ({"command": "a", "active": "maybe"}, ['"active"']),
        ({"command": "a", "env": {"A": {"nested": 1}}}, ['"env.A"']),
        ({"command": "a", "env": "A=1"}, ['"env"']),
        ({"url": "http://h/mcp", "headers": {"X": [1]}}, ['"headers.X"']),
        ({"command": 5}, ['"command"', "a number"]),
        ({"type": "websocket", "url": "ws://h"}, ['"type"', "websocket"]),
        ({"type": 3, "command": "a"}, ['"type"']),
        ({"name": "no type, no command, no url"}, ['"type"']),
    ],
)
def test_bad_server_entry_names_file_key_and_field(entry: dict[str, Any], fragments: list[str]) -> None:
    message = _error(_servers({"bad-server": entry}))
    assert 'server "bad-server"' in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("key", ["../../etc", "has space", "", "a/b", "x" * 65, "naïve", "semi;colon"])
def test_bad_server_key(key: str) -> None:
    message = _error(_servers({key: {"command": "a"}}))
    assert f'server "{key}"' in message
    assert "key" in message


def test_server_key_with_trailing_newline_is_refused() -> None:
    message = _error(_servers({"time\n": {"command": "a"}}))
    assert "key" in message


def test_key_of_64_characters_is_accepted() -> None:
    key = "k" * 64
    assert _one({"command": "a"}, key=key).key == key


def test_first_bad_entry_is_reported_even_after_good_ones() -> None:
    message = _error(_servers({"good": {"command": "a"}, "broken": {"type": "sse"}}))
    assert 'server "broken"' in message
    assert '"good"' not in message


def _tool_error(data: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        parse_tool_config(data, TOOLS_SOURCE)
    message = str(info.value)
    assert TOOLS_SOURCE in message
    return message


@pytest.mark.parametrize(("tools", "kind"), [([], "an array"), ("x", "a string"), (None, "null"), (7, "a number")])
def test_tools_not_an_object(tools: object, kind: str) -> None:
    message = _tool_error(_tools(tools))
    assert '"tools"' in message
    assert kind in message


def test_tool_config_invalid_json() -> None:
    assert "not valid JSON" in _tool_error(b"{tools")


def test_tool_config_top_level_not_object() -> None:
    assert "top level" in _tool_error(b"[1]")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("off", "entry"),
        ({"enabled": 3}, '"enabled"'),
        ({"exposedName": 5}, '"exposedName"'),
        ({"displayName": ["x"]}, '"displayName"'),
        ({"description": {"a": 1}}, '"description"'),
    ],
)
def test_bad_tool_override_names_file_tool_and_field(entry: object, field: str) -> None:
    message = _tool_error(_tools({"srv--tool": entry}))
    assert 'tool "srv--tool"' in message
    assert field in message


# ---------------------------------------------------------------- files on disk


def test_load_servers_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_servers(tmp_path)
    assert str(tmp_path / SERVERS_FILE) in str(info.value)
    assert "does not exist" in str(info.value)


def test_load_servers_reads_the_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / SERVERS_FILE
    path.write_bytes(SEED_EXAMPLE)
    assert len(load_servers(tmp_path).servers) == 4
    path.write_bytes(_servers({"x": {"type": "sse"}}))
    with pytest.raises(ConfigError) as info:
        load_servers(tmp_path)
    assert str(path) in str(info.value)
    assert 'server "x"' in str(info.value)


def test_load_tool_config_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_tool_config(tmp_path) == ToolConfig()
    assert load_tool_config(tmp_path).tools == {}


def test_load_tool_config_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "tool_config.json").write_bytes(_tools({"a--b": {"enabled": False}}))
    assert load_tool_config(tmp_path).tools == {"a--b": ToolOverride(enabled=False)}


@pytest.mark.parametrize("key", [".", "..", ".hidden"])
def test_keys_that_could_name_a_directory_are_refused(key: str) -> None:
    message = _error(_servers({key: {"type": "stdio", "command": "x"}}))
    assert SOURCE in message and f'"{key}"' in message


@pytest.mark.parametrize("value", [[], "", 0])
def test_env_that_is_not_an_object_is_refused(value: object) -> None:
    message = _error(_servers({"srv": {"type": "stdio", "command": "x", "env": value}}))
    assert '"env"' in message and '"srv"' in message


def test_null_env_counts_as_empty() -> None:
    assert _one({"type": "stdio", "command": "x", "env": None}).env == {}


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ('{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}', "'a'"),  # an entry pasted twice
        ('{"mcpServers": {"a": {"command": "x", "env": {"K": "1", "K": "2"}}}}', "'K'"),
        ('{"mcpServers": {}, "mcpServers": {"a": {"command": "x"}}}', "'mcpServers'"),
    ],
)
def test_a_key_given_twice_is_refused_not_decided_by_the_last(document: str, key: str) -> None:
    """Issue 14: a duplicate server key passed check-config and the last entry silently won."""
    with pytest.raises(ConfigError, match=f"the key {key} appears twice"):
        parse_servers(document.encode())


def test_a_key_given_twice_in_tool_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        parse_tool_config(b'{"tools": {"a--x": {"enabled": false}, "a--x": {"enabled": true}}}')


@pytest.mark.parametrize("key", ["gateway", "Gateway", "supervisor"])
def test_the_trees_own_names_are_reserved(key: str) -> None:
    """Issue 14: a server keyed `gateway` was accepted, its status rows and logs mixed with the gateway's own."""
    with pytest.raises(ConfigError, match="reserved for the tree's own"):
        parse_servers(json.dumps({"mcpServers": {key: {"command": "x"}}}).encode())


def test_roots_are_kept_as_file_uris_and_relative_paths_are_refused() -> None:
    entry = _one({"command": "x", "roots": ["/srv/work space", "file:///data"]})
    assert entry.roots == ("file:///srv/work%20space", "file:///data")
    assert "roots" not in entry.extra
    with pytest.raises(ConfigError, match=r'server "srv": "roots" entries must be absolute paths'):
        _one({"command": "x", "roots": ["relative/dir"]})


def test_protocol_defaults_to_auto_and_accepts_each_pin() -> None:
    assert _one({"command": "x"}).protocol == "auto"
    for pin in ("auto", "legacy", "2026-07-28"):
        entry = _one({"command": "x", "protocol": pin})
        assert entry.protocol == pin and "protocol" not in entry.extra
    assert _one({"type": "sse", "url": "http://h/sse", "protocol": "legacy"}).protocol == "legacy"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2025-11-25", "not '2025-11-25'"),
        ("modern", "not 'modern'"),
        (True, "not a boolean"),
        (["legacy"], "not an array"),
    ],
)
def test_protocol_other_values_are_refused_with_the_choices(value: object, fragment: str) -> None:
    expected = r'server "srv": "protocol" must be one of "auto", "legacy", "2026-07-28"'
    with pytest.raises(ConfigError, match=expected) as refused:
        _one({"command": "x", "protocol": value})
    assert fragment in str(refused.value)


def test_protocol_2026_is_refused_for_an_sse_server() -> None:
    with pytest.raises(ConfigError, match="HTTP\\+SSE transport exists only in the handshake era"):
        _one({"type": "sse", "url": "http://h/sse", "protocol": "2026-07-28"})


def test_sandbox_network_forms_load_and_a_bad_one_says_what_is_wrong() -> None:
    from mcp_supervisor.system.sandbox_policy import NetworkPolicy

    good = b"""{"mcpServers": {
        "a": {"command": "x"},
        "b": {"command": "x", "sandbox": {"network": false}},
        "c": {"command": "x", "sandbox": {"network": {"allow": ["api.example.com:443"], "hostPorts": [5432]}}}}}"""
    servers = parse_servers(good, SOURCE).servers
    assert servers["a"].sandbox.network is True and servers["b"].sandbox.network is False
    assert servers["c"].sandbox.network == NetworkPolicy(allow=("api.example.com:443",), host_ports=(5432,))
    message = _error(b'{"mcpServers": {"s": {"command": "x", "sandbox": {"network": {"allow": ["db:0"]}}}}}')
    assert 'server "s"' in message and "allow entry 'db:0': the port must be a number from 1 to 65535" in message
    message = _error(b'{"mcpServers": {"s": {"command": "x", "sandbox": {"network": {"hostPort": [1]}}}}}')
    assert "unknown field `hostPort`" in message
