"""The admin's reads and writes of mcp_server.json / tool_config.json, and the log tail reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mcp_supervisor.admin import health_view
from mcp_supervisor.admin.config_store import ConfigStore, Conflict, NotFound, atomic_write, check_server_key
from mcp_supervisor.admin.health_view import tail_lines
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE
from mcp_supervisor.errors import ConfigError

TIME_ENTRY: dict[str, Any] = {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}
WEB_ENTRY: dict[str, Any] = {"type": "http", "url": "http://127.0.0.1:9000/mcp"}

# Hand-formatted on purpose: any rewrite would change these bytes.
SERVERS_TEXT = b"""{ "mcpServers": {"time": {"type": "stdio", "command": "uvx",
    "args": ["mcp-server-time"], "futureField": {"nested": [1, 2]}, "comment": "keep me"}},
  "x-deployment": {"owner": "ops", "tags": ["a", "b"]},
  "version": 3 }
"""

TOOLS_TEXT = b"""{"tools": {"time--now": {"enabled": false}}, "x-note": "unknown section"}
"""


def store_with(tmp_path: Path, servers: bytes | None = SERVERS_TEXT, tools: bytes | None = None) -> ConfigStore:
    if servers is not None:
        (tmp_path / SERVERS_FILE).write_bytes(servers)
    if tools is not None:
        (tmp_path / TOOLS_FILE).write_bytes(tools)
    return ConfigStore(tmp_path)


def on_disk(path: Path) -> Any:
    return json.loads(path.read_bytes())


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------- reads


def test_missing_files_read_as_empty(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    assert store.servers_path == tmp_path / SERVERS_FILE
    assert store.tools_path == tmp_path / TOOLS_FILE
    assert store.read_servers() == {"mcpServers": {}}
    assert store.read_tools() == {"tools": {}}
    assert store.server_entry("time") is None
    assert names_in(tmp_path) == []


def test_read_returns_the_raw_file(tmp_path: Path) -> None:
    store = store_with(tmp_path, tools=TOOLS_TEXT)
    assert store.read_servers() == json.loads(SERVERS_TEXT)
    assert store.server_entry("time") == json.loads(SERVERS_TEXT)["mcpServers"]["time"]
    assert store.server_entry("other") is None
    assert store.read_tools() == {"tools": {"time--now": {"enabled": False}}, "x-note": "unknown section"}


def test_read_tools_without_tools_section(tmp_path: Path) -> None:
    store = store_with(tmp_path, servers=None, tools=b'{"x": 1}')
    assert store.read_tools() == {"x": 1, "tools": {}}


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'"text"'])
def test_unreadable_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    store = store_with(tmp_path, servers=content)
    with pytest.raises(ConfigError):
        store.read_servers()


# ---------------------------------------------------------------- server keys


@pytest.mark.parametrize("key", ["../../etc", ".hidden", "a/b", "", "k" * 65, "..", ".", "a b", "a\n", "/abs", "é"])
def test_bad_server_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="not a valid server key"):
        check_server_key(key)


@pytest.mark.parametrize("key", ["a", "time", "my.server", "_x", "-x", "A-b_c.9", "k" * 64, "a.."])
def test_good_server_keys_are_accepted(key: str) -> None:
    check_server_key(key)


@pytest.mark.parametrize("key", ["../../etc", ".hidden", "a/b", "", "k" * 65])
def test_put_server_refuses_bad_keys_and_changes_nothing(tmp_path: Path, key: str) -> None:
    store = store_with(tmp_path)
    with pytest.raises(ConfigError):
        store.put_server(key, TIME_ENTRY, create=True)
    assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT
    assert names_in(tmp_path) == [SERVERS_FILE]


# ---------------------------------------------------------------- put / delete


def test_create_in_a_missing_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put_server("time", TIME_ENTRY, create=True)
    assert on_disk(tmp_path / SERVERS_FILE) == {"mcpServers": {"time": TIME_ENTRY}}
    assert store.server_entry("time") == TIME_ENTRY
    assert (tmp_path / SERVERS_FILE).read_bytes().endswith(b"}\n")
    assert names_in(tmp_path) == [SERVERS_FILE]


def test_create_adds_and_keeps_everything_else(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.put_server("web", WEB_ENTRY, create=True)
    expected = json.loads(SERVERS_TEXT)
    expected["mcpServers"]["web"] = WEB_ENTRY
    assert on_disk(tmp_path / SERVERS_FILE) == expected
    assert list(on_disk(tmp_path / SERVERS_FILE)["mcpServers"]) == ["time", "web"]


def test_create_of_an_existing_key_is_a_conflict(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    with pytest.raises(Conflict, match='"time" exists already'):
        store.put_server("time", WEB_ENTRY, create=True)
    assert issubclass(Conflict, ConfigError)
    assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT


def test_replace_swaps_the_whole_entry(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.put_server("time", WEB_ENTRY, create=False)
    document = on_disk(tmp_path / SERVERS_FILE)
    assert document["mcpServers"] == {"time": WEB_ENTRY}  # fields not sent are dropped
    assert document["x-deployment"] == {"owner": "ops", "tags": ["a", "b"]}
    assert document["version"] == 3


def test_replace_of_a_missing_key_is_not_found(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    with pytest.raises(NotFound, match='No server "web"'):
        store.put_server("web", WEB_ENTRY, create=False)
    assert issubclass(NotFound, ConfigError)
    assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT


def test_replace_in_a_missing_file_is_not_found_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ConfigStore(tmp_path).put_server("web", WEB_ENTRY, create=False)
    assert names_in(tmp_path) == []


def test_delete(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.put_server("web", WEB_ENTRY, create=True)
    store.delete_server("time")
    document = on_disk(tmp_path / SERVERS_FILE)
    assert document == {
        "mcpServers": {"web": WEB_ENTRY},
        "x-deployment": {"owner": "ops", "tags": ["a", "b"]},
        "version": 3,
    }


def test_delete_of_a_missing_key_is_not_found(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    with pytest.raises(NotFound):
        store.delete_server("web")
    assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT


def test_unknown_fields_and_sections_survive_put_and_delete(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.put_server("web", {**WEB_ENTRY, "x-retries": 7, "labels": {"team": "a"}}, create=True)
    after_put = on_disk(tmp_path / SERVERS_FILE)
    assert after_put["mcpServers"]["time"]["futureField"] == {"nested": [1, 2]}
    assert after_put["mcpServers"]["time"]["comment"] == "keep me"
    assert after_put["mcpServers"]["web"]["x-retries"] == 7
    assert after_put["mcpServers"]["web"]["labels"] == {"team": "a"}
    assert after_put["x-deployment"] == {"owner": "ops", "tags": ["a", "b"]}
    assert after_put["version"] == 3
    store.delete_server("web")
    assert on_disk(tmp_path / SERVERS_FILE) == json.loads(SERVERS_TEXT)


def test_non_ascii_values_round_trip(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    entry = {**TIME_ENTRY, "name": "Zeit, Überall ☀"}
    store.put_server("time", entry, create=True)
    assert store.server_entry("time") == entry
    assert "Überall ☀".encode() in (tmp_path / SERVERS_FILE).read_bytes()


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "stdio"},
        {"type": "stdio", "command": ""},
        {"type": "carrier-pigeon", "command": "uvx"},
        {"type": "http"},
        {"type": "sse", "url": "ftp://example.com/sse"},
        {"command": "uvx", "args": "not-a-list"},
        {"command": "uvx", "env": {"A": {"nested": 1}}},
        {"command": "uvx", "supervision": {"unknownSetting": 1}},
        {},
        "uvx mcp-server-time",
        ["uvx"],
        None,
    ],
)
def test_invalid_entry_is_refused_and_the_file_is_unchanged(tmp_path: Path, entry: Any) -> None:
    store = store_with(tmp_path)
    for create, key in ((True, "new"), (False, "time")):
        with pytest.raises(ConfigError):
            store.put_server(key, entry, create=create)
        assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT
        assert names_in(tmp_path) == [SERVERS_FILE]


def test_put_refuses_when_mcp_servers_is_not_an_object(tmp_path: Path) -> None:
    content = b'{"mcpServers": []}'
    store = store_with(tmp_path, servers=content)
    with pytest.raises(ConfigError, match='"mcpServers" must be an object'):
        store.put_server("time", TIME_ENTRY, create=True)
    assert (tmp_path / SERVERS_FILE).read_bytes() == content


@pytest.mark.parametrize(
    "document",
    [
        [],
        "text",
        {},
        {"servers": {}},
        {"mcpServers": []},
        {"mcpServers": {"../x": TIME_ENTRY}},
        {"mcpServers": {"time": {"type": "stdio"}}},
    ],
)
def test_write_servers_validates(tmp_path: Path, document: Any) -> None:
    store = store_with(tmp_path)
    with pytest.raises(ConfigError):
        store.write_servers(document)
    assert (tmp_path / SERVERS_FILE).read_bytes() == SERVERS_TEXT
    assert names_in(tmp_path) == [SERVERS_FILE]


def test_write_servers_writes_the_whole_document(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    document = {"mcpServers": {"web": WEB_ENTRY}, "x-other": [1]}
    store.write_servers(document)
    assert on_disk(tmp_path / SERVERS_FILE) == document
    assert (tmp_path / SERVERS_FILE).read_bytes().endswith(b"\n")


# ---------------------------------------------------------------- atomic_write


def test_atomic_write_keeps_the_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / SERVERS_FILE
    path.write_bytes(SERVERS_TEXT)
    path.chmod(0o600)
    atomic_write(path, b"new content\n")
    assert path.read_bytes() == b"new content\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert names_in(tmp_path) == [SERVERS_FILE]


def test_atomic_write_keeps_another_mode(tmp_path: Path) -> None:
    path = tmp_path / "file.json"
    path.write_bytes(b"{}")
    path.chmod(0o640)
    atomic_write(path, b"[]")
    assert path.stat().st_mode & 0o777 == 0o640


def test_atomic_write_creates_a_missing_file_0644(tmp_path: Path) -> None:
    path = tmp_path / "file.json"
    atomic_write(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert path.stat().st_mode & 0o777 == 0o644
    assert names_in(tmp_path) == ["file.json"]


def test_atomic_write_replaces_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "file.json"
    path.write_bytes(b"old")
    before = path.stat().st_ino
    atomic_write(path, b"new")
    assert path.stat().st_ino != before


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file.json"
    path.write_bytes(b"old")

    def failing_replace(source: str, target: object) -> None:
        assert Path(source).parent == tmp_path  # the temp file is in the same directory
        assert Path(source).read_bytes() == b"new"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert names_in(tmp_path) == ["file.json"]


def test_store_write_keeps_mode_0600(tmp_path: Path) -> None:
    store = store_with(tmp_path, tools=TOOLS_TEXT)
    store.servers_path.chmod(0o600)
    store.tools_path.chmod(0o600)
    store.put_server("web", WEB_ENTRY, create=True)
    store.write_tools(store.tools_with_override("time--now", {"enabled": True}))
    assert store.servers_path.stat().st_mode & 0o777 == 0o600
    assert store.tools_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError):
        store.put_server("bad", {"type": "stdio"}, create=True)
    assert store.servers_path.stat().st_mode & 0o777 == 0o600
    assert names_in(tmp_path) == [SERVERS_FILE, TOOLS_FILE]


# ---------------------------------------------------------------- tool_config.json


def test_override_disable_in_a_missing_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    document = store.tools_with_override("time--now", {"enabled": False})
    assert document == {"tools": {"time--now": {"enabled": False}}}
    assert names_in(tmp_path) == []  # not written


def test_override_keeps_other_tools_and_sections(tmp_path: Path) -> None:
    store = store_with(tmp_path, servers=None, tools=TOOLS_TEXT)
    document = store.tools_with_override("time--convert", {"exposedName": "convert_time"})
    assert document == {
        "tools": {"time--now": {"enabled": False}, "time--convert": {"exposedName": "convert_time"}},
        "x-note": "unknown section",
    }
    assert (tmp_path / TOOLS_FILE).read_bytes() == TOOLS_TEXT


def test_override_sets_name_and_description_stripped(tmp_path: Path) -> None:
    document = ConfigStore(tmp_path).tools_with_override(
        "time--now", {"exposedName": "  clock  ", "exposedDescription": " What time is it? ", "enabled": True}
    )
    assert document == {
        "tools": {"time--now": {"exposedName": "clock", "exposedDescription": "What time is it?", "enabled": True}}
    }


@pytest.mark.parametrize("cleared", ["", None, "   "])
def test_override_clears_a_name(tmp_path: Path, cleared: str | None) -> None:
    tools = b'{"tools": {"time--now": {"enabled": false, "exposedName": "clock", "exposedDescription": "d"}}}'
    store = store_with(tmp_path, servers=None, tools=tools)
    document = store.tools_with_override("time--now", {"exposedName": cleared})
    assert document == {"tools": {"time--now": {"enabled": False, "exposedDescription": "d"}}}


def test_override_replaces_the_readme_spelling(tmp_path: Path) -> None:
    tools = b'{"tools": {"time--now": {"displayName": "old_name", "description": "old text", "x-extra": 1}}}'
    store = store_with(tmp_path, servers=None, tools=tools)
    document = store.tools_with_override("time--now", {"exposedName": "new_name", "exposedDescription": "new text"})
    assert document == {
        "tools": {"time--now": {"x-extra": 1, "exposedName": "new_name", "exposedDescription": "new text"}}
    }


def test_override_clearing_removes_the_readme_spelling_too(tmp_path: Path) -> None:
    tools = b'{"tools": {"time--now": {"enabled": false, "displayName": "old_name", "description": "old text"}}}'
    store = store_with(tmp_path, servers=None, tools=tools)
    document = store.tools_with_override("time--now", {"exposedName": None, "exposedDescription": ""})
    assert document == {"tools": {"time--now": {"enabled": False}}}


def test_override_only_touches_the_fields_sent(tmp_path: Path) -> None:
    tools = b'{"tools": {"time--now": {"displayName": "old_name", "description": "old text"}}}'
    store = store_with(tmp_path, servers=None, tools=tools)
    document = store.tools_with_override("time--now", {"enabled": False})
    assert document == {
        "tools": {"time--now": {"displayName": "old_name", "description": "old text", "enabled": False}}
    }


@pytest.mark.parametrize(
    ("current", "changes"),
    [
        ({"enabled": False}, {"enabled": True}),
        ({"exposedName": "clock"}, {"exposedName": ""}),
        ({"exposedName": "clock", "enabled": True}, {"exposedName": None}),
        ({"displayName": "clock", "description": "d"}, {"exposedName": None, "exposedDescription": " "}),
        ({"enabled": False, "exposedDescription": "d"}, {"enabled": True, "exposedDescription": None}),
    ],
)
def test_override_back_to_defaults_removes_the_key(
    tmp_path: Path, current: dict[str, Any], changes: dict[str, Any]
) -> None:
    tools = {"tools": {"time--now": current, "time--x": {"enabled": False}}, "x-note": 1}
    store = store_with(tmp_path, servers=None, tools=json.dumps(tools).encode())
    document = store.tools_with_override("time--now", changes)
    assert document == {"tools": {"time--x": {"enabled": False}}, "x-note": 1}


def test_override_with_no_changes_on_an_unknown_tool_adds_nothing(tmp_path: Path) -> None:
    assert ConfigStore(tmp_path).tools_with_override("time--now", {}) == {"tools": {}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"enabled": "false"}, '"enabled" must be true or false'),
        ({"enabled": 0}, '"enabled" must be true or false'),
        ({"enabled": None}, '"enabled" must be true or false'),
        ({"exposedName": 5}, '"exposedName" must be a string'),
        ({"exposedName": ["a"]}, '"exposedName" must be a string'),
        ({"exposedDescription": False}, '"exposedDescription" must be a string'),
        ({"displayName": "x"}, 'unknown field "displayName"'),
        ({"description": "x"}, 'unknown field "description"'),
        ({"name": "x"}, 'unknown field "name"'),
    ],
)
def test_override_bad_changes_are_refused(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    store = store_with(tmp_path, servers=None, tools=TOOLS_TEXT)
    with pytest.raises(ConfigError, match=message):
        store.tools_with_override("time--now", changes)
    assert (tmp_path / TOOLS_FILE).read_bytes() == TOOLS_TEXT


def test_override_refuses_a_tools_section_that_is_not_an_object(tmp_path: Path) -> None:
    store = store_with(tmp_path, servers=None, tools=b'{"tools": []}')
    with pytest.raises(ConfigError, match='"tools" must be an object'):
        store.tools_with_override("time--now", {"enabled": False})


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"tools": []},
        {"tools": {"time--now": "off"}},
        {"tools": {"time--now": {"enabled": "maybe"}}},
        {"tools": {"time--now": {"exposedName": 5}}},
    ],
)
def test_write_tools_validates(tmp_path: Path, document: Any) -> None:
    store = store_with(tmp_path, servers=None, tools=TOOLS_TEXT)
    with pytest.raises(ConfigError):
        store.write_tools(document)
    assert (tmp_path / TOOLS_FILE).read_bytes() == TOOLS_TEXT
    assert names_in(tmp_path) == [TOOLS_FILE]


def test_write_tools_then_read(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    document = {"tools": {"time--now": {"enabled": False}}, "x-note": "kept"}
    store.write_tools(document)
    assert store.read_tools() == document
    assert names_in(tmp_path) == [TOOLS_FILE]


# ---------------------------------------------------------------- tail_lines (admin log view)


def test_tail_lines_last_n(tmp_path: Path) -> None:
    path = tmp_path / "time.log"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    assert tail_lines(path, 3) == ["line 7", "line 8", "line 9"]
    assert tail_lines(path, 1) == ["line 9"]
    assert tail_lines(path, 100) == [f"line {i}" for i in range(10)]


def test_tail_lines_without_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "time.log"
    path.write_bytes(b"a\nb\npartial")
    assert tail_lines(path, 2) == ["b", "partial"]


def test_tail_lines_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    assert tail_lines(tmp_path / "empty.log", 5) == []
    assert tail_lines(tmp_path / "missing.log", 5) == []


def test_tail_lines_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "time.log"
    path.write_bytes(b"ok\nbad \xff byte\n")
    assert tail_lines(path, 5) == ["ok", "bad \ufffd byte"]


def test_tail_lines_reads_only_the_end_of_a_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_view, "LOG_TAIL_BYTES", 20)
    path = tmp_path / "time.log"
    # 40 bytes; the last 20 are "-02\nline-03\nline-04\n": the fragment of line-02 is dropped.
    path.write_bytes(b"line-00\nline-01\nline-02\nline-03\nline-04\n")
    assert tail_lines(path, 100) == ["line-03", "line-04"]
    assert tail_lines(path, 1) == ["line-04"]


def test_tail_lines_default_limit_drops_the_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    line = b"x" * 99 + b"\n"  # 100 bytes a line
    count = health_view.LOG_TAIL_BYTES // 100 + 50
    path.write_bytes(b"".join(b"%05d" % i + line[5:] for i in range(count)))
    assert path.stat().st_size > health_view.LOG_TAIL_BYTES
    lines = tail_lines(path, 10_000)
    assert lines[-1].startswith(f"{count - 1:05d}")
    assert all(len(text) == 99 for text in lines)  # no cut fragment
    # Only the last LOG_TAIL_BYTES were read: the complete lines inside them, minus the cut one.
    assert len(lines) == health_view.LOG_TAIL_BYTES // 100


def test_tail_lines_keeps_a_whole_first_line_when_the_cut_falls_on_a_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_view, "LOG_TAIL_BYTES", 8)
    path = tmp_path / "x.log"
    path.write_bytes(b"zzzz\nabc\ndef\n")  # the last 8 bytes are exactly "abc\ndef\n"
    assert health_view.tail_lines(path, 10) == ["abc", "def"]
