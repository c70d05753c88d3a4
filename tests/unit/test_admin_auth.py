"""Admin sessions: credentials, signed cookies, CSRF tokens, login throttling and the session secret."""

from __future__ import annotations

import base64
import os
import string
from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.admin.auth import DEVICE_SECONDS, SECRET_FILE, AdminAuth, AdminSession, load_secret
from mcp_supervisor.admin.throttle import LoginThrottle, login_key
from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.errors import ConfigError

SECRET = b"0123456789abcdef0123456789abcdef"
HOUR = 3600.0


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_auth(
    clock: FakeClock | None = None, username: str = "admin", password: str = "s3cret", secret: bytes = SECRET
) -> AdminAuth:
    return AdminAuth(username, password, secret, HOUR, clock=clock or FakeClock())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- credentials


def test_right_credentials_are_accepted() -> None:
    assert make_auth().check_credentials("admin", "s3cret") is True


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", "wrong"),
        ("root", "s3cret"),
        ("root", "wrong"),
        ("Admin", "s3cret"),
        ("admin", "S3CRET"),
        ("admin", "s3cre"),
        ("admin", "s3cret "),
        ("", ""),
        ("admin", ""),
    ],
)
def test_wrong_credentials_are_refused(username: str, password: str) -> None:
    assert make_auth().check_credentials(username, password) is False


def test_known_username_is_the_admins_only() -> None:
    auth = make_auth()
    assert auth.known_username("admin") is True
    assert auth.known_username("Admin") is False
    assert auth.known_username("") is False


# ---------------------------------------------------------------- cookies


def test_issue_verify_round_trip() -> None:
    clock = FakeClock(1000.0)
    auth = make_auth(clock)
    cookie, session = auth.issue()
    assert session.username == "admin"
    assert session.expires_at == 1000.0 + HOUR
    assert len(session.sid) >= 16
    assert cookie.count(".") == 1
    assert auth.verify(cookie) == session


def test_each_session_gets_its_own_id_and_cookie() -> None:
    auth = make_auth()
    first_cookie, first = auth.issue()
    second_cookie, second = auth.issue()
    assert first.sid != second.sid
    assert first_cookie != second_cookie
    assert auth.verify(first_cookie) == first
    assert auth.verify(second_cookie) == second


def test_cookie_survives_a_restart_with_the_same_secret_and_credentials() -> None:
    clock = FakeClock()
    cookie, session = make_auth(clock).issue()
    assert make_auth(clock).verify(cookie) == session


@pytest.mark.parametrize(
    "cookie", [None, "", ".", "abc", "a.b.c", "a.b", "!!!.###", "é.é", "eyJ9.", ".c2ln", "a" * 5000]
)
def test_malformed_cookies_are_no_session(cookie: str | None) -> None:
    assert make_auth().verify(cookie) is None


def test_tampered_payload_is_refused() -> None:
    clock = FakeClock()
    auth = make_auth(clock)
    cookie, session = auth.issue()
    encoded, signature = cookie.split(".")
    payload = msgspec.json.decode(unb64(encoded))
    assert payload == {"username": "admin", "sid": session.sid, "expires_at": session.expires_at}
    for changed in (
        {**payload, "expires_at": payload["expires_at"] + 10 * HOUR},
        {**payload, "username": "root"},
        {**payload, "sid": "another-session-id"},
    ):
        forged = f"{b64(msgspec.json.encode(changed))}.{signature}"
        assert auth.verify(forged) is None
    # The payload of one session with the signature of another.
    other_cookie, _ = auth.issue()
    assert auth.verify(f"{encoded}.{other_cookie.split('.')[1]}") is None


def test_tampered_signature_is_refused() -> None:
    auth = make_auth()
    cookie, _ = auth.issue()
    encoded, signature = cookie.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert auth.verify(f"{encoded}.{flipped}") is None
    assert auth.verify(f"{encoded}.{signature[:-1]}") is None
    assert auth.verify(f"{encoded}.") is None
    assert auth.verify(f"{encoded}.{signature}") is not None


def test_expired_session_is_refused() -> None:
    clock = FakeClock(5000.0)
    auth = make_auth(clock)
    cookie, session = auth.issue()
    clock.now = session.expires_at - 0.001
    assert auth.verify(cookie) == session
    clock.now = session.expires_at
    assert auth.verify(cookie) is None
    clock.now = session.expires_at + 1
    assert auth.verify(cookie) is None


def test_revoked_session_is_refused_and_others_stay_valid() -> None:
    auth = make_auth()
    cookie, session = auth.issue()
    other_cookie, other = auth.issue()
    auth.revoke(session)
    assert auth.verify(cookie) is None
    assert auth.verify(other_cookie) == other


def test_revocation_lasts_until_the_session_would_expire() -> None:
    clock = FakeClock(0.0)
    auth = make_auth(clock)
    cookie, session = auth.issue()
    auth.revoke(session)
    clock.now = HOUR / 2
    _, later = auth.issue()
    auth.revoke(later)  # prunes expired revocations; this one is not expired yet
    assert auth.verify(cookie) is None


@pytest.mark.parametrize(
    ("username", "password", "secret"),
    [
        ("admin", "changed", SECRET),
        ("other", "s3cret", SECRET),
        ("admin", "s3cret", b"another-secret-another-secret-xx"),
    ],
)
def test_cookie_signed_under_other_credentials_or_secret_is_refused(
    username: str, password: str, secret: bytes
) -> None:
    clock = FakeClock()
    cookie, _ = make_auth(clock).issue()
    assert make_auth(clock, username=username, password=password, secret=secret).verify(cookie) is None


# ---------------------------------------------------------------- CSRF


def test_csrf_token_is_valid_for_its_session_only() -> None:
    auth = make_auth()
    _, session = auth.issue()
    _, other = auth.issue()
    token = auth.csrf_token(session)
    assert token == auth.csrf_token(session)
    assert auth.check_csrf(session, token) is True
    assert auth.check_csrf(other, token) is False
    assert auth.check_csrf(other, auth.csrf_token(other)) is True
    assert token != auth.csrf_token(other)


@pytest.mark.parametrize("token", [None, "", "x", "not-the-token"])
def test_wrong_or_missing_csrf_token_is_refused(token: str | None) -> None:
    auth = make_auth()
    _, session = auth.issue()
    assert auth.check_csrf(session, token) is False


def test_csrf_token_prefix_or_other_key_is_refused() -> None:
    clock = FakeClock()
    auth = make_auth(clock)
    _, session = auth.issue()
    token = auth.csrf_token(session)
    assert auth.check_csrf(session, token[:-1]) is False
    assert auth.check_csrf(session, token + "x") is False
    changed_password = make_auth(clock, password="changed")
    assert changed_password.check_csrf(session, token) is False
    # The same key after a restart gives the same token.
    assert make_auth(clock).check_csrf(session, token) is True


def test_csrf_token_is_not_the_cookie_signature() -> None:
    auth = make_auth()
    cookie, session = auth.issue()
    assert auth.csrf_token(session) != cookie.split(".")[1]
    assert auth.verify(f"{cookie.split('.')[0]}.{auth.csrf_token(session)}") is None


def test_device_cookie_round_trip_and_expiry() -> None:
    clock = FakeClock(0.0)
    auth = make_auth(clock)
    cookie = auth.issue_device()
    device = auth.verify_device(cookie)
    assert device is not None and len(device) >= 16
    assert auth.verify_device(auth.issue_device()) != device  # one id per browser
    clock.now = DEVICE_SECONDS - 1
    assert auth.verify_device(cookie) == device
    clock.now = DEVICE_SECONDS
    assert auth.verify_device(cookie) is None


def test_device_cookie_and_session_cookie_are_not_interchangeable() -> None:
    auth = make_auth()
    session_cookie, _ = auth.issue()
    assert auth.verify_device(session_cookie) is None
    assert auth.verify(auth.issue_device()) is None


@pytest.mark.parametrize("cookie", [None, "", "abc", "a.b", "!!!.###"])
def test_malformed_device_cookies_are_no_device(cookie: str | None) -> None:
    assert make_auth().verify_device(cookie) is None


def test_device_cookie_of_another_password_is_refused() -> None:
    clock = FakeClock()
    cookie = make_auth(clock).issue_device()
    assert make_auth(clock, password="changed").verify_device(cookie) is None


def test_admin_session_is_a_value() -> None:
    assert AdminSession("a", "sid", 1.0) == AdminSession("a", "sid", 1.0)


# ---------------------------------------------------------------- LoginThrottle


def test_four_failures_are_free_the_fifth_locks_for_30_seconds() -> None:
    clock = FakeClock(100.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("10.0.0.1")
        assert throttle.retry_after("10.0.0.1") == 0.0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 30.0
    clock.now += 10
    assert throttle.retry_after("10.0.0.1") == 20.0
    clock.now += 20
    assert throttle.retry_after("10.0.0.1") == 0.0


def test_lockout_doubles_up_to_the_maximum() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("c")
    expected = [30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]
    seen = []
    for _ in expected:
        throttle.failed("c")
        seen.append(throttle.retry_after("c"))
    assert seen == expected


def test_lockout_doubles_when_failing_again_after_waiting() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        throttle.failed("c")
    clock.now = 30.0
    assert throttle.retry_after("c") == 0.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 60.0
    clock.now = 90.0
    assert throttle.retry_after("c") == 0.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 120.0


def test_custom_limits() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(free_failures=2, first_lockout_s=5.0, max_lockout_s=12.0, clock=clock)
    throttle.failed("c")
    assert throttle.retry_after("c") == 0.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 5.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 10.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 12.0


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("c")
    clock.now = 3600.5  # the four failures are now older than the one-hour window
    throttle.failed("c")
    assert throttle.retry_after("c") == 0.0
    for _ in range(3):
        throttle.failed("c")
    assert throttle.retry_after("c") == 0.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 30.0


def test_failures_inside_the_window_count() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("c")
    clock.now = 899.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 30.0


def test_lockout_ends_when_the_window_expires() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(12):
        throttle.failed("c")
    assert throttle.retry_after("c") == 900.0
    clock.now = 899.0
    assert throttle.retry_after("c") == 1.0
    clock.now = 900.0
    assert throttle.retry_after("c") == 0.0


def test_success_clears_the_failures() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("c")
    throttle.succeeded("c")
    for _ in range(4):
        throttle.failed("c")
    assert throttle.retry_after("c") == 0.0
    throttle.failed("c")
    assert throttle.retry_after("c") == 30.0
    throttle.succeeded("c")
    assert throttle.retry_after("c") == 0.0


def test_clients_are_throttled_separately() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        throttle.failed("attacker")
    assert throttle.retry_after("attacker") == 30.0
    assert throttle.retry_after("admin-laptop") == 0.0
    throttle.failed("admin-laptop")
    assert throttle.retry_after("admin-laptop") == 0.0
    throttle.succeeded("admin-laptop")
    assert throttle.retry_after("attacker") == 30.0


def test_login_keys_separate_devices_the_admins_username_and_other_names() -> None:
    """Issue 22: the key was the address alone, and every backend is 127.0.0.1 like a local operator."""
    keys = {
        login_key("127.0.0.1", True, None),
        login_key("127.0.0.1", False, None),
        login_key("127.0.0.1", True, "device-1"),
        login_key("127.0.0.1", True, "device-2"),
        login_key("10.0.0.1", True, None),
    }
    assert len(keys) == 5
    # Every wrong username of one address shares one bucket; a device's key ignores the address.
    assert login_key("127.0.0.1", False, None) == login_key("127.0.0.1", False, None)
    assert login_key("127.0.0.1", True, "d") == login_key("10.0.0.1", False, "d")


def test_max_clients_forgets_the_oldest_client() -> None:
    clock = FakeClock(0.0)
    throttle = LoginThrottle(free_failures=1, max_clients=2, clock=clock)
    throttle.failed("a")
    throttle.failed("b")
    assert throttle.retry_after("a") == 30.0
    assert throttle.retry_after("b") == 30.0
    throttle.failed("b")  # a known client: nobody is forgotten
    assert throttle.retry_after("a") == 30.0
    throttle.failed("c")  # a third client: the oldest ("a") is forgotten
    assert throttle.retry_after("a") == 0.0
    assert throttle.retry_after("b") == 60.0
    assert throttle.retry_after("c") == 30.0


# ---------------------------------------------------------------- load_secret


def test_session_secret_setting_wins(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("f" * 64 + "\n")
    settings = load_settings(env={"SESSION_SECRET": "  from-the-environment  "}, config_dir=tmp_path)
    assert load_secret(settings) == b"from-the-environment"
    assert (tmp_path / SECRET_FILE).read_text() == "f" * 64 + "\n"


def test_session_secret_setting_creates_no_file(tmp_path: Path) -> None:
    settings = load_settings(env={"SESSION_SECRET": "env-secret"}, config_dir=tmp_path)
    assert load_secret(settings) == b"env-secret"
    assert list(tmp_path.iterdir()) == []


def test_secret_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_dir=tmp_path)
    previous = os.umask(0)  # the mode must come from the code, not from a restrictive umask
    try:
        secret = load_secret(settings)
    finally:
        os.umask(previous)
    path = tmp_path / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.endswith("\n")
    assert len(text.strip()) == 64
    assert set(text.strip()) <= set(string.hexdigits.lower())
    assert secret == text.strip().encode()
    assert load_secret(settings) == secret
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]


def test_generated_secret_differs_per_config_dir(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = load_secret(load_settings(env={}, config_dir=tmp_path / "one"))
    two = load_secret(load_settings(env={}, config_dir=tmp_path / "two"))
    assert one != two


def test_existing_secret_file_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("  " + "k" * 32 + "  \n")
    assert load_secret(load_settings(env={}, config_dir=tmp_path)) == b"k" * 32


@pytest.mark.parametrize("content", ["", "\n", "short\n", "x" * 31 + "\n", "   " + "y" * 31 + "   \n"])
def test_too_short_secret_file_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / SECRET_FILE).write_text(content)
    with pytest.raises(ConfigError, match="shorter than 32"):
        load_secret(load_settings(env={}, config_dir=tmp_path))
    assert (tmp_path / SECRET_FILE).read_text() == content


def test_uncreatable_secret_file_falls_back_to_a_process_secret(tmp_path: Path) -> None:
    # A read-only config directory must not take the admin UI down: a random secret for this process only.
    settings = load_settings(env={}, config_dir=tmp_path / "missing")
    first = load_secret(settings)
    second = load_secret(settings)
    assert len(first) == 32
    assert len(second) == 32
    assert first != second
    assert not (tmp_path / "missing").exists()


def test_generated_secret_keeps_sessions_across_restarts(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_dir=tmp_path)
    clock = FakeClock()
    cookie, session = AdminAuth("admin", "pw", load_secret(settings), HOUR, clock=clock).issue()
    restarted = AdminAuth("admin", "pw", load_secret(load_settings(env={}, config_dir=tmp_path)), HOUR, clock=clock)
    assert restarted.verify(cookie) == session


def test_a_revoked_cookie_stays_revoked_after_a_restart(tmp_path: Path) -> None:
    """Issue 14: a cookie revoked by logout was valid again after a gateway restart (the list was in memory)."""
    clock = FakeClock()
    path = tmp_path / "state" / "admin-revocations.json"
    before = AdminAuth("admin", "s3cret", SECRET, HOUR, clock=clock, revocations_path=path)
    cookie, session = before.issue()
    other_cookie, _ = before.issue()
    before.revoke(session)
    assert before.verify(cookie) is None
    assert path.stat().st_mode & 0o777 == 0o600
    after = AdminAuth("admin", "s3cret", SECRET, HOUR, clock=clock, revocations_path=path)  # the restarted gateway
    assert after.verify(cookie) is None
    assert after.verify(other_cookie) is not None
    # Entries past their cookie's expiry are forgotten.
    clock.now += HOUR + 1
    later = AdminAuth("admin", "s3cret", SECRET, HOUR, clock=clock, revocations_path=path)
    assert later._revoked == {}


def test_an_unreadable_revocation_file_does_not_lock_admins_out(tmp_path: Path) -> None:
    path = tmp_path / "admin-revocations.json"
    path.write_text("{not json")
    auth = AdminAuth("admin", "s3cret", SECRET, HOUR, clock=FakeClock(), revocations_path=path)
    cookie, _ = auth.issue()
    assert auth.verify(cookie) is not None
