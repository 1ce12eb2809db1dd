"""A throwaway database on the stack's PostgreSQL server, for tests that drive components in-process."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

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
