"""A throwaway database on the stack's PostgreSQL server, for tests that drive components in-process."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from pvc.core.db import Database, create_engine
from pvc.core.migrations import upgrade
from pvc.devstack import Stack
from pvc.devstack.postgres import create_database, drop_database, with_database


@contextmanager
def scratch_database(stack: Stack, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(6)}"
    create_database(stack.database_url, name)
    try:
        yield with_database(stack.database_url, name)
    finally:
        drop_database(stack.database_url, name)


@contextmanager
def migrated_database(stack: Stack, prefix: str, *, schema: str, migrations: Path) -> Iterator[str]:
    """A scratch database with one service's schema migrated to head."""
    with scratch_database(stack, prefix) as url:
        upgrade(database_url=url, schema=schema, script_location=migrations)
        yield url


@asynccontextmanager
async def opened(database_url: str, *, pool_size: int = 4) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url, pool_size=pool_size))
    try:
        yield database
    finally:
        await database.dispose()
