"""Credentials never shown or logged: URL userinfo and secret-looking query parameters."""

from __future__ import annotations

import logging

import pytest

from mcp_supervisor.redaction import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect to http://user:PWSECRET@10.0.0.1:8080/mcp failed", "connect to http://***@10.0.0.1:8080/mcp failed"),
        ("https://token-only@host/x", "https://***@host/x"),
        ("POST http://h/message?sessionId=abc123&x=1", "POST http://h/message?sessionId=***&x=1"),
        (
            "GET https://h/p?api_key=s3&foo=bar&access_token=t#frag",
            "GET https://h/p?api_key=***&foo=bar&access_token=***#frag",
        ),
        ("https://h/cb?code=one-time&state=s", "https://h/cb?code=***&state=s"),
        ("mailto-like a@b and x=y", "mailto-like a@b and x=y"),
        ("https://example.com/search?q=mcp&page=2", "https://example.com/search?q=mcp&page=2"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_log_filter_redacts_formatted_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", "http://u:p@h/m"), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "HTTP Request: POST http://***@h/m"


def test_a_parameter_ends_where_its_url_does() -> None:
    assert redact("failed (backend at http://h/mcp?token=abc)") == "failed (backend at http://h/mcp?token=***)"
