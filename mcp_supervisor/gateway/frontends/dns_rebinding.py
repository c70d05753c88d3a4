"""DNS-rebinding protection: validate `Host` (421) and `Origin` (403) before anything else runs.

On a loopback bind only loopback host names are served, whatever the port. On any other bind (a wildcard such
as 0.0.0.0 or ::, or one address) `Host` must be in ALLOWED_HOSTS when that is set; when it is empty, only an IP
literal, `localhost` or the bind's own name (HOST=myhost.lan) is served. A rebinding page needs a name it
controls, so no name of its choosing gets through, even on a wildcard bind (issue 22: `Host: evil.example` was
served `initialize` and the admin login on HOST=0.0.0.0). A browser `Origin` must be same-origin (hence a
served host) or in ALLOWED_ORIGINS.

Health and metrics (`check_probe`) get the same check, except that a `Host` that is an IP address always passes:
DNS rebinding needs a name to rebind, and probes (Kubernetes', Docker's) ask by address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from mcp_supervisor.config.settings import Settings

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", "*", ""})


def _hostname(host_header: str) -> str:
    """`example.com:3663` → `example.com`; `[::1]:3663` → `[::1]`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return False
    return True


class RequestGuard:
    def __init__(self, settings: Settings) -> None:
        self._loopback = settings.host in LOOPBACK_NAMES
        self._hosts = frozenset(_hostname(h) for h in settings.allowed_hosts)
        if self._loopback:
            self._hosts |= LOOPBACK_NAMES
        self._origins = frozenset(o.rstrip("/").lower() for o in settings.allowed_origins)
        # Any other bind without ALLOWED_HOSTS: IP literals and these names only.
        self._names = {"localhost"}
        bind = _hostname(settings.host)
        if bind not in WILDCARD_BINDS and not _is_ip(bind):
            self._names.add(bind)

    def _serves(self, hostname: str) -> bool:
        if self._hosts:  # ALLOWED_HOSTS, or the loopback names on a loopback bind
            return hostname in self._hosts
        return hostname in self._names or _is_ip(hostname)

    def check_probe(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """`check` for /health* and /metrics: an IP address as `Host` passes (see the module's docstring)."""
        if _is_ip(_hostname(headers.get("host", ""))):
            return None
        return self.check(headers)

    def check(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """None when the request may proceed, else (HTTP status, reason)."""
        host = headers.get("host", "")
        if not self._serves(_hostname(host)):
            return 421, f"Misdirected request: host {host!r} is not served here; name it in ALLOWED_HOSTS to serve it."
        origin = headers.get("origin")
        if origin is None:
            return None  # not a browser: nothing to rebind
        normalized = origin.rstrip("/").lower()
        if normalized in self._origins:
            return None
        origin_host = urlsplit(normalized).hostname or ""
        if self._loopback and (origin_host in LOOPBACK_NAMES or f"[{origin_host}]" in LOOPBACK_NAMES):
            return None
        if urlsplit(normalized).netloc == host.strip().lower():
            return None  # same origin
        return 403, f"Forbidden: origin {origin!r} is not allowed."
