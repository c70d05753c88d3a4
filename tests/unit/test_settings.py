"""Environment settings: mcp-proxy-server's variable names, defaults and fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_supervisor.config.settings import DEFAULT_SEPARATOR, load_settings, parse_separator
from mcp_supervisor.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_dir=tmp_path)
    assert settings.port == 3663
    assert settings.host == "127.0.0.1"
    assert settings.separator == "--"
    assert DEFAULT_SEPARATOR == "--"
    assert settings.allowed_keys == ()
    assert settings.allowed_tokens == ()
    assert settings.auth_enabled is False
    assert settings.log_level == "INFO"
    assert settings.allowed_hosts == ()
    assert settings.allowed_origins == ()
    assert settings.enable_admin_ui is False
    assert settings.config_dir == tmp_path.resolve()


def test_config_dir_from_env_when_not_given(tmp_path: Path) -> None:
    settings = load_settings(env={"MCP_SUPERVISOR_CONFIG_DIR": str(tmp_path)})
    assert settings.config_dir == tmp_path.resolve()


def test_port_and_host_from_env(tmp_path: Path) -> None:
    settings = load_settings(env={"PORT": " 8080 ", "HOST": " 0.0.0.0 "}, config_dir=tmp_path)
    assert settings.port == 8080
    assert settings.host == "0.0.0.0"


def test_allowed_keys_are_trimmed_and_empty_items_dropped(tmp_path: Path) -> None:
    settings = load_settings(env={"ALLOWED_KEYS": " k1 , ,k2,, k3 ,"}, config_dir=tmp_path)
    assert settings.allowed_keys == ("k1", "k2", "k3")
    assert settings.allowed_tokens == ()
    assert settings.auth_enabled is True


def test_allowed_tokens_alone_enable_auth(tmp_path: Path) -> None:
    settings = load_settings(env={"ALLOWED_TOKENS": "t1,  t2  "}, config_dir=tmp_path)
    assert settings.allowed_tokens == ("t1", "t2")
    assert settings.allowed_keys == ()
    assert settings.auth_enabled is True


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_credential_lists_leave_auth_off(tmp_path: Path, value: str) -> None:
    settings = load_settings(env={"ALLOWED_KEYS": value, "ALLOWED_TOKENS": value}, config_dir=tmp_path)
    assert settings.allowed_keys == ()
    assert settings.allowed_tokens == ()
    assert settings.auth_enabled is False


def test_allowed_hosts_and_origins_lists(tmp_path: Path) -> None:
    settings = load_settings(
        env={"ALLOWED_HOSTS": "a.example, b.example:8080", "ALLOWED_ORIGINS": "https://ui.example ,"},
        config_dir=tmp_path,
    )
    assert settings.allowed_hosts == ("a.example", "b.example:8080")
    assert settings.allowed_origins == ("https://ui.example",)


@pytest.mark.parametrize("name", ["SERVER_TOOLNAME_SEPERATOR", "SERVER_TOOLNAME_SEPARATOR"])
def test_separator_both_spellings(tmp_path: Path, name: str) -> None:
    assert load_settings(env={name: "__"}, config_dir=tmp_path).separator == "__"
    assert load_settings(env={name: " ::x"}, config_dir=tmp_path).separator == "--"


def test_seed_spelling_wins_when_both_are_set(tmp_path: Path) -> None:
    env = {"SERVER_TOOLNAME_SEPERATOR": "__", "SERVER_TOOLNAME_SEPARATOR": "-_-"}
    assert load_settings(env=env, config_dir=tmp_path).separator == "__"


def test_separator_is_trimmed(tmp_path: Path) -> None:
    assert load_settings(env={"SERVER_TOOLNAME_SEPERATOR": "  __  "}, config_dir=tmp_path).separator == "__"


@pytest.mark.parametrize("raw", ["-", "a b", "", "   ", "_", "a.b", "::", "--/"])
def test_invalid_separator_falls_back_to_default(tmp_path: Path, raw: str) -> None:
    assert load_settings(env={"SERVER_TOOLNAME_SEPERATOR": raw}, config_dir=tmp_path).separator == "--"
    assert parse_separator(raw) == "--"


@pytest.mark.parametrize("raw", ["__", "--", "ab", "_x_", "A1-b2"])
def test_valid_separators(raw: str) -> None:
    assert parse_separator(raw) == raw


def test_parse_separator_none_is_default() -> None:
    assert parse_separator(None) == "--"


def test_invalid_separator_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="mcp_supervisor.config"):
        assert parse_separator("a b") == "--"
    assert any("a b" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("value", ["abc", "80.5", "0x50"])
def test_non_integer_port_raises_naming_port(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"PORT": value}, config_dir=tmp_path)
    assert "PORT" in str(info.value)
    assert value in str(info.value)


@pytest.mark.parametrize("value", ["65536", "-1"])
def test_out_of_range_port_raises(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"PORT": value}, config_dir=tmp_path)
    assert "PORT" in str(info.value)


def test_blank_port_is_default(tmp_path: Path) -> None:
    assert load_settings(env={"PORT": "  "}, config_dir=tmp_path).port == 3663


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("warn", "WARNING"),
        ("WARN", "WARNING"),
        ("warning", "WARNING"),
        ("error", "ERROR"),
        ("debug", "DEBUG"),
        (" info ", "INFO"),
        ("verbose", "INFO"),
        ("", "INFO"),
    ],
)
def test_logging_levels(tmp_path: Path, value: str, level: str) -> None:
    assert load_settings(env={"LOGGING": value}, config_dir=tmp_path).log_level == level


@pytest.mark.parametrize(("value", "enabled"), [("true", True), ("1", True), ("YES", True), ("false", False)])
def test_enable_admin_ui(tmp_path: Path, value: str, enabled: bool) -> None:
    assert load_settings(env={"ENABLE_ADMIN_UI": value}, config_dir=tmp_path).enable_admin_ui is enabled


def test_request_timeout_must_be_a_positive_number(tmp_path: Path) -> None:
    assert load_settings(env={"REQUEST_TIMEOUT_SECONDS": "2.5"}, config_dir=tmp_path).request_timeout_s == 2.5
    for bad in ("soon", "0", "-3"):
        with pytest.raises(ConfigError) as info:
            load_settings(env={"REQUEST_TIMEOUT_SECONDS": bad}, config_dir=tmp_path)
        assert "REQUEST_TIMEOUT_SECONDS" in str(info.value)


def test_blank_host_is_default(tmp_path: Path) -> None:
    assert load_settings(env={"HOST": "   "}, config_dir=tmp_path).host == "127.0.0.1"


@pytest.mark.parametrize("variable", ["ALLOWED_KEYS", "ALLOWED_TOKENS"])
@pytest.mark.parametrize("value", [", ,", ",", "  ,  "])
def test_credentials_that_are_only_separators_refuse_to_start(variable: str, value: str) -> None:
    """Issue 14: ALLOWED_KEYS=", ," turned auth off without a word."""
    with pytest.raises(ConfigError, match=f"{variable}=.* holds no credential"):
        load_settings({variable: value})


def test_an_empty_credentials_variable_means_unset() -> None:
    """compose passes `${ALLOWED_KEYS:-}`: empty is the documented way to run without client auth."""
    assert not load_settings({"ALLOWED_KEYS": "", "ALLOWED_TOKENS": " "}).auth_enabled


def test_sample_interval_and_access_log_are_settings(tmp_path: Path) -> None:
    """Read once, with the other settings, rather than from os.environ where they are used."""
    defaults = load_settings(env={}, config_dir=tmp_path)
    assert (defaults.sample_interval_s, defaults.access_log) == (2.0, False)
    env = {"MCP_SUPERVISOR_SAMPLE_SECONDS": "0.2", "MCP_SUPERVISOR_ACCESS_LOG": "1"}
    settings = load_settings(env=env, config_dir=tmp_path)
    assert (settings.sample_interval_s, settings.access_log) == (0.2, True)
    with pytest.raises(ConfigError, match="MCP_SUPERVISOR_SAMPLE_SECONDS"):
        load_settings(env={"MCP_SUPERVISOR_SAMPLE_SECONDS": "soon"}, config_dir=tmp_path)


def test_event_loop_is_a_setting(tmp_path: Path) -> None:
    """uvloop unless asked otherwise; any other value refuses to start, naming the variable and the choices."""
    assert load_settings(env={}, config_dir=tmp_path).event_loop == "uvloop"
    for raw, chosen in (("asyncio", "asyncio"), (" UVLoop ", "uvloop"), ("", "uvloop")):
        settings = load_settings(env={"MCP_SUPERVISOR_EVENT_LOOP": raw}, config_dir=tmp_path)
        assert settings.event_loop == chosen
    with pytest.raises(ConfigError, match=r"MCP_SUPERVISOR_EVENT_LOOP='tokio' must be one of uvloop, asyncio"):
        load_settings(env={"MCP_SUPERVISOR_EVENT_LOOP": "tokio"}, config_dir=tmp_path)
