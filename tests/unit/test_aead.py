"""aead.py seals in the SDK's `AESGCMRequestStateCodec` format: tokens of either verify with the other (a gateway
upgraded past the SDK's codec still reads the session ids and requestStates it handed out), and a token that was
altered, or sealed under another key, does not verify."""

from __future__ import annotations

import pytest
from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState

from mcp_supervisor.gateway.server.aead import AeadCodec, InvalidToken

KEY = "k" * 64


def test_tokens_cross_verify_with_the_sdks_codec() -> None:
    ours, theirs = AeadCodec(KEY), AESGCMRequestStateCodec([KEY])
    assert theirs.unseal(ours.seal(b"payload")) == b"payload"
    assert ours.unseal(theirs.seal(b"payload")) == b"payload"
    assert ours.seal(b"x") != ours.seal(b"x")  # a fresh nonce each time


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
        lambda token: "v2." + token[3:],
        lambda token: token + "=",
        lambda token: token[:20],
        lambda token: AeadCodec("z" * 64).seal(b"payload"),
    ],
)
def test_altered_tokens_are_refused(mangle: object) -> None:
    codec = AeadCodec(KEY)
    token = mangle(codec.seal(b"payload"))  # type: ignore[operator]
    with pytest.raises(InvalidToken):
        codec.unseal(token)
    with pytest.raises(InvalidRequestState):
        AESGCMRequestStateCodec([KEY]).unseal(token)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        AeadCodec("short")
