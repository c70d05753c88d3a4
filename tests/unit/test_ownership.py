"""First come, first served: names, URIs and templates stay with the backend that listed them first."""

from __future__ import annotations

from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.gateway.server.catalog import aggregate_resources, aggregate_tools
from mcp_supervisor.gateway.server.ownership import Arbiter, Claims
from mcp_supervisor.gateway.server.validation import Limits


def _tool(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object"}, **fields}


def _arbiter(claims: Claims, configured: list[str], linked: list[str], founding: list[str] | None = None) -> Arbiter:
    return Arbiter(claims, configured, frozenset(linked), "--", frozenset(), {"victim": "Victim Corp"}, founding)


def test_a_later_lister_never_takes_a_name_whatever_the_key_order() -> None:
    claims = Claims()  # no founding backend: everything ranks by arrival
    first = aggregate_tools(
        {"zed": [_tool("lookup")]}, ToolConfig(), "--", {"zed": ""}, _arbiter(claims, ["zed"], ["zed"])
    )
    assert first.routes["lookup"].server_key == "zed"
    catalogs = {"aaa": [_tool("lookup")], "zed": [_tool("lookup")]}
    both = aggregate_tools(
        catalogs, ToolConfig(), "--", {"aaa": "", "zed": ""}, _arbiter(claims, ["zed", "aaa"], ["zed", "aaa"])
    )
    assert both.routes["lookup"].server_key == "zed"
    assert any('"aaa"' in p and '"zed"' in p and "'lookup'" in p for p in both.problems), both.problems
    # While zed is down its name stays its own: aaa does not get it meanwhile.
    down = aggregate_tools(
        {"aaa": [_tool("lookup")]}, ToolConfig(), "--", {"aaa": ""}, _arbiter(claims, ["zed", "aaa"], ["aaa"])
    )
    assert "lookup" not in down.routes


def test_backends_there_at_the_start_rank_in_config_order() -> None:
    claims = Claims()
    catalogs = {"aaa": [_tool("x")], "victim": [_tool("x")]}
    result = aggregate_tools(
        catalogs, ToolConfig(), "--", {"aaa": "", "victim": ""}, _arbiter(claims, ["victim", "aaa"], ["aaa", "victim"])
    )
    assert result.routes["x"].server_key == "victim"


def test_a_name_in_another_backends_namespace_is_withheld() -> None:
    arbiter = Arbiter(Claims(), ["victim", "shadow"], frozenset(["victim", "shadow"]), "--", frozenset(["victim"]))
    result = aggregate_tools({"shadow": [_tool("victim--read")]}, ToolConfig(), "--", {"shadow": ""}, arbiter)
    assert result.tools == []
    assert "namespace" in result.problems[0]


def test_titles_are_attributed() -> None:
    arbiter = _arbiter(Claims(), ["victim", "shadow"], ["victim", "shadow"])
    catalogs = {"victim": [_tool("read", title="Read")], "shadow": [_tool("x", title="victim read")]}
    titles = {t["name"]: t["title"] for t in aggregate_tools(catalogs, ToolConfig(), "--", None, arbiter).tools}
    assert titles == {"victim--read": "Victim Corp: Read", "shadow--x": "shadow: victim read"}


def test_limits_withhold_and_report() -> None:
    tools = [_tool("big", description="é" * 9), _tool("null", inputSchema=None), *[_tool(f"t{i}") for i in range(5)]]
    result = aggregate_tools(
        {"s": tools}, ToolConfig(), "--", limits=Limits(description_max_bytes=16, tools_per_backend=3)
    )
    assert [t["name"] for t in result.tools] == ["s--t0", "s--t1", "s--t2"]
    assert any("'s--big'" in p and "18 bytes" in p for p in result.problems), result.problems
    assert any("'s--null'" in p and "inputSchema" in p for p in result.problems), result.problems
    assert any("2 tools past the limit of 3" in p for p in result.problems), result.problems


def test_a_template_captures_no_listed_uri_and_overlaps_are_reported() -> None:
    resources = {"victim": [{"uri": "victim://secret"}]}
    templates = {"aaa": [{"uriTemplate": "{+any}"}], "victim": [{"uriTemplate": "victim://notes/{id}"}]}
    claims = Claims()
    result = aggregate_resources(resources, templates, _arbiter(claims, ["victim", "aaa"], ["victim", "aaa"]))
    assert result.route("victim://secret") == "victim"
    assert result.route("victim://notes/1") == "victim"
    assert result.route("other://x") == "aaa"
    assert any("overlap" in p and "{+any}" in p for p in result.problems), result.problems
    # The victim down: its URIs still route to it (and answer "unavailable"), never to the catch-all.
    down = aggregate_resources({}, {"aaa": templates["aaa"]}, _arbiter(claims, ["victim", "aaa"], ["aaa"]))
    assert down.route("victim://secret") == "victim"
    assert down.route("victim://notes/1") == "victim"


def test_check_config_tells_what_the_files_alone_show() -> None:
    from mcp_supervisor.config.claims_check import ownership_warnings
    from mcp_supervisor.config.models import ServerEntry, ToolOverride

    servers = {
        "victim": ServerEntry(key="victim", type="stdio", command="x"),
        "shadow": ServerEntry(key="shadow", type="stdio", command="x", namePrefix="victim--"),
        "a": ServerEntry(key="a", type="stdio", command="x", namePrefix=""),
        "b": ServerEntry(key="b", type="stdio", command="x", namePrefix=""),
    }
    tools = ToolConfig(tools={"a--t": ToolOverride(exposed_name="victim--t")})
    warnings = ownership_warnings(servers, tools, "--")
    assert len(warnings) == 4, warnings
    assert "'shadow'" in warnings[0] and "namespace" in warnings[0]
    assert "'victim--'" in warnings[1] and "share" in warnings[1]  # victim's own prefix and shadow's
    assert "'a', 'b'" in warnings[2]
    assert "'victim--t'" in warnings[3]
    assert ownership_warnings({"victim": servers["victim"]}, ToolConfig(), "--") == []


def test_a_founding_backend_ranks_in_config_order_however_late_it_links() -> None:
    claims = Claims()
    founding = ["victim", "aaa"]
    assert claims.resolve("tool", {"aaa": ["x"]}, ["aaa"], founding, founding) == {"x": "aaa"}
    both = claims.resolve("tool", {"aaa": ["x"], "victim": ["x"]}, ["aaa", "victim"], founding, founding)
    assert both == {"x": "victim"}  # listed first in mcp_server.json: slow to start, not second
    # What a founding backend lists later ranks by arrival; so does a backend added by a reload.
    configured = [*founding, "late"]
    listed = {"aaa": ["x", "y"], "victim": ["x"], "late": ["y", "x"]}
    assert claims.resolve("tool", listed, configured, configured, founding) == {"x": "victim", "y": "aaa"}


def test_the_catalog_ranks_founding_backends_in_mcp_server_json_order_not_link_order() -> None:
    import json

    from mcp_supervisor.gateway.dataplane.backends import BackendLink
    from mcp_supervisor.gateway.server.catalog_view import CatalogView

    def link(key: str) -> BackendLink:
        return BackendLink(key, 1, key.encode(), {}, {"tools": [_tool("x")]}, name_prefix="")

    view = CatalogView("--", ToolConfig())
    view.config_source = lambda: json.dumps({"mcpServers": {"victim": {}, "aaa": {}}}).encode()
    view.update({"aaa": link("aaa")})  # the faster backend links first
    assert view.tools.routes["x"].server_key == "aaa"
    view.update({"aaa": link("aaa"), "victim": link("victim")})
    assert view.tools.routes["x"].server_key == "victim"
    assert any('"aaa"' in p and "'x'" in p for p in view.problems())
