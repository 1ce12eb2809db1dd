"""Alembic, one migration history per service schema, runnable from code (`python -m pvc.X migrate`)."""

from __future__ import annotations

import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config

from pvc.core.db import sqlalchemy_url


def upgrade(*, database_url: str, schema: str, script_location: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    config.attributes["pvc_schema"] = schema
    command.upgrade(config, "head")


def run_env(target_metadata: sa.MetaData | None = None) -> None:
    """Body of every service's `migrations/env.py` (online mode only)."""
    config = context.config
    schema: str = config.attributes["pvc_schema"]
    engine = sa.create_engine(str(config.get_main_option("sqlalchemy.url")), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        # Replicas starting together must not run the same migration twice.
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": zlib.crc32(schema.encode())})
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": zlib.crc32(schema.encode())})
    engine.dispose()
