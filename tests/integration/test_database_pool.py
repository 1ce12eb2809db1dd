"""The connection pool spends no round trip it can avoid, and survives connections that die.

- reads run in autocommit (no BEGIN/ROLLBACK), writes in one transaction;
- a connection idle for a while is pinged at checkout and replaced if its server side is gone;
- a connection that dies while in use fails that one statement with an error the gRPC layer answers
  as UNAVAILABLE, and the pool discards it, so the next statement works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlmodel import select

import pvc.core.db
from pvc.core.db import Database, libpq_url
from pvc.core.grpc_server import DATABASE_UNAVAILABLE
from pvc.devstack import Stack

from .scratch import opened, scratch_database


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with scratch_database(stack, "pvc_pool") as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with opened(database_url, pool_size=1) as database:
        yield database


async def backend_pid(db: Database) -> int:
    async with db.read() as session:
        return int((await session.exec(select(sa.func.pg_backend_pid()))).one())


def terminate(database_url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def driver_status(session: object) -> TransactionStatus:
    connection = await session.connection()  # type: ignore[attr-defined]
    raw = await connection.get_raw_connection()
    return TransactionStatus(raw.driver_connection.info.transaction_status)


async def test_reads_open_no_transaction_and_writes_one(db: Database) -> None:
    async with db.read() as session:
        await session.exec(select(sa.literal(1)))
        assert await driver_status(session) == TransactionStatus.IDLE
    async with db.transaction() as session:
        await session.exec(select(sa.literal(1)))
        assert await driver_status(session) == TransactionStatus.INTRANS


async def test_an_idle_connection_whose_server_side_died_is_replaced(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(db)
    terminate(database_url, first)
    monkeypatch.setattr(pvc.core.db, "PING_AFTER_IDLE", 0.0)  # every checkout counts as idle
    second = await backend_pid(db)  # the ping fails, the pool opens a new connection: no error
    assert second != first


async def test_a_connection_that_dies_in_use_fails_once_as_unavailable(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pvc.core.db, "PING_AFTER_IDLE", 3600.0)  # never pinged: as under load
    first = await backend_pid(db)
    terminate(database_url, first)
    with pytest.raises(DATABASE_UNAVAILABLE):
        await backend_pid(db)
    assert await backend_pid(db) != first
