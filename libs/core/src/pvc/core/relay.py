"""Publishes a service's outbox to JetStream.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of replicas can relay at once without
publishing a row twice concurrently; a row is marked sent only after JetStream acknowledged it. A relay
that dies between the two is harmless: the row is published again with the same `Nats-Msg-Id` and the
stream drops the duplicate. The relay wakes on the `NOTIFY` that `record_event` sends at commit, and
polls once a second in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import orjson
import sqlalchemy as sa
from nats.aio.client import Client as NATS
from sqlmodel import select

from pvc.core.db import Database, wake_on_notify
from pvc.core.events import connect, ensure_stream, subject_for
from pvc.core.metrics import OUTBOX_PUBLISHED
from pvc.core.outbox import notify_channel

log = logging.getLogger("pvc.relay")

BATCH = 200
POLL_SECONDS = 1.0
KEEP_PUBLISHED = timedelta(days=3)


class OutboxRelay:
    def __init__(
        self, *, db: Database, table: sa.Table, database_url: str, nats_url: str, service: str
    ) -> None:
        self.db = db
        self.table = table
        self.database_url = database_url
        self.nats_url = nats_url
        self.service = service
        self._wake = asyncio.Event()

    async def run(self) -> None:
        nc = await connect(self.nats_url, name=f"pvc-{self.service}-relay")
        try:
            js = nc.jetstream(timeout=5)
            await ensure_stream(js)
            listener = asyncio.create_task(
                wake_on_notify(
                    self.database_url,
                    notify_channel(str(self.table.schema)),
                    self._wake,
                    retry_seconds=POLL_SECONDS,
                )
            )
            try:
                await self._loop(nc)
            finally:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener
        finally:
            with suppress(Exception):
                await nc.drain()

    async def _loop(self, nc: NATS) -> None:
        js = nc.jetstream(timeout=5)
        last_cleanup = datetime.min.replace(tzinfo=UTC)
        while True:
            try:
                while await self.publish_batch(js) == BATCH:
                    pass
                if datetime.now(UTC) - last_cleanup > timedelta(hours=1):
                    await self._delete_old()
                    last_cleanup = datetime.now(UTC)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox publish failed (%s); will retry", exc)
                await asyncio.sleep(POLL_SECONDS)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()

    async def publish_batch(self, js: object) -> int:
        t = self.table
        async with self.db.transaction() as session:
            rows = (
                await session.exec(
                    select(t.c.id, t.c.type, t.c.payload, t.c.headers)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.created_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for event_id, event_type, payload, stored_headers in rows:
                headers = {str(k): str(v) for k, v in (stored_headers or {}).items()}
                headers["Nats-Msg-Id"] = str(event_id)
                await js.publish(  # type: ignore[attr-defined]
                    subject_for(event_type), orjson.dumps(payload), headers=headers
                )
            if rows:
                await session.exec(
                    t.update()
                    .where(t.c.id.in_([row[0] for row in rows]))
                    .values(published_at=datetime.now(UTC), attempts=t.c.attempts + 1)
                )
        if rows:
            OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def _delete_old(self) -> None:
        t = self.table
        async with self.db.transaction() as session:
            await session.exec(t.delete().where(t.c.published_at < datetime.now(UTC) - KEEP_PUBLISHED))
