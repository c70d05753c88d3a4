"""The admin password (issue 22): generated when unset, refused when weak, never the default."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mcp_supervisor.admin.password import PASSWORD_FILE, AdminRefused, admin_password, weakness
from mcp_supervisor.config.settings import load_settings


def test_the_default_setting_is_no_password(tmp_path: Path) -> None:
    assert load_settings(env={}, config_dir=tmp_path).admin_password == ""


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", "password"),
        ("admin", "PASSWORD"),
        ("admin", " password "),
        ("admin", "changeme"),
        ("admin", "admin"),
        ("operator", "Operator"),
        ("admin", "REPLACE-ME-admin-password"),
        ("admin", "short"),
        ("admin", "1234567"),
    ],
)
def test_weak_passwords_are_refused_with_a_sentence(tmp_path: Path, username: str, password: str) -> None:
    assert weakness(username, password) is not None
    settings = load_settings(env={"ADMIN_USERNAME": username, "ADMIN_PASSWORD": password}, config_dir=tmp_path)
    with pytest.raises(AdminRefused, match="set ADMIN_PASSWORD to a password of 8 or more characters"):
        admin_password(settings)
    assert not (tmp_path / PASSWORD_FILE).exists()


@pytest.mark.parametrize("password", ["s3cret-pass", "correct-horse", "12345678x"])
def test_a_good_password_is_used_as_set(tmp_path: Path, password: str) -> None:
    settings = load_settings(env={"ADMIN_PASSWORD": password}, config_dir=tmp_path)
    assert admin_password(settings) == password
    assert list(tmp_path.iterdir()) == []


def test_an_unset_password_is_generated_once_printed_once_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(env={}, config_dir=tmp_path)
    previous = os.umask(0)  # the mode must come from the code, not from a restrictive umask
    try:
        with caplog.at_level(logging.INFO, logger="mcp_supervisor.admin"):
            first = admin_password(settings)
    finally:
        os.umask(previous)
    path = tmp_path / PASSWORD_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == first + "\n"
    assert len(first) >= 24 and weakness("admin", first) is None
    assert caplog.text.count(first) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mcp_supervisor.admin"):
        assert admin_password(load_settings(env={}, config_dir=tmp_path)) == first  # a restart
    assert first not in caplog.text and str(path) in caplog.text


def test_a_truncated_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / PASSWORD_FILE).write_text("short\n")
    with pytest.raises(AdminRefused, match="delete it to regenerate"):
        admin_password(load_settings(env={}, config_dir=tmp_path))


def test_a_read_only_config_gets_a_password_for_this_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={}, config_dir=tmp_path / "missing")
    with caplog.at_level(logging.WARNING, logger="mcp_supervisor.admin"):
        password = admin_password(settings)
    assert len(password) >= 24 and password in caplog.text
    assert not (tmp_path / "missing").exists()
