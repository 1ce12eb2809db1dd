"""The integration suite runs against one real stack: PostgreSQL, NATS JetStream, services, gateway, Envoy.

Without PVC_TEST_DATABASE_URL / PVC_TEST_NATS_URL the stack starts its own embedded servers in a
temporary directory; with them, it creates a throwaway database on that server and drops it after.
Every request goes through Envoy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pvc.devstack import Stack

from .support import ClientFactory, create_key, mint_key


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    database_url = os.environ.get("PVC_TEST_DATABASE_URL") or None
    nats_url = os.environ.get("PVC_TEST_NATS_URL") or None
    # Not pytest's tmp_path: embedded PostgreSQL runs as an unprivileged user when we are root, and
    # pytest keeps its temporary root private (0700).
    data_dir = Path(tempfile.mkdtemp(prefix="pvc-it-"))
    with Stack(
        data_dir=data_dir,
        http_port=None,
        database_url=database_url,
        nats_url=nats_url,
        fresh_database=database_url is not None,
    ) as running:
        yield running
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def anon(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def client_for(stack: Stack, api: httpx.Client) -> Iterator[ClientFactory]:
    """Clients with keys minted through the API (POST /api/v1/api-keys) by the admin key."""
    clients: list[httpx.Client] = []

    def make(
        *,
        scopes: list[str],
        project: str | None = None,
        expires_at: datetime | None = None,
        **extra: object,
    ) -> httpx.Client:
        if not scopes or (expires_at is not None and expires_at <= datetime.now(UTC)):
            # States the API refuses to create on purpose.
            key = mint_key(stack, scopes=scopes, project=project, expires_at=expires_at)
        else:
            if expires_at is not None:
                extra["expiresAt"] = expires_at.isoformat()
            key = str(create_key(api, scopes=scopes, project=project, **extra)["key"])
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
