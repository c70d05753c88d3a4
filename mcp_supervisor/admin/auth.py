"""Admin sessions: credential check, signed session and device cookies, CSRF tokens.

The cookie is stateless (signed), so an admin stays logged in across a gateway restart. Its signing key is
derived from the secret *and* the admin credentials: changing ADMIN_PASSWORD invalidates every session.
Logout revokes the session id until it would have expired anyway, in a file (`revocations_path`), so that a
revoked cookie stays revoked across gateway restarts.

A successful login also sets a long-lived device cookie: it marks a browser that knew the password, so that the
login throttle (admin/throttle.py) never makes it wait for someone else's failures.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from mcp_supervisor.admin.secret_files import read_stored
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError

log = logging.getLogger("mcp_supervisor.admin")

COOKIE_NAME = "mcps_admin"
DEVICE_COOKIE_NAME = "mcps_admin_device"
DEVICE_SECONDS = 90 * 86400.0
SECRET_FILE = ".session_secret"
_DEVICE_DOMAIN = b"device\0"


class AdminSession(msgspec.Struct, frozen=True):
    username: str
    sid: str
    expires_at: float


class AdminDevice(msgspec.Struct, frozen=True):
    device: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


class AdminAuth:
    def __init__(
        self,
        username: str,
        password: str,
        secret: bytes,
        session_seconds: float,
        clock: Callable[[], float] = time.time,
        revocations_path: Path | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._key = hmac.new(secret, b"admin-session\0" + username.encode() + b"\0" + password.encode(), "sha256")
        self._session_seconds = session_seconds
        self._clock = clock
        self._revocations_path = revocations_path
        self._revoked: dict[str, float] = self._load_revocations()

    def check_credentials(self, username: str, password: str) -> bool:
        # Both compared in full, so the time taken says nothing about which one was wrong.
        user_ok = _equal(username, self._username)
        password_ok = _equal(password, self._password)
        return user_ok and password_ok

    def known_username(self, username: str) -> bool:
        return _equal(username, self._username)

    def _sign(self, payload: bytes) -> str:
        mac = self._key.copy()
        mac.update(payload)
        return _b64(mac.digest())

    def issue(self) -> tuple[str, AdminSession]:
        """A new session and its cookie value."""
        session = AdminSession(self._username, secrets.token_urlsafe(16), self._clock() + self._session_seconds)
        payload = msgspec.json.encode(session)
        return f"{_b64(payload)}.{self._sign(payload)}", session

    def _payload(self, cookie: str | None, domain: bytes = b"") -> bytes | None:
        """The payload of a cookie signed under `domain` by this key, else None."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        return payload if _equal(signature, self._sign(domain + payload)) else None

    def verify(self, cookie: str | None) -> AdminSession | None:
        payload = self._payload(cookie)
        if payload is None:
            return None
        try:
            session = msgspec.json.decode(payload, type=AdminSession)
        except msgspec.DecodeError:
            return None
        if session.expires_at <= self._clock() or session.sid in self._revoked:
            return None
        return session

    def issue_device(self) -> str:
        """A device cookie: this browser knew the password (signed apart from sessions, never one of them)."""
        payload = msgspec.json.encode(AdminDevice(secrets.token_urlsafe(16), self._clock() + DEVICE_SECONDS))
        return f"{_b64(payload)}.{self._sign(_DEVICE_DOMAIN + payload)}"

    def verify_device(self, cookie: str | None) -> str | None:
        """The device id of a valid, unexpired device cookie, else None."""
        payload = self._payload(cookie, _DEVICE_DOMAIN)
        if payload is None:
            return None
        try:
            device = msgspec.json.decode(payload, type=AdminDevice)
        except msgspec.DecodeError:
            return None
        return device.device if device.expires_at > self._clock() else None

    def csrf_token(self, session: AdminSession) -> str:
        return self._sign(b"csrf\0" + session.sid.encode())

    def check_csrf(self, session: AdminSession, token: str | None) -> bool:
        return token is not None and _equal(token, self.csrf_token(session))

    def revoke(self, session: AdminSession) -> None:
        now = self._clock()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        self._revoked[session.sid] = session.expires_at
        self._save_revocations()

    def _load_revocations(self) -> dict[str, float]:
        path = self._revocations_path
        if path is None or not path.exists():
            return {}
        try:
            stored = msgspec.json.decode(path.read_bytes(), type=dict[str, float])
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Failing closed would lock every admin out; the cookies it held expire within the session time.
            log.warning("%s cannot be read (%s); starting with no revoked admin sessions.", path, exc)
            return {}
        now = self._clock()
        return {sid: until for sid, until in stored.items() if until > now}

    def _save_revocations(self) -> None:
        path = self._revocations_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(msgspec.json.encode(self._revoked))
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("%s cannot be written (%s): this logout lasts until the gateway restarts.", path, exc)


def load_secret(settings: Settings) -> bytes:
    """SESSION_SECRET, else the secret in `<config>/.session_secret`, created once (0600) when missing."""
    if settings.session_secret:
        return settings.session_secret.encode()
    path: Path = settings.config_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        # A read-only config (a Kubernetes ConfigMap) must not take the admin UI down: sessions just do not
        # survive a gateway restart then.
        log.warning(
            "%s cannot be created (%s): admin sessions end with this gateway process; set SESSION_SECRET.",
            path,
            exc.strerror,
        )
        return secrets.token_bytes(32)
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        log.info("Generated the admin session secret in %s.", path)
    return read_stored(path, "session secret", 32, ConfigError).encode()
