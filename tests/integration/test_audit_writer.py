"""The gateway's group-commit audit writer, in-process on its own database.

Concurrent rows share one transaction; a row PostgreSQL refuses is dropped alone (and logged) instead of
blocking every row behind it; with the database unreachable a write gives up at once, keeps the row, and
the row is logged in full at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY

import pvc.gateway
from pvc.core.db import Database, create_engine
from pvc.devstack import Stack
from pvc.gateway.audit import AuditWriter
from pvc.gateway.models import SCHEMA

from .scratch import migrated_database

MIGRATIONS = Path(pvc.gateway.__file__).parent / "migrations"


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with migrated_database(stack, "pvc_audit_writer", schema=SCHEMA, migrations=MIGRATIONS) as url:
        yield url


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[AuditWriter]:
    db = Database(create_engine(database_url, pool_size=2))
    audit = AuditWriter(db=db, wait_seconds=5)
    audit.start()
    yield audit
    await audit.close()
    await db.dispose()


async def record(writer: AuditWriter, *, request_id: str, resource_id: str = "r") -> bool:
    return await writer.write(
        project_id=None,
        actor_id="test",
        actor_name="test",
        action="thing.create",
        resource_type="thing",
        resource_id=resource_id,
        before=None,
        after={"ok": True},
        outcome="success",
        request_id=request_id,
        ip="192.0.2.1",
    )


def stored(database_url: str, prefix: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT request_id FROM gateway.audit_logs WHERE request_id LIKE %s ORDER BY request_id",
            (f"{prefix}%",),
        ).fetchall()
    return [str(r[0]) for r in rows]


def batches() -> float:
    return REGISTRY.get_sample_value("pvc_audit_write_seconds_count") or 0.0


async def test_concurrent_rows_share_one_commit(writer: AuditWriter, database_url: str) -> None:
    prefix = f"burst-{uuid.uuid4().hex[:8]}-"
    before = batches()
    results = await asyncio.gather(*(record(writer, request_id=f"{prefix}{i:03}") for i in range(50)))
    assert results == [True] * 50
    assert stored(database_url, prefix) == [f"{prefix}{i:03}" for i in range(50)]
    assert batches() - before == 1
    # Idle again: the next row is written at once, in a transaction of its own.
    assert await record(writer, request_id=f"{prefix}next")
    assert batches() - before == 2


async def test_a_row_the_database_refuses_is_dropped_alone(
    writer: AuditWriter, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"poison-{uuid.uuid4().hex[:8]}-"
    with caplog.at_level(logging.ERROR, logger="pvc.gateway.audit"):
        results = await asyncio.gather(
            record(writer, request_id=f"{prefix}a"),
            record(writer, request_id=f"{prefix}b", resource_id="nul\x00byte"),  # text cannot hold NUL
            record(writer, request_id=f"{prefix}c"),
        )
    assert list(results) == [True, False, True]
    assert stored(database_url, prefix) == [f"{prefix}a", f"{prefix}c"]
    assert f"{prefix}b" in caplog.text
    assert writer.healthy


async def test_an_unreachable_database_never_holds_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    db = Database(create_engine("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1))
    writer = AuditWriter(db=db, wait_seconds=5)
    writer.start()
    try:
        started = time.monotonic()
        assert await record(writer, request_id="lost-1") is False
        assert time.monotonic() - started < 4  # the failure answered, not the 5 s wait
        assert not writer.healthy
        started = time.monotonic()
        assert await record(writer, request_id="lost-2") is False  # no waiting while writes fail
        assert time.monotonic() - started < 0.5
    finally:
        with caplog.at_level(logging.ERROR, logger="pvc.gateway.audit"):
            await writer.close()
        await db.dispose()
    # The rows' last trace is the log, in full.
    assert "audit row not written" in caplog.text
    assert "lost-1" in caplog.text
    assert "lost-2" in caplog.text
