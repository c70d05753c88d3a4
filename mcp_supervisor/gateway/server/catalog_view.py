"""The gateway's aggregated catalog, rebuilt lazily when a backend's catalog or the tool config changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.dataplane.backends import BackendLink, Backends
from mcp_supervisor.gateway.server.catalog import (
    AggregatedPrompts,
    AggregatedResources,
    AggregatedTools,
    aggregate_prompts,
    aggregate_resources,
    aggregate_tools,
)
from mcp_supervisor.gateway.server.ownership import Arbiter, Claims
from mcp_supervisor.gateway.server.validation import DEFAULT_LIMITS, Limits

log = logging.getLogger("mcp_supervisor.gateway")


def catalog_view(settings: Settings, backends: Backends, tool_config: ToolConfig) -> CatalogView:
    """The gateway's catalog: limits from the settings, backends ranked in the supervisor's (config) order."""
    return CatalogView(
        settings.separator,
        tool_config,
        Limits(settings.tool_description_max_bytes, settings.max_tools_per_backend),
        configured=lambda: backends.statuses,
        last_links=lambda: backends.last_links,
    )


class CatalogView:
    def __init__(
        self,
        separator: str,
        tool_config: ToolConfig,
        limits: Limits = DEFAULT_LIMITS,
        configured: Callable[[], Iterable[str]] = tuple,
        last_links: Callable[[], dict[str, BackendLink]] = dict,
    ) -> None:
        self.separator = separator
        self.tool_config = tool_config
        self.limits = limits
        # Who listed what first (ownership.py): kept across rebuilds, for the gateway's life.
        self.claims = Claims()
        self._configured = configured  # the backends the supervisor reports on (its statuses)
        self._last_links = last_links  # the last link of every backend, down ones included
        # The mcp_server.json the supervisor runs (runtime.py wires it): its key order ranks founding backends.
        self.config_source: Callable[[], bytes] = bytes
        self._config_keys: tuple[bytes, list[str]] = (b"", [])
        self._founding: frozenset[str] | None = None  # the backends of the first config the gateway saw
        self._links: dict[str, BackendLink] = {}
        self._reported: dict[str, frozenset[str]] = {}  # kind → the problems logged at its last rebuild
        self._tools: AggregatedTools | None = None
        self._prompts: AggregatedPrompts | None = None
        self._resources: AggregatedResources | None = None
        self._first_pages: dict[str, bytes] = {}
        self._header_schemas: dict[str, Any] | None = None
        # Tool pinning's hook (pinning/policy.py): takes held items out of a rebuilt list and its routes.
        self.screen: Callable[[str, list[dict[str, Any]], dict[str, Any], Mapping[str, Sequence[Any]]], None] = (
            lambda kind, items, routes, catalogs: None
        )

    def update(self, links: dict[str, BackendLink], tool_config: ToolConfig | None = None) -> None:
        self._links = dict(links)
        if tool_config is not None:
            self.tool_config = tool_config
        self._tools = self._prompts = self._resources = None
        self._header_schemas = None
        self._first_pages.clear()

    def _prefixes(self, links: dict[str, BackendLink]) -> dict[str, str]:
        return {key: link.name_prefix for key, link in links.items() if link.name_prefix is not None}

    def _kind(self, kind: str, links: dict[str, BackendLink] | None = None) -> dict[str, list[dict[str, Any]]]:
        return {key: link.catalog.get(kind, []) for key, link in (links or self._links).items()}

    def _arbiter(self) -> Arbiter:
        known = {**self._last_links(), **self._links}
        config_keys = self._server_keys()
        if self._founding is None and config_keys:
            self._founding = frozenset(config_keys)
        configured = list(dict.fromkeys([*config_keys, *self._configured(), *self._links]))
        return Arbiter(
            claims=self.claims,
            configured=configured,
            linked=frozenset(self._links),
            separator=self.separator,
            # A backend never linked yet is taken to use the default prefix: its namespace is kept for it.
            default_prefixed=frozenset(k for k in configured if k not in known or known[k].name_prefix is None),
            display_names={key: link.display_name for key, link in known.items() if link.display_name},
            founding=self._founding,
        )

    @property
    def tools(self) -> AggregatedTools:
        if self._tools is None:
            self._tools = aggregate_tools(
                self._kind("tools"),
                self.tool_config,
                self.separator,
                self._prefixes(self._links),
                self._arbiter(),
                self.limits,
            )
            self._report("tools", self._tools.problems)
            self.screen("tool", self._tools.tools, self._tools.routes, self._kind("tools"))
        return self._tools

    @property
    def prompts(self) -> AggregatedPrompts:
        if self._prompts is None:
            self._prompts = aggregate_prompts(
                self._kind("prompts"), self.separator, self._prefixes(self._links), self._arbiter()
            )
            self._report("prompts", self._prompts.problems)
            self.screen("prompt", self._prompts.prompts, self._prompts.routes, self._kind("prompts"))
        return self._prompts

    @property
    def resources(self) -> AggregatedResources:
        if self._resources is None:
            self._resources = aggregate_resources(
                self._kind("resources"), self._kind("resource_templates"), self._arbiter()
            )
            self._report("resources", self._resources.problems)
        return self._resources

    def _server_keys(self) -> list[str]:
        """The keys of the running mcp_server.json, in its order (parsed once per version of the file)."""
        raw = self.config_source()
        if raw != self._config_keys[0]:
            try:
                servers = json.loads(raw).get("mcpServers")
                self._config_keys = (raw, [str(key) for key in servers] if isinstance(servers, dict) else [])
            except (ValueError, AttributeError):
                self._config_keys = (raw, self._config_keys[1])  # the supervisor validated it: never expected
        return self._config_keys[1]

    def problems(self) -> list[str]:
        """Everything withheld or overlapping in the current catalog (for `status`), aggregating it if need be."""
        return [*self.tools.problems, *self.prompts.problems, *self.resources.problems]

    def header_schema(self, name: str) -> Any:
        """The input schema of exposed tool `name` if it declares `x-mcp-header` parameters (2026-07-28
        `Mcp-Param-*` headers to check), else None: found once per catalog, so other calls pay one lookup."""
        if self._header_schemas is None:
            self._header_schemas = {
                str(tool.get("name")): tool.get("inputSchema")
                for tool in self.tools.tools
                if '"x-mcp-header"' in json.dumps(tool.get("inputSchema"))
            }
        return self._header_schemas.get(name)

    def tools_of(self, links: dict[str, BackendLink]) -> AggregatedTools:
        """Tools of other links (backends that are down), for naming the backend in an error."""
        return aggregate_tools(self._kind("tools", links), self.tool_config, self.separator, self._prefixes(links))

    def prompts_of(self, links: dict[str, BackendLink]) -> AggregatedPrompts:
        return aggregate_prompts(self._kind("prompts", links), self.separator, self._prefixes(links))

    def cached_first_page(self, kind: str) -> bytes | None:
        return self._first_pages.get(kind)

    def cache_first_page(self, kind: str, encoded: bytes) -> None:
        self._first_pages[kind] = encoded

    def capabilities(self) -> dict[str, Any]:
        """The union of the linked backends' capabilities; tools, prompts and resources are always offered
        (with listChanged), because backends can be added at any time by a reload."""
        union: dict[str, Any] = {
            "tools": {"listChanged": True},
            "prompts": {"listChanged": True},
            "resources": {"listChanged": True},
        }
        for link in self._links.values():
            offered = link.capabilities
            resources = offered.get("resources")
            if isinstance(resources, dict) and resources.get("subscribe"):
                union["resources"]["subscribe"] = True
            if "logging" in offered:
                union["logging"] = {}
            if "completions" in offered:
                union["completions"] = {}
        return union

    def _report(self, kind: str, problems: list[str]) -> None:
        """Each problem is logged when it appears, not again at every rebuild (a backend may relist at will)."""
        before = self._reported.get(kind, frozenset())
        for problem in problems:
            if problem not in before:
                log.warning("%s", problem)
        self._reported[kind] = frozenset(problems)
