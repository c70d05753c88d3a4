"""Tool search (gateway/server/tool_search/): terms, the BM25 ranking, the meta-tools' arguments, search mode per
profile, the tools/list and tools/call hooks, and the index following catalog changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mcp_supervisor.config.clients import EVERYTHING, parse_clients
from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.errors import ConfigError
from mcp_supervisor.gateway.server.catalog import aggregate_tools
from mcp_supervisor.gateway.server.catalog_view import CatalogView
from mcp_supervisor.gateway.server.tool_search import ToolSearch, binding_name
from mcp_supervisor.gateway.server.tool_search.index import SearchIndex
from mcp_supervisor.gateway.server.tool_search.meta_tools import BadArguments, call_target, search_arguments
from mcp_supervisor.gateway.server.tool_search.text import terms

BENCH = Path(__file__).resolve().parents[2] / "bench"


def tool(name: str, description: str = "", title: str | None = None, **params: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {p: {"type": "string", "description": d} for p, d in params.items()}}
    return {"name": name, "description": description, "inputSchema": schema, **({"title": title} if title else {})}


def real_tools() -> list[dict[str, Any]]:
    catalogs = json.loads((BENCH / "tool_search_catalogs.json").read_text())
    return aggregate_tools({k: v["tools"] for k, v in catalogs.items()}, ToolConfig(), "--").tools


def names(found: Any) -> list[str]:
    return [str(t["name"]) for t in found]


def test_terms_split_names_drop_common_words_and_meet_inflections() -> None:
    assert terms("getCurrentTime") == ["current", "time"]
    assert terms("read_text_file") == ["read", "text", "file"]
    assert terms("list-directory-with-sizes") == ["list", "directory", "size"]
    assert terms("Get a detailed listing of all files") == ["detail", "list", "all", "file"]
    assert terms("create")[0] == terms("created")[0] == terms("creating")[0]
    assert terms("folder") == terms("directories")  # a generic synonym, both sides


def test_ranking_prefers_the_name_and_honours_limit_and_view() -> None:
    tools = [
        tool("notes--write", "Store a text.", path="where the weather report goes"),
        tool("weather--forecast", "The weather forecast for a city.", city="the city"),
        tool("weather--alerts", "Severe alerts.", title="Weather alerts"),
    ]
    index = SearchIndex(tools)
    assert names(index.search("weather forecast", 5, lambda _: True))[0] == "weather--forecast"
    assert len(index.search("weather", 1, lambda _: True)) == 1
    hidden = names(index.search("weather forecast", 5, lambda t: t["name"] != "weather--forecast"))
    assert "weather--forecast" not in hidden and hidden[0] == "weather--alerts"
    assert index.search("zebra", 5, lambda _: True) == []  # nothing shared: nothing returned
    assert names(index.search("notes--write", 5, lambda _: True))[0] == "notes--write"  # an exact name first


def test_the_real_catalogs_meet_the_target() -> None:
    """The same set `make bench` reports: top-5 >= 90 % over the published servers' real tools."""
    index = SearchIndex(real_tools())
    tasks = json.loads((BENCH / "tool_search_eval.json").read_text())["tasks"]
    assert len(tasks) >= 60
    hits = sum(t["expected"] in names(index.search(t["query"], 5, lambda _: True)) for t in tasks)
    assert hits / len(tasks) >= 0.9


def test_meta_tool_arguments() -> None:
    assert search_arguments({"query": "time"}) == ("time", 5)
    assert search_arguments({"query": "time", "limit": "3"}) == ("time", 3)
    for limit in (0, 51, True):
        with pytest.raises(BadArguments):
            search_arguments({"query": "x", "limit": limit})
    for bad in ({}, {"query": " "}):
        with pytest.raises(BadArguments):
            search_arguments(bad)
    assert call_target({"name": "a--b", "arguments": {"x": 1}}) == ("a--b", {"x": 1})
    assert call_target({"name": "a--b", "arguments": '{"x": 1}'}) == ("a--b", {"x": 1})  # a JSON text
    assert call_target({"name": "a--b"}) == ("a--b", {})
    for bad in ({}, {"name": "call_tool"}, {"name": "search_tools"}, {"name": "a", "arguments": "[1]"}):
        with pytest.raises(BadArguments):
            call_target(bad)
    assert binding_name({"name": "call_tool", "arguments": {"name": "a--b"}}) == "call_tool a--b"
    assert binding_name({"name": "a--b"}) == "a--b"


def test_settings_and_profiles(tmp_path: Path) -> None:
    assert load_settings({}, tmp_path).tool_search == "off"
    settings = load_settings({"TOOL_SEARCH": "Auto", "TOOL_SEARCH_THRESHOLD": "10"}, tmp_path)
    assert (settings.tool_search, settings.tool_search_threshold) == ("auto", 10)
    with pytest.raises(ConfigError, match="TOOL_SEARCH"):
        load_settings({"TOOL_SEARCH": "maybe"}, tmp_path)
    clients = parse_clients({"clients": {"*": {"toolSearch": "on", "alwaysShow": ["time--*"]}}})
    assert clients.resolve().tool_search == "on" and clients.resolve().always_show == ("time--*",)
    with pytest.raises(ConfigError, match="toolSearch"):
        parse_clients({"clients": {"*": {"toolSearch": "yes"}}})
    with pytest.raises(ConfigError, match="alwaysShow"):
        parse_clients({"clients": {"*": {"alwaysShow": "time--*"}}})


def fake_core(tools: dict[str, list[dict[str, Any]]], mode: str = "on", threshold: int = 64) -> Any:
    catalog = CatalogView("--", ToolConfig())
    links = {
        key: SimpleNamespace(catalog={"tools": items}, name_prefix=None, display_name="")
        for key, items in tools.items()
    }
    catalog.update(links)  # type: ignore[arg-type]

    async def settle_startup(_: float) -> None:
        return None

    settings = SimpleNamespace(tool_search=mode, tool_search_threshold=threshold, startup_wait_s=0)
    core = SimpleNamespace(catalog=catalog, settings=settings, backends=SimpleNamespace(settle_startup=settle_startup))
    core.tool_search = ToolSearch(settings)  # type: ignore[arg-type]
    core.profile = lambda session: session.profile
    return core


def context(profile: Any) -> Any:
    return SimpleNamespace(session=SimpleNamespace(profile=profile), request_id=7, params={})


def intercept(core: Any, profile: Any, params: dict[str, Any]) -> Any:
    return asyncio.run(core.tool_search.intercept(core, context(profile), params))


def test_listing_per_mode_threshold_and_always_show() -> None:
    core = fake_core({"a": [tool("one"), tool("two")], "b": [tool("three")]}, mode="auto", threshold=2)
    search: ToolSearch = core.tool_search
    listed = search.listed(core, EVERYTHING)
    assert listed is not None and names(listed) == ["search_tools", "call_tool"]  # 3 tools > 2
    profiles = parse_clients(
        {
            "clients": {
                "small": {"match": {"keys": ["k"]}, "servers": ["b"]},
                "*": {"toolSearch": "on", "alwaysShow": ["a--t*"], "tools": {"deny": ["a--three"]}},
            }
        }
    )
    assert search.listed(core, profiles.resolve(key="k")) is None  # auto, a view of 1 tool: listed as is
    listed = search.listed(core, profiles.resolve())
    assert listed is not None and names(listed) == ["search_tools", "call_tool", "a--two"]
    assert fake_core({"a": [tool("one")]}, mode="off").tool_search.listed(core, EVERYTHING) is None


def test_search_and_call_through_the_hook_keep_the_profile() -> None:
    core = fake_core({"files": [tool("read_file", "Read a file."), tool("secret_file", "Read the secret file.")]})
    profile = parse_clients({"clients": {"*": {"tools": {"deny": ["files--secret*"]}}}}).resolve()
    reply = json.loads(intercept(core, profile, {"name": "search_tools", "arguments": {"query": "read file"}}))
    found = reply["result"]["structuredContent"]["tools"]
    assert names(found) == ["files--read_file"] and set(found[0]) == {"name", "description", "inputSchema"}
    ctx = context(profile)
    call = {"name": "call_tool", "arguments": {"name": "files--secret_file", "arguments": {"x": 1}}, "_meta": {"p": 1}}
    unwrapped = asyncio.run(core.tool_search.intercept(core, ctx, call))
    # Unwrapped for the direct path, which makes the profile check (the e2e test shows it refuses this one).
    assert unwrapped == {"name": "files--secret_file", "arguments": {"x": 1}, "_meta": {"p": 1}}
    assert ctx.params is unwrapped  # what the audit trail reads
    bad = json.loads(intercept(core, profile, {"name": "call_tool", "arguments": {}}))
    assert bad["result"]["isError"] is True
    assert intercept(core, profile, {"name": "files--read_file"}) is None  # any other call: untouched
    off = fake_core({"files": [tool("read_file")]}, mode="off")
    assert intercept(off, EVERYTHING, {"name": "search_tools", "arguments": {"query": "x"}}) is None


def test_the_index_follows_catalog_changes() -> None:
    core = fake_core({"a": [tool("alpha", "First.")]})
    search: ToolSearch = core.tool_search
    assert names(search.search(core, EVERYTHING, "alpha", 5)) == ["a--alpha"]
    core.catalog.update(
        {"a": SimpleNamespace(catalog={"tools": [tool("beta", "Second.")]}, name_prefix=None, display_name="")}
    )
    assert search.search(core, EVERYTHING, "alpha", 5) == []
    assert names(search.search(core, EVERYTHING, "beta", 5)) == ["a--beta"]


def test_a_backend_tool_named_like_a_meta_tool() -> None:
    """Transparently fronted (no prefix), a backend's own `search_tools` is called as itself while its client is
    not in search mode (auto, under the threshold), and shadowed once it is."""
    core = fake_core({"a": [tool("one")]}, mode="auto", threshold=2)
    core.catalog.update(
        {"a": SimpleNamespace(catalog={"tools": [tool("search_tools")]}, name_prefix="", display_name="")}
    )
    call = {"name": "search_tools", "arguments": {"query": "x"}}
    assert intercept(core, EVERYTHING, call) is None  # 1 tool <= 2: the backend's tool
    many = [tool("search_tools"), tool("b"), tool("c")]
    core.catalog.update({"a": SimpleNamespace(catalog={"tools": many}, name_prefix="", display_name="")})
    assert isinstance(intercept(core, EVERYTHING, call), bytes)  # 3 tools > 2: search mode, the meta-tool
