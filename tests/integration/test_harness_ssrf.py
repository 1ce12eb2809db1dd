"""Harness URLs under the SSRF policy: refused at registration (through Envoy), and at connect time.

The test stack allows harnesses on loopback only (PVC_HARNESS_ALLOWED_NETWORKS=127.0.0.0/8,::1/128), so
every other non-public target is refused exactly as in production. The connect-time checks drive the evals
service in-process on its own database with an injected resolver, to re-point a name between registration
and trigger (DNS rebinding) and to prove the connection goes to the checked address.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import pytest

from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.ssrf import OutboundPolicy, parse_networks
from pvc.devstack import Stack
from pvc.evals.clients import HarnessSender
from pvc.evals.models import SCHEMA, Evaluation
from pvc.evals.service import EvalsService, VersionInfo
from pvc.evals.servicer import SPEC

from .gating import TEST_SECRET
from .receiver import Receiver, receiving
from .scratch import migrated_database, opened
from .support import assert_error, unique

CALLER = Caller(project_id=uuid.uuid4(), actor_id="test", actor_name="test")
VERSION = VersionInfo(
    id=uuid.uuid4(), prompt_id=uuid.uuid4(), number=1, template="Answer {{q}}", variables=["q"], config={}
)

REFUSED = [
    ("http://10.0.0.5:8000/evaluate", "private"),
    ("http://192.168.1.10/evaluate", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"),
    ("http://100.100.100.200/latest/meta-data/", "carrier-grade NAT"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "private"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://no-such-host.invalid/evaluate", "does not resolve"),
    ("http://user:secret@127.0.0.1:9/evaluate", "credentials"),
    ("gopher://127.0.0.1:9/", "http or https"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_a_refused_harness_url_is_a_400_and_nothing_is_stored(
    api: httpx.Client, url: str, reason: str
) -> None:
    name = unique("h")
    error = assert_error(
        api.put(f"/api/v1/evaluations/harnesses/{name}", json={"url": url}), 400, "VALIDATION_ERROR"
    )
    assert reason in str(error["message"])
    assert reason in error["details"]["fields"]["url"]  # type: ignore[index]
    listed = api.get("/api/v1/evaluations/harnesses").json()["data"]
    assert name not in [h["name"] for h in listed]


def test_updating_a_harness_to_a_refused_url_keeps_the_old_one(api: httpx.Client) -> None:
    name = unique("h")
    assert (
        api.put(f"/api/v1/evaluations/harnesses/{name}", json={"url": "http://127.0.0.1:9/"}).status_code
        == 200
    )
    assert_error(
        api.put(f"/api/v1/evaluations/harnesses/{name}", json={"url": "http://10.1.2.3/"}),
        400,
        "VALIDATION_ERROR",
    )
    (mine,) = [h for h in api.get("/api/v1/evaluations/harnesses").json()["data"] if h["name"] == name]
    assert mine["url"] == "http://127.0.0.1:9/"


# -- connect time, in-process ---------------------------------------------------------------------------


class Versions:
    async def versions(self, *, caller: Caller, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, VersionInfo]:
        return {VERSION.id: VERSION} if VERSION.id in ids else {}


class Dns:
    """A resolver whose answers the test changes between registration and trigger."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.answers:
            raise OSError(f"unknown host {host}")
        return self.answers[host]


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with migrated_database(stack, "pvc_evals_ssrf", schema=SCHEMA, migrations=SPEC.migrations) as url:
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    yield from receiving()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with opened(database_url) as database:
        yield database


def evals(db: Database, dns: Dns, *, allowed: str) -> EvalsService:
    """The service as servicer.py builds it: one policy for registration and for the sender."""
    policy = OutboundPolicy(allowed_networks=parse_networks(allowed), resolver=dns)
    return EvalsService(
        db,
        versions=Versions(),
        sender=HarnessSender(policy=policy, request_timeout=5),
        policy=policy,
        public_url="http://127.0.0.1:1",
    )


async def settled(service: EvalsService, evaluation: Evaluation) -> Evaluation:
    """The evaluation once the trigger's send has been recorded (it runs after the trigger returns)."""
    for _ in range(200):
        current = await service.get_evaluation(caller=CALLER, evaluation_id=str(evaluation.id))
        if current.status != "pending":
            return current
        await asyncio.sleep(0.025)
    raise AssertionError("the trigger's outcome was never recorded")


async def test_the_trigger_connects_to_the_checked_address(db: Database, receiver: Receiver) -> None:
    dns = Dns()
    dns.answers["harness.pvc.test"] = ["127.0.0.1"]  # a name no real DNS knows: only the pin reaches it
    service = evals(db, dns, allowed="127.0.0.0/8")
    name = unique("h")
    url = f"http://harness.pvc.test:{receiver.port}/pinned-harness"
    await service.put_harness(caller=CALLER, name=name, url=url, timeout_seconds=30, secret=TEST_SECRET)
    evaluation = await service.trigger(caller=CALLER, version_id=str(VERSION.id), harness_name=name)
    assert (await settled(service, evaluation)).status == "running"
    (got,) = receiver.at("/pinned-harness")
    assert got.headers["host"] == f"harness.pvc.test:{receiver.port}"
    assert got.json["evaluationId"] == str(evaluation.id)


async def test_a_name_rebound_to_a_refused_address_is_never_contacted(
    db: Database, receiver: Receiver
) -> None:
    dns = Dns()
    dns.answers["rebind.pvc.test"] = ["93.184.216.34"]  # public when registered...
    service = evals(db, dns, allowed="")
    name = unique("h")
    url = f"http://rebind.pvc.test:{receiver.port}/rebound-harness"
    await service.put_harness(caller=CALLER, name=name, url=url, timeout_seconds=30, secret=TEST_SECRET)
    dns.answers["rebind.pvc.test"] = ["127.0.0.1"]  # ...loopback when triggered
    evaluation = await service.trigger(caller=CALLER, version_id=str(VERSION.id), harness_name=name)
    errored = await settled(service, evaluation)
    assert errored.status == "error"
    assert errored.details is not None
    assert errored.details["error"].startswith("refused: url resolves to a loopback address")
    assert receiver.at("/rebound-harness") == []
