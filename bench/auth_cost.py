"""The "auth" section of `make bench` (issue 16): what a client's credential costs per call.

One gateway (one stdio echo backend behind a worker) with both a static key (`ALLOWED_KEYS`) and OAuth
(`OAUTH_ISSUER`, `OAUTH_RESOURCE`, `OAUTH_REQUIRED_SCOPES`), and the direct echo backend beside it. S=1
`tools/call` with the raw client over `/mcp`: direct, through the gateway with `X-Api-Key`, and through the
gateway with `Authorization: Bearer <JWT>`, alternating `--repeat` times; medians of the p50s.

The authorization server is local and tiny: an RSA key made here, the JWT signed here with joserfc, and the
issuer's RFC 8414 metadata and JWKS served from a thread on loopback. The gateway validates the token exactly
as it validates a real issuer's: discovery, JWKS, signature, issuer, audience, expiry, scope. Its cache of
verified tokens is part of what is measured (a client sends the same token until it expires, so the first
call of a session verifies the signature and the rest find it in the cache); the first call is the warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

BENCH_KEY = "bench-static-key"
SCOPE = "mcp:tools"
TARGET_P50_DELTA_MS = 1.0  # the same target as the unauthenticated S=1 row: direct + 1.0 ms


class LocalIssuer:
    """An OAuth authorization server reduced to what a resource server reads: metadata, JWKS, signed tokens."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "bench-1", "alg": "RS256", "use": "sig"})
        jwks: dict[str, Any] = dict(KeySet([self.key]).as_dict(private=False))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(jwks))
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-issuer", daemon=True)
        self.fetches: list[str] = []

    def _handler(self, jwks: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches.append(self.path)
                if self.path == "/.well-known/oauth-authorization-server":
                    body: dict[str, Any] = {"issuer": issuer.issuer, "jwks_uri": f"{issuer.issuer}/jwks"}
                elif self.path == "/jwks":
                    body = jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        return Handler

    def __enter__(self) -> LocalIssuer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def token(self, audience: str, lifetime_s: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "bench-user",
            "client_id": "bench-client",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "scope": f"openid {SCOPE}",
        }
        return jwt.encode({"alg": "RS256", "kid": "bench-1", "typ": "at+jwt"}, claims, self.key)


def run_auth_cost(
    bench: ModuleType, procs: Any, workdir: Path, config: argparse.Namespace, results: dict[str, Any]
) -> None:
    with LocalIssuer() as issuer:
        direct = bench.DirectBackend(procs, workdir, "mcp", config.direct_json_response)
        gateway = bench.Supervisor(procs, workdir, "auth-1", backends=1)
        resource = f"{gateway.base}/mcp"
        gateway.extra_env.update(
            {
                "ALLOWED_KEYS": BENCH_KEY,
                "OAUTH_ISSUER": issuer.issuer,
                "OAUTH_RESOURCE": resource,
                "OAUTH_REQUIRED_SCOPES": SCOPE,
                "NO_PROXY": "127.0.0.1,localhost",  # the JWKS is on loopback: never through a proxy
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        gateway.start()
        try:
            gateway.wait_running(60)
            tree = gateway.tree()
            watch = {"gateway": tree["gateway"], "worker": tree["worker[echo]"], "backend": tree["backend[echo]"]}
            token = issuer.token(resource)
            sides: dict[str, tuple[str, str, list[str], dict[str, Any]]] = {
                "direct": (direct.url, "echo", [], direct.processes()),
                "key": (resource, "echo--echo", ["--header", f"X-Api-Key: {BENCH_KEY}"], watch),
                "jwt": (resource, "echo--echo", ["--header", f"Authorization: Bearer {token}"], watch),
            }
            rows: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for _ in range(config.repeat):
                for side, (url, tool, headers, processes) in sides.items():
                    result = measure(bench, url, tool, headers, config.calls, processes)
                    if result["errors"] or result["mismatches"]:
                        raise bench.BenchFailure(
                            f"auth {side}: {result['errors']} errors, {result['mismatches']} mismatches: "
                            f"{result['error_samples']}"
                        )
                    rows[side].append(result)
                    bench.log(f"auth {side:>6}: S=1 /mcp raw p50 {result['latency_ms']['p50']:.2f} ms")
        finally:
            gateway.stop()
            procs.stop(direct.process)
    p50 = {side: statistics.median(run["latency_ms"]["p50"] for run in runs) for side, runs in rows.items()}
    results["auth_cost"] = {
        "calls": config.calls,
        "repeat": config.repeat,
        "p50_ms": {side: round(value, 3) for side, value in p50.items()},
        "p90_ms": {
            side: round(statistics.median(run["latency_ms"]["p90"] for run in runs), 3) for side, runs in rows.items()
        },
        "jwt_minus_key_ms": round(p50["jwt"] - p50["key"], 3),
        "key_minus_direct_ms": round(p50["key"] - p50["direct"], 3),
        "jwt_minus_direct_ms": round(p50["jwt"] - p50["direct"], 3),
        "issuer_fetches": list(issuer.fetches),  # discovery + JWKS once: the rest came from the caches
    }


def measure(
    bench: ModuleType, url: str, tool: str, headers: list[str], calls: int, processes: dict[str, Any]
) -> dict[str, Any]:
    args = ["run", "--url", url, "--transport", "mcp", "--mode", "raw", "-S", "1", "-N", str(calls), "--tool", tool]
    with bench.PeakSampler(processes) as sampler:
        result: dict[str, Any] = bench.loadgen([*args, *headers], bench.load_timeout(calls, 1))
    result["processes"] = sampler.result()
    return result


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    cost = results.get("auth_cost")
    if not cost:
        return []
    p50 = cost["p50_ms"]
    return [
        {
            "target": f"auth: S=1 p50 with an OAuth JWT <= direct + {TARGET_P50_DELTA_MS:g} ms (/mcp raw client)",
            "measured": f"+{cost['jwt_minus_direct_ms']:.2f} ms",
            "holds": cost["jwt_minus_direct_ms"] <= TARGET_P50_DELTA_MS,
            "detail": f"direct {p50['direct']:.2f} ms, static key {p50['key']:.2f} ms, JWT {p50['jwt']:.2f} ms",
        }
    ]


def report(results: dict[str, Any]) -> list[str]:
    cost = results.get("auth_cost")
    if not cost:
        return []
    p50, p90 = cost["p50_ms"], cost["p90_ms"]
    return [
        "",
        f"Auth: S=1 tools/call over /mcp, raw client, medians of {cost['repeat']} alternating runs of {cost['calls']}",
        f"{'credential':<22} {'p50 ms':>7} {'p90 ms':>7} {'vs direct':>10}",
        f"{'none (direct backend)':<22} {p50['direct']:>7.2f} {p90['direct']:>7.2f} {'':>10}",
        f"{'static key (gateway)':<22} {p50['key']:>7.2f} {p90['key']:>7.2f} {cost['key_minus_direct_ms']:>+10.2f}",
        f"{'OAuth JWT (gateway)':<22} {p50['jwt']:>7.2f} {p90['jwt']:>7.2f} {cost['jwt_minus_direct_ms']:>+10.2f}",
        f"JWT - static key: {cost['jwt_minus_key_ms']:+.2f} ms; issuer fetches: {', '.join(cost['issuer_fetches'])}",
    ]
