"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

The key is the base64-decoded part of a `whsec_...` secret. Used both ways: pvc signs the trigger it
sends to a harness, and the harness signs its callback with the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from pvc.core.errors import Unauthenticated

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a whsec_ secret") from exc


def valid_secret(secret: str) -> bool:
    if not secret.startswith(PREFIX):
        return False
    try:
        return len(secret_key(secret)) >= 24
    except ValueError:
        return False


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret=secret, msg_id=msg_id, timestamp=stamp, body=body),
    }


def verify(
    *,
    secret: str,
    msg_id: str,
    timestamp: str,
    signature: str,
    body: bytes,
    tolerance: int,
    now: float | None = None,
) -> None:
    """Raise Unauthenticated unless one of the (space-separated) v1 signatures matches, in time."""
    if not msg_id or not timestamp or not signature:
        raise Unauthenticated("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise Unauthenticated("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise Unauthenticated("webhook-timestamp is outside the accepted window")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=stamp, body=body).encode()
    for candidate in signature.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise Unauthenticated("webhook-signature does not match")
