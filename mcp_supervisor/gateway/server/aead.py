"""AES-256-GCM sealing of what the gateway hands clients to give back (requestState, sealed session ids).

The token format is the SDK's `AESGCMRequestStateCodec` (`v1.` + base64url(kid ‖ nonce ‖ ciphertext), key derived
with HKDF-SHA256, the prefix and kid bound as associated data), so tokens sealed by a gateway that used the SDK's
codec still verify; tests/unit/test_aead.py checks both directions against it. Written here with `cryptography`
directly, because the SDK's module imports the whole SDK (+33 MB in the gateway) for these few lines.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_KDF_INFO = b"mcp/request-state/v1/aes-256-gcm"
_KID_INFO = b"mcp/request-state/v1/kid:"
_PREFIX = "v1."
_KID_LEN = 4
_NONCE_LEN = 12
_TAG_LEN = 16


class InvalidToken(ValueError):
    """A token this codec did not mint unmodified; the message is for the log."""


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64u_decode(text: str) -> bytes:
    """Only the canonical unpadded encoding decodes."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64u(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


class AeadCodec:
    """One key (at least 32 bytes of secret material): seals, and unseals what it sealed."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(material) < 32:
            raise ValueError("the sealing key must be at least 32 bytes of secret randomness")
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_KDF_INFO).derive(material)
        self._kid = hashlib.sha256(_KID_INFO + key).digest()[:_KID_LEN]
        self._aad = _PREFIX.encode() + self._kid
        self._aead = AESGCM(key)

    def seal(self, payload: bytes) -> str:
        nonce = os.urandom(_NONCE_LEN)
        return _PREFIX + _b64u(self._kid + nonce + self._aead.encrypt(nonce, payload, self._aad))

    def unseal(self, token: str) -> bytes:
        if not token.startswith(_PREFIX):
            raise InvalidToken("malformed")
        try:
            raw = _b64u_decode(token[len(_PREFIX) :])
        except ValueError as exc:  # binascii.Error is one
            raise InvalidToken("malformed") from exc
        if len(raw) < _KID_LEN + _NONCE_LEN + _TAG_LEN:
            raise InvalidToken("malformed")
        if raw[:_KID_LEN] != self._kid:
            raise InvalidToken("unknown key")
        nonce, sealed = raw[_KID_LEN : _KID_LEN + _NONCE_LEN], raw[_KID_LEN + _NONCE_LEN :]
        try:
            return self._aead.decrypt(nonce, sealed, self._aad)
        except InvalidTag:
            raise InvalidToken("seal") from None
