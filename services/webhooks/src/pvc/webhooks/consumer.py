"""Reads PVC_EVENTS with a durable pull consumer and turns each event into deliveries.

Explicit ack, after the deliveries are committed: an event redelivered by JetStream (crash before the
ack, ack lost) finds its (subscription, event) rows already there and adds nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from contextlib import suppress
from datetime import UTC, datetime

import nats.errors
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from pvc.core.clock import utcnow
from pvc.core.db import Database
from pvc.core.events import STREAM, SUBJECT_PREFIX, connect, ensure_stream
from pvc.webhooks.metrics import DELIVERIES_QUEUED, EVENTS_CONSUMED
from pvc.webhooks.service import Clock, IncomingEvent, fan_out

log = logging.getLogger("pvc.webhooks.consumer")

BATCH = 100
ACK_WAIT_SECONDS = 30
# A fetch of many messages waits until it has them all or this passes, so it is kept short: events
# arriving one by one are each handled at once (see `run`).
BUSY_FETCH_SECONDS = 0.05
# Which NATS headers travel on to the delivery's trace.
TRACE_HEADERS = ("traceparent", "tracestate", "x-request-id")


def durable_name(*, configured: str, database_url: str) -> str:
    """The configured name, else `webhooks-<database>`: one consumer per webhooks database."""
    if configured:
        return configured
    database = database_url.rsplit("/", 1)[-1].split("?", 1)[0] or "default"
    return "webhooks-" + re.sub(r"[^A-Za-z0-9_-]", "_", database)


def parse(msg: Msg) -> IncomingEvent | None:
    try:
        envelope = orjson.loads(msg.data)
        return IncomingEvent(
            id=uuid.UUID(envelope["id"]),
            type=str(envelope["type"]),
            project_id=uuid.UUID(envelope["projectId"]),
            body=msg.data.decode(),
            trace={k: v for k, v in (msg.headers or {}).items() if k.lower() in TRACE_HEADERS},
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


class EventConsumer:
    def __init__(
        self,
        *,
        db: Database,
        nats_url: str,
        durable: str,
        clock: Clock = utcnow,
        started_at: datetime | None = None,
        inactive_seconds: float = 0,
    ) -> None:
        self.db = db
        self.nats_url = nats_url
        self.durable = durable
        self.clock = clock
        # A consumer created for the first time starts here: no subscription can predate this process.
        self.started_at = started_at or datetime.now(UTC)
        self.inactive_seconds = inactive_seconds

    async def subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        await ensure_stream(js)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=self.started_at,
            inactive_threshold=self.inactive_seconds or None,
        )
        while True:
            try:
                return await js.pull_subscribe(
                    SUBJECT_PREFIX + ">", durable=self.durable, stream=STREAM, config=config
                )
            except BadRequestError as exc:  # another replica created it between our lookup and create
                log.info("consumer %s appeared concurrently (%s); binding", self.durable, exc)
                await asyncio.sleep(0.2)

    async def run(self) -> None:
        nc = await connect(self.nats_url, name=f"pvc-webhooks-{self.durable}")
        try:
            js = nc.jetstream(timeout=5)
            while True:
                try:
                    subscription = await self.subscribe(js)
                    break
                except Exception as exc:
                    log.warning("cannot create consumer %s yet (%s); retrying", self.durable, exc)
                    await asyncio.sleep(1)
            log.info("consuming %s as %s", STREAM, self.durable)
            while True:
                # Idle: wait for one event (returns as soon as it arrives). Busy: take what is there.
                msgs = await self._fetch(subscription, 1, wait_seconds=5)
                while msgs:
                    await self.handle(msgs)
                    msgs = await self._fetch(subscription, BATCH, wait_seconds=BUSY_FETCH_SECONDS)
        finally:
            # Not drain(): it would wait for the pending pull request to expire. Acks are already sent.
            with suppress(Exception):
                await asyncio.wait_for(nc.close(), 2)

    @staticmethod
    async def _fetch(
        subscription: JetStreamContext.PullSubscription, batch: int, *, wait_seconds: float
    ) -> list[Msg]:
        """Up to `batch` messages; [] on timeout or a passing connection error (logged)."""
        try:
            return await subscription.fetch(batch, timeout=wait_seconds)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(0.5)
            return []

    async def handle(self, msgs: list[Msg]) -> None:
        events: list[IncomingEvent] = []
        parsed: list[Msg] = []
        for msg in msgs:
            event = parse(msg)
            if event is None:
                log.error("dropping a malformed event on %s", msg.subject)
                await msg.term()
            else:
                events.append(event)
                parsed.append(msg)
        if not events:
            return
        try:
            queued = await fan_out(self.db, events, now=self.clock())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("fan-out of %d events failed (%s); they will be redelivered", len(events), exc)
            for msg in parsed:
                with suppress(Exception):
                    await msg.nak(delay=1)
            return
        for msg in parsed:
            await msg.ack()
        EVENTS_CONSUMED.inc(len(events))
        DELIVERIES_QUEUED.inc(queued)
