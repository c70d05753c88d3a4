"""Aggregating the backends' catalogs into one server: names, overrides, routes, collisions.

Given what each backend listed (as it sent it), its name prefix, the tool config, the separator and an arbiter
(ownership.py: who listed what first), it computes the exposed lists and the route of every exposed name or
URI. Every item field is passed through; only `name` (tools, prompts), `title` (prefixed with the backend's
display name, so no backend passes for another) and, with an override, a tool's `description` change (a display
name that is no valid tool name becomes the title: config/tool_names.py). Definitions that break validation.py's
rules, names taken first by another backend and overlapping templates are reported, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.models import ToolConfig
from mcp_supervisor.config.tool_names import display_name_effect
from mcp_supervisor.gateway.server.ownership import Arbiter, templates_overlap
from mcp_supervisor.gateway.server.validation import DEFAULT_LIMITS, Limits, Refusal, tool_problem

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
    arbiter: Arbiter | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> AggregatedTools:
    """Each backend's tools, checked (validation.py); a name listed by several goes to its first lister
    (ownership.py). Every withheld tool is reported."""
    arbiter = arbiter or Arbiter.fresh(catalogs, separator)
    out = AggregatedTools()
    candidates: list[tuple[str, str, dict[str, Any], str]] = []
    for server_key in sorted(catalogs):
        prefix = _prefix(prefixes, server_key, separator)
        admitted = over = 0
        for tool in catalogs[server_key]:
            exposed = _exposed_tool(server_key, prefix, tool, tool_config, arbiter, out.problems)
            if exposed is None:
                continue
            name = exposed["name"]
            problem = tool_problem(tool, name, limits) or _namespace_problem(arbiter, name, server_key)
            if problem is not None:
                out.problems.append(str(Refusal(server_key, name, problem)))
            elif admitted >= limits.tools_per_backend:
                over += 1
            else:
                admitted += 1
                candidates.append((name, server_key, exposed, str(tool["name"])))
        if over:
            out.problems.append(
                f'Backend "{server_key}" listed {over} tools past the limit of {limits.tools_per_backend} tools '
                "per backend (MAX_TOOLS_PER_BACKEND); they are withheld."
            )
    owners = arbiter.resolve("tool", ((name, key) for name, key, _, _ in candidates))
    for name, server_key, exposed, original in candidates:
        if owners[name] != server_key or name in out.routes:
            out.problems.append(str(Refusal(server_key, name, _taken(owners[name]))))
            continue
        out.tools.append(exposed)
        out.routes[name] = ToolRoute(server_key=server_key, original_name=original)
    return out


def _taken(owner: str) -> str:
    return f'the name is backend "{owner}"\'s, which listed it first'


def _exposed_tool(
    server_key: str,
    prefix: str,
    tool: Mapping[str, Any],
    tool_config: ToolConfig,
    arbiter: Arbiter,
    problems: list[str],
) -> dict[str, Any] | None:
    """The tool as clients would see it (name, override, attributed title), or None when it is not exposed."""
    original = tool.get("name")
    if not isinstance(original, str) or not original:
        problems.append(f'Backend "{server_key}" listed a tool without a name; it is not exposed.')
        return None
    override = tool_config.override_for(qualified_name(server_key, arbiter.separator, original))
    if override is not None and not override.enabled:
        return None
    exposed = dict(tool)
    name = f"{prefix}{original}"
    operator_title = ""
    if override is not None and override.exposed_name:
        if display_name_effect(override.exposed_name) == "rename":
            name = override.exposed_name
        else:
            operator_title = override.exposed_name  # the operator's own words stand as they are
    if override is not None and override.exposed_description:
        exposed["description"] = override.exposed_description
    exposed["name"] = name
    arbiter.attribute(exposed, server_key, original)
    if operator_title:
        exposed["title"] = operator_title
    return exposed


def _namespace_problem(arbiter: Arbiter, name: str, server_key: str) -> str | None:
    owner = arbiter.namespace_owner(name, server_key)
    return None if owner is None else f'the name is in backend "{owner}"\'s namespace ("{owner}{arbiter.separator}")'


@dataclass
class AggregatedPrompts:
    prompts: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, ToolRoute] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def aggregate_prompts(
    catalogs: Mapping[str, Items],
    separator: str,
    prefixes: Mapping[str, str] | None = None,
    arbiter: Arbiter | None = None,
) -> AggregatedPrompts:
    """Prompts are prefixed like tools (`namePrefix`, default `<key><SEP>`), and owned like them."""
    arbiter = arbiter or Arbiter.fresh(catalogs, separator)
    out = AggregatedPrompts()
    candidates: list[tuple[str, str, dict[str, Any], str]] = []
    for server_key in sorted(catalogs):
        prefix = _prefix(prefixes, server_key, separator)
        for prompt in catalogs[server_key]:
            original = prompt.get("name")
            if not isinstance(original, str) or not original:
                out.problems.append(f'Backend "{server_key}" listed a prompt without a name; it is not exposed.')
                continue
            name = f"{prefix}{original}"
            problem = _namespace_problem(arbiter, name, server_key)
            if problem is not None:
                out.problems.append(str(Refusal(server_key, name, problem, "prompt")))
                continue
            exposed = {**prompt, "name": name}
            arbiter.attribute(exposed, server_key, original)
            candidates.append((name, server_key, exposed, original))
    owners = arbiter.resolve("prompt", ((name, key) for name, key, _, _ in candidates))
    for name, server_key, exposed, original in candidates:
        if owners[name] != server_key or name in out.routes:
            out.problems.append(str(Refusal(server_key, name, _taken(owners[name]), "prompt")))
            continue
        out.prompts.append(exposed)
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
    # The n-th exposed template's pattern and backend (access.py pairs them with `templates`).
    template_routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Every owned template, down backends' too, first seen first: the order URIs are routed in.
    routing_order: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def route(self, uri: str) -> str | None:
        """The backend owning `uri`: an exact listed resource first, then the first matching template."""
        owner = self.routes.get(uri)
        if owner is not None:
            return owner
        for pattern, server_key in self.routing_order:
            if pattern.fullmatch(uri):
                return server_key
        return None


def aggregate_resources(
    resources: Mapping[str, Items], templates: Mapping[str, Items], arbiter: Arbiter | None = None
) -> AggregatedResources:
    """Resources keep their URIs (identifiers clients may store). A URI or template belongs to the backend that
    listed it first (ownership.py), also while that backend is down; templates route in that order too, after
    every listed URI, so a template never captures a URI another backend lists. Overlaps are reported."""
    arbiter = arbiter or Arbiter.fresh({*resources, *templates})
    out = AggregatedResources()
    listed = _listed(resources, "uri", "resource", out.problems)
    out.routes = arbiter.resolve("resource", ((uri, key) for uri, key, _ in listed))
    for uri, server_key, resource in listed:
        if out.routes[uri] != server_key:
            out.problems.append(str(Refusal(server_key, uri, _uri_taken(out.routes[uri]), "resource")))
            continue
        out.resources.append(dict(resource))
    listed_templates = _listed(templates, "uriTemplate", "template", out.problems)
    owners = arbiter.resolve("template", ((text, key) for text, key, _ in listed_templates))
    ordered = sorted(owners.items(), key=lambda item: (arbiter.claims.rank("template", *item), item))
    compiled = [(text, template_pattern(text), owner) for text, owner in ordered]
    out.routing_order = [(pattern, owner) for _, pattern, owner in compiled]
    patterns = {text: pattern for text, pattern, _ in compiled}
    for text, server_key, template in listed_templates:
        if owners[text] != server_key:
            out.problems.append(str(Refusal(server_key, text, _uri_taken(owners[text]), "template")))
            continue
        out.templates.append(dict(template))
        out.template_routes.append((patterns[text], server_key))
    out.problems.extend(_overlaps(compiled))
    return out


def _listed(
    catalogs: Mapping[str, Items], field_name: str, kind: str, problems: list[str]
) -> list[tuple[str, str, Any]]:
    found = []
    for server_key in sorted(catalogs):
        for item in catalogs[server_key]:
            value = item.get(field_name)
            if isinstance(value, str):
                found.append((value, server_key, item))
            else:
                problems.append(f'Backend "{server_key}" listed a {kind} without {field_name}; it is not exposed.')
    return found


def _uri_taken(owner: str) -> str:
    return f'backend "{owner}" listed it first'


MAX_OVERLAP_CHECKS = 250_000  # template pairs compared per rebuild (500 templates); past it, none are reported


def _overlaps(compiled: list[tuple[str, re.Pattern[str], str]]) -> list[str]:
    """Templates of different backends that some URI matches both of, earlier (the winner) first."""
    if len(compiled) ** 2 > MAX_OVERLAP_CHECKS:
        return []
    found = []
    for index, (first, first_pattern, first_owner) in enumerate(compiled):
        for second, second_pattern, second_owner in compiled[index + 1 :]:
            if first_owner != second_owner and templates_overlap(first, first_pattern, second, second_pattern):
                found.append(
                    f'Resource templates overlap: {second!r} of backend "{second_owner}" and {first!r} of backend '
                    f'"{first_owner}"; a URI both match is served by "{first_owner}", whose template was seen first.'
                )
    return found
