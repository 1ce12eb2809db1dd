"""API key format: `pvc_` + 40 base62 characters of randomness + 6 characters of checksum.

The checksum (CRC-32 of the random part) lets secret scanners and our own gateway recognise a pvc key
without a database lookup. Keys are stored as their first `PREFIX_CHARS` characters plus
HMAC-SHA256(pepper, key); the key itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib

ALPHABET = string.digits + string.ascii_letters
RANDOM_CHARS = 40
CHECKSUM_CHARS = 6
PREFIX_CHARS = 12


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def generate_api_key() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return f"pvc_{body}{_checksum(body)}"


def has_valid_checksum(key: str) -> bool:
    """True for keys minted by `generate_api_key`; a bootstrap key chosen by an operator may not be."""
    body = key.removeprefix("pvc_")
    if len(body) != RANDOM_CHARS + CHECKSUM_CHARS or not key.startswith("pvc_"):
        return False
    return hmac.compare_digest(_checksum(body[:RANDOM_CHARS]), body[RANDOM_CHARS:])


def key_prefix(key: str) -> str:
    return key[:PREFIX_CHARS]


def hash_api_key(*, pepper: str, key: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
