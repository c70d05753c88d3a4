"""The admin password: never a well-known default, never empty.

ADMIN_PASSWORD unset: a strong one is generated once into `<config>/.admin_password` (0600, beside the session
secret, out of every backend's sight) and printed once to the log; later starts use the file and say where it
is. ADMIN_PASSWORD set to a weak value (a well-known default such as `password`, the username, or fewer than
MIN_LENGTH characters): the admin UI does not start, with a sentence that says how to fix it. A local process
(every sandboxed backend shared the host's loopback) must not be able to log in with a guess.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from mcp_supervisor.admin.secret_files import read_stored
from mcp_supervisor.config.settings import Settings
from mcp_supervisor.errors import ConfigError

log = logging.getLogger("mcp_supervisor.admin")

PASSWORD_FILE = ".admin_password"
MIN_LENGTH = 8
# Defaults of this project's seed, of its deployment templates and of the usual suspects.
WELL_KNOWN = frozenset({"password", "admin", "administrator", "changeme", "secret", "default", "letmein", "root"})


class AdminRefused(ConfigError):
    """The admin UI must not start with these credentials; the message says how to set a good password."""


def weakness(username: str, password: str) -> str | None:
    """Why `password` is refused, or None when it is acceptable."""
    lowered = password.strip().lower()
    if lowered in WELL_KNOWN or lowered.startswith("replace-me"):
        return "a well-known default"
    if lowered == username.strip().lower():
        return "the username"
    if len(password) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    return None


def admin_password(settings: Settings) -> str:
    """ADMIN_PASSWORD when it is acceptable, else the generated one; AdminRefused for a weak one."""
    path = settings.config_dir / PASSWORD_FILE
    if settings.admin_password:
        reason = weakness(settings.admin_username, settings.admin_password)
        if reason is not None:
            raise AdminRefused(
                f"The admin UI is off because ADMIN_PASSWORD is {reason}: set ADMIN_PASSWORD to a password of "
                f"{MIN_LENGTH} or more characters that nobody can guess, or unset it to have one generated into {path}."
            )
        return settings.admin_password
    return _generated(path)


def _generated(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _stored(path)
    except OSError as exc:
        # A read-only config (a Kubernetes ConfigMap): a password for this process only, shown at every start.
        password = secrets.token_urlsafe(18)
        log.warning(
            "ADMIN_PASSWORD is not set and %s cannot be created (%s): the admin password for this run only "
            "(shown once, here): %s",
            path,
            exc.strerror,
            password,
        )
        return password
    password = secrets.token_urlsafe(18)  # 144 bits
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    log.warning(
        "ADMIN_PASSWORD is not set: generated the admin password into %s (shown once, here): %s",
        path,
        password,
    )
    return password


def _stored(path: Path) -> str:
    password = read_stored(path, "stored admin password", 16, AdminRefused, "; set ADMIN_PASSWORD")
    log.info("The admin password is in %s (ADMIN_PASSWORD is not set).", path)
    return password
