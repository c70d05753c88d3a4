"""Aggregating the backends' catalogs into one server: names, overrides, routes, collisions.

Pure: given what each backend listed (as it sent it), its name prefix, the tool config and the separator, it
computes the exposed lists and the route of every exposed name or URI. Every item field is passed through;
only `name` (tools, prompts) and, with an override, a tool's `description` and `title` change (a display name
that is no valid tool name becomes the title: config/tool_names.py). Collisions and names
outside the spec's alphabet are reported, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.tool_names import TOOL_NAME_PATTERN, display_name_effect

Items = Sequence[Mapping[str, Any]]


def qualified_name(server_key: str, separator: str, tool_name: str) -> str:
    """mcp-proxy-server's name of a backend tool: `<server_key><SEP><tool>`; tool_config.json is keyed by it."""
    return f"{server_key}{separator}{tool_name}"


@dataclass(frozen=True, slots=True)
class ToolRoute:
    server_key: str
    original_name: str


@dataclass
class AggregatedTools:
    tools: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, ToolRoute] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _prefix(prefixes: Mapping[str, str] | None, server_key: str, separator: str) -> str:
    if prefixes is not None and server_key in prefixes:
        return prefixes[server_key]
    return f"{server_key}{separator}"


def aggregate_tools(
    catalogs: Mapping[str, Items],
    tool_config: ToolConfig,
    separator: str,
    prefixes: Mapping[str, str] | None = None,
) -> AggregatedTools:
    """Backends are taken in key order, so the exposed list and collision winners are deterministic."""
    out = AggregatedTools()
    for server_key in sorted(catalogs):
        prefix = _prefix(prefixes, server_key, separator)
        for tool in catalogs[server_key]:
            original = tool.get("name")
            if not isinstance(original, str) or not original:
                out.problems.append(f'Backend "{server_key}" listed a tool without a name; it is not exposed.')
                continue
            qualified = qualified_name(server_key, separator, original)
            override = tool_config.override_for(qualified)
            if override is not None and not override.enabled:
                continue
            exposed = dict(tool)
            name = f"{prefix}{original}"
            if override is not None and override.exposed_name:
                if display_name_effect(override.exposed_name) == "rename":
                    name = override.exposed_name
                else:
                    exposed["title"] = override.exposed_name
            if override is not None and override.exposed_description:
                exposed["description"] = override.exposed_description
            if not TOOL_NAME_PATTERN.fullmatch(name):
                out.problems.append(
                    f"Tool name {name!r} (backend {server_key!r}) is not 1-128 of [A-Za-z0-9_.-]; "
                    "some clients may refuse it."
                )
            if name in out.routes:
                winner = out.routes[name]
                out.problems.append(
                    f'Tool name {name!r} of backend "{server_key}" collides with tool '
                    f'{winner.original_name!r} of backend "{winner.server_key}"; only the latter is exposed. '
                    "Rename one in tool_config.json."
                )
                continue
            exposed["name"] = name
            out.tools.append(exposed)
            out.routes[name] = ToolRoute(server_key=server_key, original_name=original)
    return out


@dataclass
class AggregatedPrompts:
    prompts: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, ToolRoute] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def aggregate_prompts(
    catalogs: Mapping[str, Items], separator: str, prefixes: Mapping[str, str] | None = None
) -> AggregatedPrompts:
    """Prompts are prefixed like tools (`namePrefix`, default `<key><SEP>`)."""
    out = AggregatedPrompts()
    for server_key in sorted(catalogs):
        prefix = _prefix(prefixes, server_key, separator)
        for prompt in catalogs[server_key]:
            original = prompt.get("name")
            if not isinstance(original, str) or not original:
                out.problems.append(f'Backend "{server_key}" listed a prompt without a name; it is not exposed.')
                continue
            name = f"{prefix}{original}"
            if name in out.routes:
                winner = out.routes[name]
                out.problems.append(
                    f'Prompt name {name!r} of backend "{server_key}" collides with prompt of backend '
                    f'"{winner.server_key}"; only the latter is exposed.'
                )
                continue
            out.prompts.append({**prompt, "name": name})
            out.routes[name] = ToolRoute(server_key=server_key, original_name=original)
    return out


def template_pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching the URIs an RFC 6570 template expands to (levels 1-4, no prefixes)."""
    pattern = ""
    position = 0
    for match in re.finditer(r"\{([^}]*)\}", template):
        pattern += re.escape(template[position : match.start()])
        operator = match.group(1)[:1]
        if operator in ("+", "#"):
            pattern += r".*"  # reserved expansion may contain '/'
        elif operator in ("?", "&"):
            pattern += r"(?:[?&][^#]*)?"
        elif operator in ("/", ".", ";"):
            pattern += rf"(?:{re.escape(operator)}[^/?#]*)*"
        else:
            pattern += r"[^/?#]+"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern)


@dataclass
class AggregatedResources:
    resources: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)  # uri → server key
    template_routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def route(self, uri: str) -> str | None:
        """The backend owning `uri`: an exact listed resource first, then the first matching template."""
        owner = self.routes.get(uri)
        if owner is not None:
            return owner
        for pattern, server_key in self.template_routes:
            if pattern.fullmatch(uri):
                return server_key
        return None


def aggregate_resources(resources: Mapping[str, Items], templates: Mapping[str, Items]) -> AggregatedResources:
    """Resources keep their URIs (they are identifiers clients may store); collisions are reported."""
    out = AggregatedResources()
    for server_key in sorted(resources):
        for resource in resources[server_key]:
            uri = resource.get("uri")
            if not isinstance(uri, str):
                out.problems.append(f'Backend "{server_key}" listed a resource without a uri; it is not exposed.')
                continue
            if uri in out.routes:
                out.problems.append(
                    f'Resource {uri!r} of backend "{server_key}" collides with backend "{out.routes[uri]}"; '
                    "only the latter is exposed."
                )
                continue
            out.routes[uri] = server_key
            out.resources.append(dict(resource))
    for server_key in sorted(templates):
        for template in templates[server_key]:
            uri_template = template.get("uriTemplate")
            if not isinstance(uri_template, str):
                out.problems.append(f'Backend "{server_key}" listed a template without uriTemplate; not exposed.')
                continue
            out.templates.append(dict(template))
            out.template_routes.append((template_pattern(uri_template), server_key))
    return out
