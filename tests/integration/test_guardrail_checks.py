"""Guardrail checks in-process, against a real (scratch) deployments database.

- a check that fails after the points are committed does not fail the ingest (a retry would store
  the batch twice); the next batch checks again and pauses;
- a small deployment (cheap checks) is checked with every batch, before the ingest call returns;
- batches within the gap after a check share one deferred check, which sees all of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator

import orjson
import pytest
from sqlalchemy.exc import OperationalError

from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.deployments import repository
from pvc.deployments.models import SCHEMA
from pvc.deployments.service import DeploymentsService
from pvc.deployments.servicer import SPEC
from pvc.deployments.versions import VersionInfo
from pvc.devstack import Stack

from .scratch import migrated_database, opened

CALLER = Caller(project_id=uuid.uuid4(), actor_id="k1", actor_name="tester")
RULE = {"metric": "latency_ms", "stat": "mean", "max": 500, "minSamples": 3}


class Versions:
    """The registry's answer for a fresh prompt with two versions (the registry is not under test)."""

    def __init__(self) -> None:
        self.prompt, self.v1, self.v2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def lookup(
        self, *, caller: Caller, version_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, VersionInfo]:
        known = {self.v1: VersionInfo(self.v1, self.prompt, 1), self.v2: VersionInfo(self.v2, self.prompt, 2)}
        return {v: known[v] for v in version_ids if v in known and caller == CALLER}


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with migrated_database(stack, "pvc_guardrails", schema=SCHEMA, migrations=SPEC.migrations) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with opened(database_url) as database:
        yield database


def batch(versions: Versions, deployment_id: uuid.UUID, value: float, count: int) -> bytes:
    point = {"versionId": str(versions.v2), "type": "latency", "name": "latency_ms", "value": value}
    return orjson.dumps({"metrics": [{**point, "deploymentId": str(deployment_id)}] * count})


async def guarded(service: DeploymentsService, versions: Versions) -> uuid.UUID:
    deployment = await service.create_deployment(
        caller=CALLER,
        prompt_id=str(versions.prompt),
        name=f"d-{uuid.uuid4().hex[:6]}",
        variants=[
            {"versionId": str(versions.v1), "weight": 50, "isControl": True},
            {"versionId": str(versions.v2), "weight": 50},
        ],
        status="active",
        guardrails=[RULE],
    )
    return deployment.id


async def status(service: DeploymentsService, deployment_id: uuid.UUID) -> str:
    return (await service.get_deployment(caller=CALLER, deployment_id=str(deployment_id))).status


async def test_a_failed_check_does_not_fail_the_committed_ingest(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = Versions()
    service = DeploymentsService(db, versions, guardrail_interval=0)
    deployment_id = await guarded(service, versions)

    async def database_gone(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT ... FOR UPDATE", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(repository, "lock_for_evaluation", database_gone)
        assert await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 900.0, 3)) == 3
    assert await status(service, deployment_id) == "active"  # not checked: the check failed
    # The next batch checks again, over all the points.
    assert await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 900.0, 1)) == 1
    assert await status(service, deployment_id) == "paused"


async def test_a_small_deployment_is_checked_with_every_batch(db: Database) -> None:
    versions = Versions()
    service = DeploymentsService(db, versions)  # the defaults: a check under 50 ms leaves no gap
    deployment_id = await guarded(service, versions)
    await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 100.0, 3))  # fine
    await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 5000.0, 3))
    assert await status(service, deployment_id) == "paused"


async def test_batches_within_the_gap_share_one_deferred_check(db: Database) -> None:
    versions = Versions()
    # Every gap is the full interval here, whatever a check costs.
    service = DeploymentsService(
        db, versions, guardrail_interval=0.5, check_cost_factor=1e9, cheap_check_seconds=0
    )
    deployment_id = await guarded(service, versions)
    await service.ingest(
        caller=CALLER, body=batch(versions, deployment_id, 100.0, 3)
    )  # checked at once: fine
    await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 5000.0, 3))  # within the interval
    await service.ingest(caller=CALLER, body=batch(versions, deployment_id, 5000.0, 3))
    assert await status(service, deployment_id) == "active"  # deferred, not skipped
    await asyncio.sleep(0.8)
    assert await status(service, deployment_id) == "paused"
    reason = (await service.get_deployment(caller=CALLER, deployment_id=str(deployment_id))).paused_reason
    assert reason is not None
    assert reason["samples"] == 9  # the deferred check saw every batch
