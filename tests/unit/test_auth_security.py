"""Client authentication (seed-compatible) and the DNS-rebinding Host/Origin guard."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.config.settings import Settings
from mcp_supervisor.gateway.frontends.auth import ANONYMOUS, authenticate
from mcp_supervisor.gateway.frontends.dns_rebinding import RequestGuard

BASE = Settings(config_dir=Path("."))
AUTH = msgspec.structs.replace(BASE, allowed_keys=("key-a", "key-b"), allowed_tokens=("tok-a", "tok-b"))


# ---------------------------------------------------------------- authenticate()


def test_auth_disabled_is_anonymous() -> None:
    assert ANONYMOUS == "anonymous"
    assert authenticate(BASE, {}, {}) == "anonymous"
    assert authenticate(BASE, {"authorization": "Bearer whatever"}, {"key": "x"}) == "anonymous"


@pytest.mark.parametrize(
    ("authorization", "principal"),
    [
        ("Bearer tok-a", "token#0"),
        ("Bearer tok-b", "token#1"),
        ("bearer tok-b", "token#1"),
        ("BEARER  tok-a  ", "token#0"),
    ],
)
def test_valid_bearer_token(authorization: str, principal: str) -> None:
    assert authenticate(AUTH, {"authorization": authorization}, {}) == principal


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", "Basic tok-a", "tok-a", "Bearer ", "Bearer", "Bearer key-a", ""]
)
def test_invalid_bearer_alone_is_refused(authorization: str) -> None:
    assert authenticate(AUTH, {"authorization": authorization}, {}) is None


def test_invalid_bearer_falls_through_to_valid_api_key() -> None:
    headers = {"authorization": "Bearer wrong", "x-api-key": "key-b"}
    assert authenticate(AUTH, headers, {}) == "key#1"


def test_invalid_bearer_falls_through_to_valid_query_key() -> None:
    assert authenticate(AUTH, {"authorization": "Bearer wrong"}, {"key": "key-a"}) == "key#0"


def test_valid_bearer_is_tried_first() -> None:
    headers = {"authorization": "Bearer tok-b", "x-api-key": "key-a"}
    assert authenticate(AUTH, headers, {}) == "token#1"


def test_x_api_key_header() -> None:
    assert authenticate(AUTH, {"x-api-key": "key-a"}, {}) == "key#0"


def test_query_key_accepted() -> None:
    assert authenticate(AUTH, {}, {"key": "key-b"}) == "key#1"


def test_header_api_key_wins_over_query() -> None:
    assert authenticate(AUTH, {"x-api-key": "key-a"}, {"key": "key-b"}) == "key#0"
    # The header wins even when it is the wrong one: the query is not consulted.
    assert authenticate(AUTH, {"x-api-key": "wrong"}, {"key": "key-b"}) is None


def test_wrong_everything_is_refused() -> None:
    headers = {"authorization": "Bearer nope", "x-api-key": "nope"}
    assert authenticate(AUTH, headers, {"key": "nope"}) is None
    assert authenticate(AUTH, {}, {}) is None


def test_header_names_are_looked_up_lowercase() -> None:
    # Starlette's Headers are case-insensitive and hand out lowercase names; plain dicts are not.
    assert authenticate(AUTH, {"Authorization": "Bearer tok-a"}, {}) is None
    assert authenticate(AUTH, {"X-Api-Key": "key-a"}, {}) is None
    assert authenticate(AUTH, {"authorization": "Bearer tok-a"}, {}) == "token#0"


def test_token_is_not_accepted_as_key_and_key_not_as_token() -> None:
    assert authenticate(AUTH, {"x-api-key": "tok-a"}, {}) is None
    assert authenticate(AUTH, {}, {"key": "tok-a"}) is None
    assert authenticate(AUTH, {"authorization": "Bearer key-a"}, {}) is None


def test_keys_only_ignores_bearer() -> None:
    keys_only = msgspec.structs.replace(BASE, allowed_keys=("k",))
    assert authenticate(keys_only, {"authorization": "Bearer k"}, {}) is None
    assert authenticate(keys_only, {"x-api-key": "k"}, {}) == "key#0"


def test_tokens_only_ignores_api_keys() -> None:
    tokens_only = msgspec.structs.replace(BASE, allowed_tokens=("t",))
    assert authenticate(tokens_only, {"x-api-key": "t"}, {"key": "t"}) is None
    assert authenticate(tokens_only, {"authorization": "Bearer t"}, {}) == "token#0"


def test_prefix_or_extension_of_a_secret_is_refused() -> None:
    assert authenticate(AUTH, {"x-api-key": "key-"}, {}) is None
    assert authenticate(AUTH, {"x-api-key": "key-aa"}, {}) is None
    assert authenticate(AUTH, {"authorization": "Bearer tok-a2"}, {}) is None


# ---------------------------------------------------------------- RequestGuard


LOOPBACK = RequestGuard(BASE)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:3663", "localhost:1", "[::1]:3663", "localhost", "LOCALHOST:3663", "127.0.0.1", "[::1]"]
)
def test_loopback_bind_accepts_loopback_hosts(host: str) -> None:
    assert LOOPBACK.check({"host": host}) is None


@pytest.mark.parametrize("host", ["evil.example:3663", "evil.example", "", "127.0.0.2:3663", "localhost.evil:80"])
def test_loopback_bind_refuses_other_hosts_with_421(host: str) -> None:
    result = LOOPBACK.check({"host": host})
    assert result is not None
    status, reason = result
    assert status == 421
    assert repr(host) in reason


def test_loopback_bind_missing_host_header_is_421() -> None:
    result = LOOPBACK.check({})
    assert result is not None
    assert result[0] == 421


@pytest.mark.parametrize(
    "origin", ["http://localhost:5173", "http://127.0.0.1:3663", "https://localhost", "http://[::1]:8080"]
)
def test_loopback_origin_passes(origin: str) -> None:
    assert LOOPBACK.check({"host": "127.0.0.1:3663", "origin": origin}) is None


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "https://evil.example:3663", "null", "http://localhost.evil.example"]
)
def test_foreign_origin_is_403(origin: str) -> None:
    result = LOOPBACK.check({"host": "127.0.0.1:3663", "origin": origin})
    assert result is not None
    status, reason = result
    assert status == 403
    assert repr(origin) in reason


def test_no_origin_passes() -> None:
    assert LOOPBACK.check({"host": "localhost:3663"}) is None


def test_host_is_checked_before_origin() -> None:
    result = LOOPBACK.check({"host": "evil.example", "origin": "http://localhost:5173"})
    assert result is not None
    assert result[0] == 421


def test_allowed_origins_extend_a_loopback_bind() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, allowed_origins=("https://UI.example/",)))
    assert guard.check({"host": "localhost:3663", "origin": "https://ui.example"}) is None
    result = guard.check({"host": "localhost:3663", "origin": "https://other.example"})
    assert result is not None
    assert result[0] == 403


def test_allowed_hosts_extend_a_loopback_bind() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, allowed_hosts=("proxy.internal",)))
    assert guard.check({"host": "proxy.internal:3663"}) is None
    assert guard.check({"host": "localhost:3663"}) is None
    result = guard.check({"host": "evil.example"})
    assert result is not None
    assert result[0] == 421


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.5"])
@pytest.mark.parametrize(
    "host", ["10.0.0.5:3663", "127.0.0.1:3663", "[::1]:3663", "[fe80::1]", "localhost:3663", "LOCALHOST", "10.0.0.5"]
)
def test_other_binds_without_allowed_hosts_serve_ip_literals_and_localhost(bind: str, host: str) -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, host=bind))
    assert guard.check({"host": host}) is None


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.5"])
@pytest.mark.parametrize(
    "host", ["evil.example:3663", "", "anything", "localhost.evil.example", "127.0.0.1.nip.io:3663", "[evil]:80"]
)
def test_other_binds_without_allowed_hosts_refuse_names(bind: str, host: str) -> None:
    """Issue 22: on a wildcard bind without ALLOWED_HOSTS every Host was served: DNS rebinding."""
    result = RequestGuard(msgspec.structs.replace(BASE, host=bind)).check({"host": host})
    assert result is not None
    assert result[0] == 421
    assert "ALLOWED_HOSTS" in result[1]


def test_a_bind_to_a_name_also_serves_that_name() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, host="gateway.lan"))
    assert guard.check({"host": "gateway.lan:3663"}) is None
    assert guard.check({"host": "10.0.0.5:3663"}) is None
    result = guard.check({"host": "evil.example:3663"})
    assert result is not None and result[0] == 421


def test_all_interfaces_with_allowed_hosts_restricts_host() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, host="0.0.0.0", allowed_hosts=("mcp.example", "10.0.0.5")))
    assert guard.check({"host": "mcp.example:3663"}) is None
    assert guard.check({"host": "MCP.example"}) is None
    assert guard.check({"host": "10.0.0.5:3663"}) is None
    result = guard.check({"host": "evil.example:3663"})
    assert result is not None
    assert result[0] == 421
    # A non-loopback bind does not implicitly serve loopback names once ALLOWED_HOSTS is set.
    result = guard.check({"host": "localhost:3663"})
    assert result is not None
    assert result[0] == 421


def test_same_origin_passes_on_non_loopback_bind() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, host="0.0.0.0"))
    assert guard.check({"host": "10.0.0.5:3663", "origin": "http://10.0.0.5:3663"}) is None
    assert guard.check({"host": "localhost:3663", "origin": "https://localhost:3663/"}) is None
    named = RequestGuard(msgspec.structs.replace(BASE, host="0.0.0.0", allowed_hosts=("mcp.example",)))
    assert named.check({"host": "mcp.example:3663", "origin": "http://mcp.example:3663"}) is None


def test_cross_origin_refused_on_non_loopback_bind() -> None:
    guard = RequestGuard(msgspec.structs.replace(BASE, host="0.0.0.0"))
    result = guard.check({"host": "10.0.0.5:3663", "origin": "http://evil.example:3663"})
    assert result is not None
    assert result[0] == 403
    # Loopback origins are only implicitly trusted on a loopback bind.
    result = guard.check({"host": "10.0.0.5:3663", "origin": "http://localhost:5173"})
    assert result is not None
    assert result[0] == 403
