"""config/clients.json: which principal may see and call what (per-client access). Pure: parse and match.

    {"clients": {"ci-bot": {"match": {"keys": ["…"]}, "servers": ["time"], "tools": {"deny": ["time--x"]}},
                 "team-a": {"match": {"claims": {"groups": "team-a"}}, "servers": ["*"],
                            "tools": {"allow": ["docs--*"]}},
                 "desktop": {"match": {"stdio": true}, "servers": ["time"]},
                 "*": {"servers": []}}}

A principal gets the first client (in file order) whose `match` it satisfies, else `"*"`, else nothing. Without
the file everyone sees everything (`ClientsConfig.present` is false). `match.stdio` matches the client of the
stdio front end (`mcp-supervisor stdio`), which presents no credential: the process that started the tree on
its own stdin/stdout.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_supervisor.config.settings import TOOL_SEARCH_MODES
from mcp_supervisor.errors import ConfigError

CLIENTS_FILE = "clients.json"
_ENTRY_KEYS = {"match", "servers", "tools", "prompts", "resources", "toolSearch", "alwaysShow"}
_MATCH_KEYS = {"keys", "tokens", "claims", "stdio"}


@dataclass(frozen=True)
class Patterns:
    """Glob patterns over exposed names (or resource URIs); deny wins; no allow list = everything allowed."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()

    def permits(self, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.deny):
            return False
        return self.allow is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow)


@dataclass(frozen=True)
class Profile:
    name: str
    servers: tuple[str, ...] = ("*",)
    tools: Patterns = Patterns()
    prompts: Patterns = Patterns()
    resources: Patterns = Patterns()
    # Tool search (gateway/server/tool_search/): "off", "on", "auto", or None for the TOOL_SEARCH default;
    # glob patterns of tools its tools/list shows beside the meta-tools in search mode.
    tool_search: str | None = None
    always_show: tuple[str, ...] = ()

    def sees_server(self, key: str) -> bool:
        return "*" in self.servers or key in self.servers


EVERYTHING = Profile("*")
NOTHING = Profile("", servers=())


@dataclass(frozen=True)
class ClientEntry:
    profile: Profile
    keys: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    claims: Mapping[str, str] = field(default_factory=dict)
    # Matches the stdio front end's client, and nothing else.
    stdio: bool = False

    def matches(self, key: str, token: str, claims: Mapping[str, Any], stdio: bool = False) -> bool:
        if self.stdio or stdio:
            return self.stdio and stdio
        if not (self.keys or self.tokens or self.claims):
            return False  # an entry without a match (the "*" entry) is only ever the fallback
        if self.keys and key not in self.keys:
            return False
        if self.tokens and token not in self.tokens:
            return False
        return all(_claim_holds(claims.get(name), wanted) for name, wanted in self.claims.items())


def _claim_holds(value: object, wanted: str) -> bool:
    """A list claim matches when it contains the value; `scope` is a space-separated list."""
    if isinstance(value, list):
        return wanted in [str(item) for item in value]
    if isinstance(value, str) and " " in value:
        return wanted in value.split()
    return value is not None and str(value) == wanted


@dataclass(frozen=True)
class ClientsConfig:
    entries: tuple[ClientEntry, ...] = ()
    fallback: Profile | None = None
    present: bool = False

    def resolve(
        self, key: str = "", token: str = "", claims: Mapping[str, Any] | None = None, stdio: bool = False
    ) -> Profile:
        if not self.present:
            return EVERYTHING
        for entry in self.entries:
            if entry.matches(key, token, claims or {}, stdio):
                return entry.profile
        return self.fallback or NOTHING


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of strings.")
    return tuple(value)


def _patterns(value: object, where: str) -> Patterns:
    if value is None:
        return Patterns()
    if not isinstance(value, dict) or set(value) - {"allow", "deny"}:
        raise ConfigError(f'{where} must be an object with "allow" and/or "deny" lists of glob patterns.')
    allow = value.get("allow")
    return Patterns(
        allow=_strings(allow, f"{where}.allow") if allow is not None else None,
        deny=_strings(value.get("deny", []), f"{where}.deny"),
    )


def _tool_search(value: object, where: str) -> str | None:
    if value is None or value in TOOL_SEARCH_MODES:
        return value
    raise ConfigError(f'{where}: "toolSearch" must be one of {", ".join(TOOL_SEARCH_MODES)}.')


def parse_clients(document: dict[str, Any], source: str = CLIENTS_FILE) -> ClientsConfig:
    clients = document.get("clients")
    if not isinstance(clients, dict):
        raise ConfigError(f'{source}: "clients" must be an object of client names to access rules.')
    entries: list[ClientEntry] = []
    fallback: Profile | None = None
    for name, entry in clients.items():
        where = f'{source}: client "{name}"'
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object.")
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}.")
        servers = _strings(entry.get("servers", ["*"]), f'{where}: "servers"')
        # Prompts share the tools' patterns unless they have their own: they are named the same way.
        tools = _patterns(entry.get("tools"), f'{where}: "tools"')
        profile = Profile(
            name,
            servers,
            tools,
            _patterns(entry["prompts"], f'{where}: "prompts"') if "prompts" in entry else tools,
            _patterns(entry.get("resources"), f'{where}: "resources"'),
            _tool_search(entry.get("toolSearch"), where),
            _strings(entry.get("alwaysShow", []), f'{where}: "alwaysShow"'),
        )
        if name == "*":
            if "match" in entry:
                raise ConfigError(f'{where} is the fallback for everyone else and takes no "match".')
            fallback = profile
            continue
        match = entry.get("match")
        if not isinstance(match, dict) or not match or set(match) - _MATCH_KEYS:
            raise ConfigError(
                f'{where}: "match" must be an object with "keys", "tokens" and/or "claims", or "stdio": true.'
            )
        if "stdio" in match:
            if match["stdio"] is not True:
                raise ConfigError(f'{where}: "match.stdio" can only be true (it matches the stdio client).')
            if len(match) > 1:
                raise ConfigError(
                    f'{where}: "match.stdio" matches the stdio client, which has no key, token or claims: '
                    'it cannot be combined with "keys", "tokens" or "claims".'
                )
            entries.append(ClientEntry(profile, stdio=True))
            continue
        claims = match.get("claims", {})
        if not isinstance(claims, dict) or not all(isinstance(v, str) for v in claims.values()):
            raise ConfigError(f'{where}: "match.claims" must map claim names to string values.')
        entries.append(
            ClientEntry(
                profile,
                keys=_strings(match.get("keys", []), f'{where}: "match.keys"'),
                tokens=_strings(match.get("tokens", []), f'{where}: "match.tokens"'),
                claims=dict(claims),
            )
        )
    return ClientsConfig(tuple(entries), fallback, present=True)


def filter_items(items: Sequence[dict[str, Any]], permits: Any, field_name: str = "name") -> list[dict[str, Any]]:
    return [item for item in items if permits(str(item.get(field_name, "")))]
