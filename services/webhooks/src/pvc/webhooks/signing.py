"""Subscription secrets: made, encrypted at rest with the server key, and used to sign (Standard Webhooks).

A database dump alone reveals no secret: each is AES-256-GCM encrypted under a key derived from
`PVC_WEBHOOK_ENCRYPTION_KEY`, with the subscription id as associated data so a ciphertext cannot be
moved to another row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX = "whsec_"
NONCE_BYTES = 12


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key: the secret's base64 part, decoded (as Standard Webhooks libraries do)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


class SecretBox:
    def __init__(self, server_key: str) -> None:
        self._aead = AESGCM(hashlib.sha256(server_key.encode()).digest())

    def seal(self, secret: str, *, subscription_id: uuid.UUID) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), subscription_id.bytes)

    def open(self, sealed: bytes, *, subscription_id: uuid.UUID) -> str:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, subscription_id.bytes).decode()


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature over "{id}.{timestamp}.{body}"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per active secret (two during a rotation)."""
    return " ".join(sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets)


def verify(*, secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
