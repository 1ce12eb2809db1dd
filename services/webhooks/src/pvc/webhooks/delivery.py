"""The delivery worker: claims due deliveries, signs and sends them, records every attempt.

The schedule lives in PostgreSQL (`deliveries.next_attempt_at`), so a restart loses nothing. Any number
of workers may run: a worker claims due rows with `FOR UPDATE SKIP LOCKED` and pushes their
`next_attempt_at` out by a lease longer than the request timeout, so no other worker sends the same
delivery while it is in flight; a worker that dies mid-send leaves the row to be retried after the lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from opentelemetry import propagate, trace
from sqlmodel import col, select

from pvc.core.clock import utcnow
from pvc.core.db import Database, wake_on_notify
from pvc.core.errors import ValidationFailed
from pvc.core.ssrf import OutboundPolicy, PinnedClient
from pvc.webhooks.metrics import ATTEMPT_SECONDS, ATTEMPTS
from pvc.webhooks.models import Attempt, Delivery, Subscription
from pvc.webhooks.repository import DELIVERY_CHANNEL
from pvc.webhooks.schedule import next_delay, parse_retry_after
from pvc.webhooks.service import Clock
from pvc.webhooks.signing import SecretBox, signature_header

log = logging.getLogger("pvc.webhooks.delivery")
tracer = trace.get_tracer("pvc.webhooks")

TIMEOUT_SECONDS = 15.0
LEASE = timedelta(seconds=60)
POLL_SECONDS = 1.0
MAX_ERROR_CHARS = 500
USER_AGENT = "pvc-webhooks/1.0"


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    body: str
    trace: dict[str, str]
    retry_step: int
    lease_until: datetime
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    retry_after: str | None
    duration_ms: int


def classify(
    outcome: Outcome, *, retry_step: int, now: datetime, rand: Callable[[], float]
) -> tuple[str, datetime | None]:
    """(status, next attempt) after an attempt: DESIGN.md's success, 410, Retry-After and schedule rules."""
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return "succeeded", None
    if code == 410:
        return "dead", None
    delay = next_delay(retry_step + 1, rand=rand)
    if delay is None:
        return "dead", None
    if code in (429, 503):
        delay = parse_retry_after(outcome.retry_after, now=now) or delay
    return "failed", now + delay


class DeliveryWorker:
    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox,
        policy: OutboundPolicy,
        database_url: str | None = None,
        clock: Clock = utcnow,
        rand: Callable[[], float] = random.random,
        concurrency: int = 16,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.box = box
        self.policy = policy
        self.database_url = database_url
        self.clock = clock
        self.rand = rand
        self.concurrency = concurrency
        self.timeout = timeout
        self._wake = asyncio.Event()
        self._http = PinnedClient(timeout=timeout)

    async def run(self) -> None:
        """Keep up to `concurrency` attempts in flight; claim more as slots free up or rows fall due."""
        listener = (
            asyncio.create_task(
                wake_on_notify(self.database_url, DELIVERY_CHANNEL, self._wake, retry_seconds=POLL_SECONDS)
            )
            if self.database_url
            else None
        )
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                # Cleared before claiming: a NOTIFY that arrives meanwhile still ends the wait below.
                self._wake.clear()
                free = self.concurrency - len(in_flight)
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        claimed = await self.claim(limit=free)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("claiming deliveries failed; retrying")
                for item in claimed:
                    task = asyncio.create_task(self.attempt(item))
                    in_flight.add(task)
                    task.add_done_callback(self._finished(in_flight))
                # Claim again on a NOTIFY, a freed slot, or the poll (rows falling due).
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait(
                    {waker, *in_flight}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                waker.cancel()
        finally:
            for task in in_flight:
                task.cancel()
            with suppress(Exception):
                await self.close()
            if listener:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener

    @staticmethod
    def _finished(in_flight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                # The row keeps its lease and is attempted again when the lease runs out.
                log.error("delivery attempt failed unexpectedly", exc_info=task.exception())

        return done

    async def run_once(self) -> int:
        """Claim what is due now and attempt each once; returns how many were attempted."""
        claimed = await self.claim(limit=self.concurrency)
        if claimed:
            await asyncio.gather(*(self.attempt(c) for c in claimed))
        return len(claimed)

    async def claim(self, *, limit: int) -> list[Claimed]:
        d, s = Delivery.__table__, Subscription.__table__  # type: ignore[attr-defined]
        now = self.clock()
        lease_until = now + LEASE
        async with self.db.transaction() as session:
            due = (
                sa.select(d.c.id)
                .join(s, s.c.id == d.c.subscription_id)
                .where(
                    d.c.status.in_(("pending", "failed")), d.c.next_attempt_at <= now, s.c.active.is_(True)
                )
                .order_by(d.c.next_attempt_at)
                .limit(limit)
                .with_for_update(of=d, skip_locked=True)
            )
            rows = (
                await session.exec(
                    d.update()
                    .where(d.c.id.in_(due.scalar_subquery()))
                    .values(next_attempt_at=lease_until)
                    .returning(d.c.id, d.c.subscription_id, d.c.event_id, d.c.body, d.c.trace, d.c.retry_step)
                )
            ).all()
            if not rows:
                return []
            subscriptions = {
                sub.id: sub
                for sub in await session.exec(
                    select(Subscription).where(col(Subscription.id).in_({r.subscription_id for r in rows}))
                )
            }
        claimed = []
        for row in rows:
            sub = subscriptions[row.subscription_id]
            secrets = [self.box.open(sub.secret_enc, subscription_id=sub.id)]
            if (
                sub.previous_secret_enc is not None
                and sub.previous_secret_until
                and sub.previous_secret_until > now
            ):
                secrets.append(self.box.open(sub.previous_secret_enc, subscription_id=sub.id))
            claimed.append(
                Claimed(
                    delivery_id=row.id,
                    event_id=row.event_id,
                    body=row.body,
                    trace=dict(row.trace or {}),
                    retry_step=row.retry_step,
                    lease_until=lease_until,
                    url=sub.url,
                    secrets=secrets,
                )
            )
        return claimed

    async def attempt(self, claimed: Claimed) -> None:
        context = propagate.extract(claimed.trace)
        with tracer.start_as_current_span("webhook.deliver", context=context) as span:
            span.set_attribute("pvc.delivery_id", str(claimed.delivery_id))
            started = self.clock()
            outcome = await self.send(claimed)
            span.set_attribute("http.response.status_code", outcome.status_code or 0)
        await self.record(claimed, outcome, at=started)

    async def send(self, claimed: Claimed) -> Outcome:
        """One POST: resolved and checked once, connected to the checked address, never redirected."""
        began = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - began) * 1000)

        try:
            target = await self.policy.check(claimed.url)
        except ValidationFailed as exc:
            return Outcome(None, f"refused: {exc.message}", None, elapsed())
        body = claimed.body.encode()
        timestamp = int(self.clock().timestamp())
        msg_id = str(claimed.event_id)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                secrets=claimed.secrets, msg_id=msg_id, timestamp=timestamp, body=body
            ),
        }
        try:
            response = await self._http.post(target, headers=headers, body=body)
        except httpx.TimeoutException:
            return Outcome(None, f"timed out after {self.timeout:g} s", None, elapsed())
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], None, elapsed())
        code = response.status_code
        error = "" if 200 <= code < 300 else f"HTTP {code}"
        if 300 <= code < 400:
            error += " (redirects are not followed)"
        return Outcome(code, error, response.headers.get("retry-after"), elapsed())

    async def close(self) -> None:
        await self._http.close()

    async def record(self, claimed: Claimed, outcome: Outcome, *, at: datetime) -> None:
        d, s = Delivery.__table__, Subscription.__table__  # type: ignore[attr-defined]
        now = self.clock()
        status, next_at = classify(outcome, retry_step=claimed.retry_step, now=now, rand=self.rand)
        async with self.db.transaction() as session:
            updated = (
                await session.exec(
                    d.update()
                    # Only while the lease is still ours: a redelivery or another worker took over otherwise.
                    .where(d.c.id == claimed.delivery_id, d.c.next_attempt_at == claimed.lease_until)
                    .values(
                        status=status,
                        attempts=d.c.attempts + 1,
                        retry_step=claimed.retry_step + (0 if status == "succeeded" else 1),
                        last_status_code=outcome.status_code,
                        last_error=outcome.error,
                        next_attempt_at=next_at,
                        updated_at=now,
                    )
                    .returning(d.c.subscription_id)
                )
            ).first()
            if updated is None:
                return
            ATTEMPTS.labels(status).inc()
            ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
            session.add(
                Attempt(
                    delivery_id=claimed.delivery_id,
                    at=at,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
            )
            if outcome.status_code == 410:
                await session.exec(
                    s.update()
                    .where(s.c.id == updated.subscription_id)
                    .values(active=False, disabled_reason="the receiver answered 410 Gone", updated_at=now)
                )
        if status != "succeeded":
            log.info(
                "webhook delivery %s failed (%s); %s",
                claimed.delivery_id,
                outcome.error,
                f"next attempt at {next_at.isoformat()}" if next_at else status,
            )

    def wake(self) -> None:
        self._wake.set()
