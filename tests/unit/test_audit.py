"""The audit trail's pure parts: redaction of secret-looking keys, at any depth, and the error code read."""

from __future__ import annotations

from mcp_supervisor.gateway.server.audit import REDACTED, error_code, redact


def test_redact_is_recursive_and_keeps_the_rest() -> None:
    value = {
        "query": "q",
        "Authorization": "Bearer x",
        "db": {"password": "p", "host": "h", "items": [{"api_key": "k", "n": 1}, "plain"]},
        "sessionCookie": "c",
        "client_secret": "s",
        "credentials": {"user": "u"},
    }
    assert redact(value) == {
        "query": "q",
        "Authorization": REDACTED,
        "db": {"password": REDACTED, "host": "h", "items": [{"api_key": REDACTED, "n": 1}, "plain"]},
        "sessionCookie": REDACTED,
        "client_secret": REDACTED,
        "credentials": REDACTED,
    }
    assert value["db"]["password"] == "p"  # a copy: the forwarded request is untouched


def test_error_code() -> None:
    assert error_code(b'{"code": -32602, "message": "x"}') == -32602
    assert error_code(b"not json") == -32603
