"""Sealed session ids (gateway/frontends/sealed_sessions.py) and the store's seal / revive / revoke."""

from __future__ import annotations

import secrets
import time

import pytest

from mcp_supervisor.gateway.frontends import sealed_sessions
from mcp_supervisor.gateway.frontends.auth import Identity
from mcp_supervisor.gateway.frontends.sealed_sessions import SessionRejected, SessionSealer
from mcp_supervisor.gateway.server.sessions import SessionStore

CAPS = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}}
INFO = {"name": "client", "version": "1.0"}
KEY = b"k" * 32


def sealer(secret: str = "", lifetime: float = 3600.0) -> SessionSealer:
    return SessionSealer(secret, KEY, lifetime)


def test_a_sealed_id_round_trips_for_its_principal_only() -> None:
    sealed = sealer().seal("key:0", "2025-11-25", CAPS, INFO)
    assert sealed is not None
    session_id, expires_at = sealed
    assert len(session_id) < 400 and session_id.isascii() and " " not in session_id
    state = sealer().unseal(session_id, "key:0")  # another instance with the same key: a restarted gateway
    assert (state.protocol_version, state.capabilities, state.client_info) == ("2025-11-25", CAPS, INFO)
    assert state.expires_at == expires_at and state.handle == session_id[:16]
    with pytest.raises(SessionRejected, match="another principal"):
        sealer().unseal(session_id, "key:1")


def test_keys_separate_trees_and_request_state() -> None:
    session_id, _ = sealer("s" * 64).seal("p", "2025-11-25", {}, {}) or ("", 0)
    assert sealer("s" * 64).unseal(session_id, "p").principal == "p"  # replicas sharing the secret
    with pytest.raises(SessionRejected, match="verify"):
        sealer("t" * 64).unseal(session_id, "p")
    with pytest.raises(SessionRejected, match="verify"):
        sealer().unseal(session_id, "p")  # the instance key is not the shared secret
    # A requestState token sealed with the same secret is not a session id.
    from mcp_supervisor.gateway.server.request_state import Binding, RequestStateSealer

    state = RequestStateSealer("s" * 64, 60).seal(Binding("p", "tools/call", "x"), "held", "1")
    with pytest.raises(SessionRejected):
        sealer("s" * 64).unseal("A" * 16 + "." + state.removeprefix("mcps1."), "p")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sid: sid[:-3] + ("AAA" if not sid.endswith("AAA") else "BBB"),  # altered token
        lambda sid: "B" * 16 + sid[16:],  # another handle on the same token
        lambda sid: sid.partition(".")[2],  # no handle
        lambda sid: "random-unsealed-id",
    ],
)
def test_altered_ids_are_refused(mangle: object) -> None:
    session_id, _ = sealer().seal("p", "2025-11-25", CAPS, INFO) or ("", 0)
    with pytest.raises(SessionRejected):
        sealer().unseal(mangle(session_id), "p")  # type: ignore[operator]


def test_expired_and_revoked_ids_are_refused() -> None:
    short = sealer(lifetime=-1)
    session_id, _ = short.seal("p", "2025-11-25", {}, {}) or ("", 0)
    with pytest.raises(SessionRejected, match="expired"):
        short.unseal(session_id, "p")
    live = sealer()
    session_id, expires_at = live.seal("p", "2025-11-25", {}, {}) or ("", 0)
    live.revoke(session_id[:16], expires_at)
    with pytest.raises(SessionRejected, match="deleted"):
        live.unseal(session_id, "p")


def test_the_revocation_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealed_sessions, "MAX_REVOKED", 3)
    live = sealer()
    now = time.time()
    for index, handle in enumerate("abcd"):
        live.revoke(handle * 16, now + 100 + index)
    assert len(live._revoked) == 3 and "a" * 16 not in live._revoked  # the one nearest to expiry went


def test_large_client_state_is_trimmed_then_left_unsealed() -> None:
    # Random text: compression does not shrink it.
    big_info = {**INFO, "description": secrets.token_hex(2000)}
    big_caps = {**CAPS, "experimental": {"blob": {"data": secrets.token_hex(2000)}}}
    session_id, _ = sealer().seal("p", "2025-11-25", big_caps, big_info) or ("", 0)
    assert len(session_id) <= sealed_sessions.MAX_ID_CHARS
    state = sealer().unseal(session_id, "p")
    assert state.client_info == INFO and state.capabilities["elicitation"] == {"form": {}, "url": {}}
    huge_caps = {secrets.token_hex(8): {"x": True} for _ in range(200)}
    assert sealer().seal("p", "2025-11-25", huge_caps, INFO) is None


def test_the_store_seals_revives_and_revokes() -> None:
    first = SessionStore(sealer=sealer(), max_per_credential=2)
    session = first.create("p")
    assert session is not None
    session.protocol_version, session.capabilities, session.client_info = "2025-11-25", CAPS, INFO
    first.seal(session)
    assert "." in session.id and first.get(session.id, "p") is session
    second = SessionStore(sealer=sealer(), max_per_credential=2)  # a restarted gateway
    assert second.revive(session.id, Identity("q")) is None
    revived = second.revive(session.id, Identity("p"))
    assert revived is not None and revived.revived and revived.initialized
    assert revived.initialize_answered.is_set() and revived.capabilities == CAPS
    assert revived.next_stream > 1 << 20  # never one of the earlier process's stream numbers
    assert second.get(session.id, "p") is revived
    second.close(session.id, revoke=True)
    assert second.revive(session.id, Identity("p")) is None
    assert SessionStore(sealer=None).revive(session.id, Identity("p")) is None


def test_a_quota_eviction_ends_the_sealed_id() -> None:
    store = SessionStore(sealer=sealer(), max_per_credential=1)
    first = store.create("p")
    assert first is not None
    store.seal(first)
    assert store.create("p") is not None  # evicts `first`, idle
    assert store.get(first.id, "p") is None and store.revive(first.id, Identity("p")) is None
