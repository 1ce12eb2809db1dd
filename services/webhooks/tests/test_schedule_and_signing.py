"""The retry schedule and Retry-After rules, and Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag

from pvc.webhooks.delivery import Outcome, classify
from pvc.webhooks.schedule import RETRY_DELAYS, next_delay, parse_retry_after
from pvc.webhooks.signing import SECRET_PREFIX, SecretBox, new_secret, signature_header, verify

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_schedule_matches_the_design() -> None:
    assert [next_delay(n, rand=lambda: 0.5) for n in range(1, 8)] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert next_delay(8) is None
    assert next_delay(0) is None


@pytest.mark.parametrize("step", range(1, 8))
def test_jitter_stays_within_ten_percent(step: int) -> None:
    base = RETRY_DELAYS[step - 1]
    low, high = next_delay(step, rand=lambda: 0.0), next_delay(step, rand=lambda: 0.999999)
    assert low == base * 0.9
    assert high is not None
    assert base * 1.09 < high <= base * 1.1


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("120", now=NOW) == timedelta(seconds=120)
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now=NOW) == timedelta(minutes=1)
    assert parse_retry_after("999999999", now=NOW) == timedelta(hours=24)
    assert parse_retry_after("Mon, 31 Dec 2029 00:00:00 GMT", now=NOW) == timedelta(0)
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


def outcome(code: int | None, retry_after: str | None = None) -> Outcome:
    return Outcome(code, "" if code == 200 else "x", retry_after, 1)


def test_classify() -> None:
    half = lambda: 0.5  # noqa: E731
    assert classify(outcome(200), retry_step=3, now=NOW, rand=half) == ("succeeded", None)
    assert classify(outcome(204), retry_step=0, now=NOW, rand=half) == ("succeeded", None)
    assert classify(outcome(410), retry_step=0, now=NOW, rand=half) == ("dead", None)
    assert classify(outcome(302), retry_step=0, now=NOW, rand=half) == ("failed", NOW + timedelta(seconds=5))
    assert classify(outcome(None), retry_step=1, now=NOW, rand=half) == ("failed", NOW + timedelta(minutes=5))
    assert classify(outcome(429, "60"), retry_step=0, now=NOW, rand=half) == (
        "failed",
        NOW + timedelta(seconds=60),
    )
    assert classify(outcome(503, "7"), retry_step=2, now=NOW, rand=half) == (
        "failed",
        NOW + timedelta(seconds=7),
    )
    # Retry-After is honoured only for 429 and 503.
    assert classify(outcome(500, "7"), retry_step=0, now=NOW, rand=half) == (
        "failed",
        NOW + timedelta(seconds=5),
    )
    assert classify(outcome(500), retry_step=7, now=NOW, rand=half) == ("dead", None)
    assert classify(outcome(429, "1"), retry_step=7, now=NOW, rand=half) == ("dead", None)


def test_secret_format() -> None:
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32


def test_signature_is_standard_webhooks() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    header = signature_header(
        secrets=[secret], msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body
    )
    # The reference vector of the Standard Webhooks specification.
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    signed = b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body
    expected = base64.b64encode(
        hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), signed, hashlib.sha256).digest()
    )
    assert header == "v1," + expected.decode()
    assert verify(
        secret=secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body, header=header
    )
    assert not verify(secret=secret, msg_id="msg_other", timestamp=1614265330, body=body, header=header)


def test_two_signatures_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    header = signature_header(secrets=[new, old], msg_id="m", timestamp=1, body=b"{}")
    assert len(header.split(" ")) == 2
    assert verify(secret=old, msg_id="m", timestamp=1, body=b"{}", header=header)
    assert verify(secret=new, msg_id="m", timestamp=1, body=b"{}", header=header)


def test_secret_box_needs_the_server_key_and_the_row() -> None:
    box = SecretBox("server-key")
    row = uuid.uuid4()
    secret = new_secret()
    sealed = box.seal(secret, subscription_id=row)
    assert secret.encode() not in sealed
    assert box.open(sealed, subscription_id=row) == secret
    with pytest.raises(InvalidTag):
        SecretBox("another-key").open(sealed, subscription_id=row)
    with pytest.raises(InvalidTag):
        box.open(sealed, subscription_id=uuid.uuid4())
