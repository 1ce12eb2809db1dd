"""Async SQLAlchemy engine and sessions over psycopg 3.

Round trips are most of what a short request costs, so the pool and the two session kinds spend as
few as they can:

- A connection that was in use within the last `PING_AFTER_IDLE` seconds is handed out without a ping
  (SQLAlchemy's `pool_pre_ping` would send one on every checkout); one idle for longer is pinged, and
  replaced if the ping fails. A connection that breaks while busy (the server restarted under load)
  fails that one statement, which the gRPC layer answers as UNAVAILABLE, and SQLAlchemy then discards
  every pooled connection opened before the failure.
- `transaction()` is one unit of work: BEGIN, the statements, COMMIT.
- `read()` runs each statement in autocommit: no BEGIN and no ROLLBACK round trips. Each statement
  sees its own snapshot; a read that needs several statements to agree uses `transaction()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger("pvc.db")

PING_AFTER_IDLE = 2.0
_LAST_USED = "pvc_last_used"


def sqlalchemy_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (what operators write) and select the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


def libpq_url(url: str) -> str:
    """The same URL in the form psycopg/libpq expect (no SQLAlchemy driver suffix)."""
    return "postgresql://" + sqlalchemy_url(url).removeprefix("postgresql+psycopg://")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        # A database that is down must fail fast, not hang the request.
        connect_args={"connect_timeout": 3},
    )
    dialect = engine.dialect

    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection) -> None:
        last_used = record.info.get(_LAST_USED)
        if last_used is None or time.monotonic() - last_used < PING_AFTER_IDLE:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)  # in autocommit: leaves no transaction open
        except Exception as error:
            # The pool catches this, discards the connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error

    event.listen(engine.sync_engine, "checkout", ping_if_idle)
    event.listen(engine.sync_engine, "checkin", _mark_used)
    return engine


def _mark_used(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_LAST_USED] = time.monotonic()


class Database:
    """An engine plus two session factories: `transaction()` writes, `read()` reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self.readers = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"),
            class_=AsyncSession,
            expire_on_commit=False,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.readers() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


async def wake_on_notify(
    database_url: str, channel: str, wake: asyncio.Event, *, retry_seconds: float
) -> None:
    """Set `wake` on every NOTIFY on `channel`, forever, on a connection of its own.

    A lost connection is logged and reopened after `retry_seconds`; the waiter polls on its own
    timeout meanwhile, so nothing waits for the listener to come back.
    """
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=True
            ) as conn:
                await conn.execute(f'LISTEN "{channel}"')
                async for _ in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN %s connection lost (%s); polling until it is back", channel, exc)
            await asyncio.sleep(retry_seconds)
