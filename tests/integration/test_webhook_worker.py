"""The delivery worker driven in-process on its own database, with an injected clock and resolver.

The retry schedule is checked step by step by moving the clock, never by sleeping; each step uses a new
worker, so everything it needs is in PostgreSQL (a restart loses nothing).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.ssrf import OutboundPolicy, Resolver
from pvc.devstack import Stack
from pvc.webhooks.delivery import DeliveryWorker
from pvc.webhooks.models import SCHEMA
from pvc.webhooks.schedule import RETRY_DELAYS
from pvc.webhooks.service import WebhookService
from pvc.webhooks.servicer import SPEC
from pvc.webhooks.signing import SecretBox

from .receiver import Receiver, receiving
from .scratch import migrated_database, opened

BOX = SecretBox("test-server-key")
CALLER = Caller(project_id=uuid.uuid4(), actor_id="test", actor_name="test")


class Clock:
    def __init__(self) -> None:
        # Far from real time, so the stack's own workers could never find these rows due.
        self.now = datetime(2100, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def fake_resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers.get(host) or ["127.0.0.1"]

    return resolve


@pytest.fixture(scope="module")
def database_url(stack: Stack) -> Iterator[str]:
    with migrated_database(stack, "pvc_webhooks_worker", schema=SCHEMA, migrations=SPEC.migrations) as url:
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    yield from receiving()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with opened(database_url) as database:
        yield database


def service(db: Database, clock: Clock, resolver: Resolver | None = None) -> WebhookService:
    policy = OutboundPolicy(allow_private=True, resolver=resolver or fake_resolver({}))
    return WebhookService(db, box=BOX, policy=policy, clock=clock)


def worker(db: Database, clock: Clock, resolver: Resolver | None = None, **kwargs: object) -> DeliveryWorker:
    return DeliveryWorker(
        db=db,
        box=BOX,
        policy=OutboundPolicy(
            allow_private=bool(kwargs.pop("allow_private", True)), resolver=resolver or fake_resolver({})
        ),
        clock=clock,
        rand=random.Random(7).random,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_the_retry_schedule_then_dead(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    receiver.script["/down"] = [(500, {})] * 20
    svc = service(db, clock)
    subscription, _ = await svc.create_subscription(
        caller=CALLER, url=receiver.url("/down"), events=["*"], description=""
    )
    queued = await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    sid, did = str(subscription.id), str(queued.id)

    for step, base in enumerate(RETRY_DELAYS, start=1):
        assert await worker(db, clock).run_once() == 1
        delivery, attempts = await svc.get_delivery(caller=CALLER, subscription_id=sid, delivery_id=did)
        assert delivery.status == "failed"
        assert delivery.attempts == step
        assert len(attempts) == step
        assert delivery.next_attempt_at is not None
        delay = delivery.next_attempt_at - clock.now
        assert base * 0.9 <= delay <= base * 1.1, (step, delay)
        # Not due a moment before its time, due at it.
        clock.now = delivery.next_attempt_at - timedelta(milliseconds=1)
        assert await worker(db, clock).run_once() == 0
        clock.now = delivery.next_attempt_at

    assert await worker(db, clock).run_once() == 1
    delivery, attempts = await svc.get_delivery(caller=CALLER, subscription_id=sid, delivery_id=did)
    assert delivery.status == "dead"
    assert delivery.attempts == len(RETRY_DELAYS) + 1 == 8
    assert delivery.next_attempt_at is None
    assert [a.status_code for a in attempts] == [500] * 8
    clock.now += timedelta(days=30)
    assert await worker(db, clock).run_once() == 0
    sent = receiver.at("/down")
    assert len(sent) == 8
    assert {r.headers["webhook-id"] for r in sent} == {str(queued.event_id)}

    # A redelivery starts a fresh schedule: the next failure waits the first step again.
    await svc.redeliver(caller=CALLER, subscription_id=sid, delivery_id=did)
    assert await worker(db, clock).run_once() == 1
    delivery, _ = await svc.get_delivery(caller=CALLER, subscription_id=sid, delivery_id=did)
    assert delivery.status == "failed"
    assert delivery.attempts == 9
    assert delivery.next_attempt_at is not None
    assert timedelta(seconds=4.5) <= delivery.next_attempt_at - clock.now <= timedelta(seconds=5.5)


async def test_retry_after_is_honoured(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    receiver.script["/busy"] = [
        (429, {"Retry-After": "120"}),
        (503, {"Retry-After": "Fri, 01 Jan 2100 01:00:00 GMT"}),
    ]
    svc = service(db, clock)
    subscription, _ = await svc.create_subscription(
        caller=CALLER, url=receiver.url("/busy"), events=["*"], description=""
    )
    queued = await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    assert await worker(db, clock).run_once() == 1
    delivery, _ = await svc.get_delivery(
        caller=CALLER, subscription_id=str(subscription.id), delivery_id=str(queued.id)
    )
    assert delivery.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.now = delivery.next_attempt_at
    assert await worker(db, clock).run_once() == 1
    delivery, _ = await svc.get_delivery(
        caller=CALLER, subscription_id=str(subscription.id), delivery_id=str(queued.id)
    )
    assert delivery.next_attempt_at == datetime(2100, 1, 1, 1, 0, tzinfo=UTC)
    clock.now = delivery.next_attempt_at
    assert await worker(db, clock).run_once() == 1
    delivery, _ = await svc.get_delivery(
        caller=CALLER, subscription_id=str(subscription.id), delivery_id=str(queued.id)
    )
    assert delivery.status == "succeeded"


async def test_redirects_are_not_followed(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    receiver.script["/moved"] = [(302, {"Location": receiver.url("/elsewhere")})]
    svc = service(db, clock)
    subscription, _ = await svc.create_subscription(
        caller=CALLER, url=receiver.url("/moved"), events=["*"], description=""
    )
    queued = await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    assert await worker(db, clock).run_once() == 1
    delivery, _ = await svc.get_delivery(
        caller=CALLER, subscription_id=str(subscription.id), delivery_id=str(queued.id)
    )
    assert delivery.status == "failed"
    assert delivery.last_status_code == 302
    assert "redirect" in delivery.last_error
    assert receiver.at("/elsewhere") == []


async def test_the_connection_goes_to_the_checked_address(db: Database, receiver: Receiver) -> None:
    """The name is resolved once by the guard; the request goes to that address with the original Host."""
    clock = Clock()
    resolver = fake_resolver({"hooks.pvc.test": ["127.0.0.1"]})
    svc = service(db, clock, resolver)
    url = f"http://hooks.pvc.test:{receiver.port}/pinned"
    subscription, secret = await svc.create_subscription(caller=CALLER, url=url, events=["*"], description="")
    await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    assert await worker(db, clock, resolver).run_once() == 1
    (got,) = receiver.at("/pinned")
    assert got.headers["host"] == f"hooks.pvc.test:{receiver.port}"
    assert got.verifies(secret)


async def test_a_refused_address_at_send_time_is_not_contacted(db: Database, receiver: Receiver) -> None:
    """DNS may change after the subscription was checked: the send-time check refuses without connecting."""
    clock = Clock()
    svc = service(db, clock, fake_resolver({"rebind.pvc.test": ["93.184.216.34"]}))
    url = f"http://rebind.pvc.test:{receiver.port}/rebind"
    subscription, _ = await svc.create_subscription(caller=CALLER, url=url, events=["*"], description="")
    queued = await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    rebound = fake_resolver({"rebind.pvc.test": ["127.0.0.1"]})
    assert await worker(db, clock, rebound, allow_private=False).run_once() == 1
    delivery, attempts = await svc.get_delivery(
        caller=CALLER, subscription_id=str(subscription.id), delivery_id=str(queued.id)
    )
    assert delivery.status == "failed"
    assert "loopback" in delivery.last_error
    assert attempts[0].status_code is None
    assert receiver.at("/rebind") == []


async def test_concurrent_workers_never_send_a_delivery_twice(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    svc = service(db, clock)
    subscription, _ = await svc.create_subscription(
        caller=CALLER, url=receiver.url("/many"), events=["*"], description=""
    )
    for _ in range(30):
        await svc.test(caller=CALLER, subscription_id=str(subscription.id))
    workers = [worker(db, clock, concurrency=8) for _ in range(3)]
    total = 0
    while True:
        counts = await asyncio.gather(*(w.run_once() for w in workers))
        if not sum(counts):
            break
        total += sum(counts)
    assert total == 30
    ids = [r.headers["webhook-id"] for r in receiver.at("/many")]
    assert len(ids) == 30
    assert len(set(ids)) == 30
