"""The gateway's aggregated catalog, rebuilt lazily when a backend's catalog or the tool config changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.gateway.dataplane.backends import BackendLink
from mcp_supervisor.gateway.server.catalog import (
    AggregatedPrompts,
    AggregatedResources,
    AggregatedTools,
    aggregate_prompts,
    aggregate_resources,
    aggregate_tools,
)

log = logging.getLogger("mcp_supervisor.gateway")


class CatalogView:
    def __init__(self, separator: str, tool_config: ToolConfig) -> None:
        self.separator = separator
        self.tool_config = tool_config
        self._links: dict[str, BackendLink] = {}
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

    @property
    def tools(self) -> AggregatedTools:
        if self._tools is None:
            self._tools = aggregate_tools(
                self._kind("tools"), self.tool_config, self.separator, self._prefixes(self._links)
            )
            self._report(self._tools.problems)
            self.screen("tool", self._tools.tools, self._tools.routes, self._kind("tools"))
        return self._tools

    @property
    def prompts(self) -> AggregatedPrompts:
        if self._prompts is None:
            self._prompts = aggregate_prompts(self._kind("prompts"), self.separator, self._prefixes(self._links))
            self._report(self._prompts.problems)
            self.screen("prompt", self._prompts.prompts, self._prompts.routes, self._kind("prompts"))
        return self._prompts

    @property
    def resources(self) -> AggregatedResources:
        if self._resources is None:
            self._resources = aggregate_resources(self._kind("resources"), self._kind("resource_templates"))
            self._report(self._resources.problems)
        return self._resources

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

    @staticmethod
    def _report(problems: list[str]) -> None:
        for problem in problems:
            log.warning("%s", problem)
