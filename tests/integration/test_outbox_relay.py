"""The outbox relay against its own NATS server (so it can be stopped) and a throwaway database.

- killed between publish and mark-sent: the row is published again and JetStream drops the copy by
  `Nats-Msg-Id`;
- NATS down: committed events wait in the outbox and are published once it is back, each once;
- commit -> publish is quick because NOTIFY wakes the relay.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from sqlmodel import select

from pvc.core.db import Database, create_engine
from pvc.core.events import connect, ensure_stream
from pvc.core.outbox import outbox_table, record_event
from pvc.core.relay import OutboxRelay
from pvc.devstack import EmbeddedNats, Stack, Supervisor

from .scratch import scratch_database

SCHEMA = "relaytest"


@pytest.fixture(scope="module")
def own_nats() -> Iterator[EmbeddedNats]:
    data_dir = Path(tempfile.mkdtemp(prefix="pvc-relay-nats-"))
    supervisor = Supervisor(log_dir=data_dir / "logs")
    server = EmbeddedNats(data_dir, supervisor=supervisor)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        supervisor.close()


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with scratch_database(stack, "pvc_relay") as url:
        yield url


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[tuple[Database, sa.Table]]:
    metadata = sa.MetaData()
    table = outbox_table(metadata, schema=SCHEMA)
    db = Database(create_engine(database_url, pool_size=4))
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    yield db, table
    await db.dispose()


async def add_events(db: Database, table: sa.Table, event_type: str, count: int) -> list[uuid.UUID]:
    ids = []
    for i in range(count):
        async with db.transaction() as session:
            ids.append(
                await record_event(session, table, type=event_type, project_id=uuid.uuid4(), data={"n": i})
            )
    return ids


async def unpublished(db: Database, table: sa.Table, ids: list[uuid.UUID]) -> int:
    async with db.read() as session:
        query = select(sa.func.count()).where(table.c.id.in_(ids), table.c.published_at.is_(None))
        return int((await session.exec(query)).one())


async def stream_messages(nats_url: str, subject: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
        found = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                return found
            found.append({"id": (msg.headers or {}).get("Nats-Msg-Id"), "data": msg.data})
    finally:
        await nc.close()


class KilledAfterPublish:
    """A JetStream context whose process 'dies' right after the publish was acknowledged."""

    def __init__(self, js: Any) -> None:
        self.js = js

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await self.js.publish(*args, **kwargs)
        raise RuntimeError("relay killed between publish and mark-sent")


async def test_a_relay_killed_before_mark_sent_publishes_again_and_the_copy_is_dropped(
    own_nats: EmbeddedNats, database_url: str, outbox: tuple[Database, sa.Table]
) -> None:
    db, table = outbox
    event_type = f"relaytest.dup{uuid.uuid4().hex[:8]}"
    (event_id,) = await add_events(db, table, event_type, 1)
    relay = OutboxRelay(db=db, table=table, database_url=database_url, nats_url=own_nats.url, service="test")
    nc = await connect(own_nats.url, name="test")
    try:
        js = nc.jetstream(timeout=5)
        await ensure_stream(js)
        with pytest.raises(RuntimeError, match="killed"):
            await relay.publish_batch(KilledAfterPublish(js))
        assert await unpublished(db, table, [event_id]) == 1
        assert await relay.publish_batch(js) == 1
        assert await unpublished(db, table, [event_id]) == 0
    finally:
        await nc.close()
    messages = await stream_messages(own_nats.url, f"pvc.events.{event_type}")
    assert [m["id"] for m in messages] == [str(event_id)]


async def test_events_wait_in_the_outbox_while_nats_is_down(
    own_nats: EmbeddedNats, database_url: str, outbox: tuple[Database, sa.Table]
) -> None:
    db, table = outbox
    event_type = f"relaytest.down{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(db=db, table=table, database_url=database_url, nats_url=own_nats.url, service="test")
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)
        own_nats.stop()
        ids = await add_events(db, table, event_type, 5)
        await asyncio.sleep(2.0)
        assert await unpublished(db, table, ids) == 5
        own_nats.start()
        deadline = time.monotonic() + 30
        while await unpublished(db, table, ids):
            assert time.monotonic() < deadline, "outbox not published after NATS came back"
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    messages = await stream_messages(own_nats.url, f"pvc.events.{event_type}")
    assert sorted(m["id"] for m in messages) == sorted(str(i) for i in ids)


async def test_commit_to_publish_is_quick(
    own_nats: EmbeddedNats, database_url: str, outbox: tuple[Database, sa.Table]
) -> None:
    db, table = outbox
    event_type = f"relaytest.fast{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(db=db, table=table, database_url=database_url, nats_url=own_nats.url, service="test")
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.0)  # connected and listening
        started = time.monotonic()
        ids = await add_events(db, table, event_type, 1)
        for _ in range(200):
            if not await unpublished(db, table, ids):
                break
            await asyncio.sleep(0.01)
        # NOTIFY wakes the relay at commit; the 1 s poll is only the fallback. Generous bound for a busy box.
        assert time.monotonic() - started < 0.9
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
