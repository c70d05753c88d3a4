"""config/clients.py: parsing clients.json and resolving a principal to its profile."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_supervisor.config.clients import EVERYTHING, NOTHING, ClientsConfig, parse_clients
from mcp_supervisor.errors import ConfigError

DOCUMENT: dict[str, Any] = {
    "clients": {
        "ci-bot": {"match": {"keys": ["k1"]}, "servers": ["time"], "tools": {"deny": ["time--convert_time"]}},
        "team-a": {"match": {"claims": {"groups": "team-a"}}, "tools": {"allow": ["docs--*", "time--*"]}},
        "desktop": {"match": {"stdio": True}, "servers": ["docs"]},
        "*": {"servers": []},
    }
}


def test_without_the_file_everyone_sees_everything() -> None:
    assert ClientsConfig().resolve("k1") is EVERYTHING
    assert ClientsConfig().resolve(stdio=True) is EVERYTHING


def test_principals_resolve_to_their_entry_else_the_fallback() -> None:
    clients = parse_clients(DOCUMENT)
    assert clients.resolve(key="k1").name == "ci-bot"
    assert clients.resolve(claims={"groups": ["x", "team-a"]}).name == "team-a"
    assert clients.resolve(key="other").name == "*"
    assert clients.resolve(stdio=True).name == "desktop"
    ci_bot = clients.resolve(key="k1")
    assert ci_bot.sees_server("time") and not ci_bot.sees_server("docs")
    assert ci_bot.tools.permits("time--now") and not ci_bot.tools.permits("time--convert_time")
    assert ci_bot.prompts == ci_bot.tools  # prompts share the tools' patterns unless given their own


def test_the_stdio_entry_matches_only_the_stdio_client() -> None:
    clients = parse_clients({"clients": {"desktop": {"match": {"stdio": True}}}})
    assert clients.resolve(stdio=True).name == "desktop"
    assert clients.resolve() is NOTHING  # an HTTP client without credentials: no "*", so nothing
    assert clients.resolve(key="k1") is NOTHING
    # Nor does any other entry match the stdio client (it has no key, token or claims).
    keyed = parse_clients({"clients": {"bot": {"match": {"keys": [""]}}, "claims": {"match": {"claims": {}}}}})
    assert keyed.resolve(stdio=True) is NOTHING


@pytest.mark.parametrize(
    ("match", "complaint"),
    [
        ({"stdio": False}, "can only be true"),
        ({"stdio": "yes"}, "can only be true"),
        ({"stdio": True, "keys": ["k"]}, "cannot be combined"),
        ({"hosts": ["x"]}, '"match" must be an object'),
        ({}, '"match" must be an object'),
    ],
)
def test_bad_matches_are_refused_with_the_client_named(match: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_clients({"clients": {"desktop": {"match": match}}})
    assert complaint in str(refused.value) and '"desktop"' in str(refused.value)


def test_the_fallback_takes_no_match() -> None:
    with pytest.raises(ConfigError, match="takes no"):
        parse_clients({"clients": {"*": {"match": {"stdio": True}}}})
