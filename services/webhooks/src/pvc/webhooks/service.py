"""Domain rules of webhooks: subscriptions, secrets and rotation, fan-out, test and redelivery.

No gRPC or HTTP types here. Sending lives in `delivery`, reading the stream in `consumer`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.core.clock import utcnow
from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.errors import Conflict, NotFound, ValidationFailed
from pvc.core.outbox import event_envelope
from pvc.core.pagination import (
    Page,
    clamp_limit,
    decode_time_cursor,
    encode_time_cursor,
)
from pvc.core.ssrf import OutboundPolicy
from pvc.webhooks import repository as repo
from pvc.webhooks.models import Attempt, Delivery, Subscription
from pvc.webhooks.signing import SecretBox, new_secret

Clock = Callable[[], datetime]

# Every event type of DESIGN.md; a subscription lists some of them or "*".
EVENT_TYPES = frozenset(
    {
        "prompt.created",
        "prompt.updated",
        "prompt.archived",
        "version.created",
        "tag.moved",
        "tag.removed",
        "evaluation.completed",
        "promotion.succeeded",
        "promotion.blocked",
        "promotion.overridden",
        "promotion.rolled_back",
        "deployment.created",
        "deployment.updated",
        "deployment.guardrail_tripped",
        "api_key.created",
        "api_key.revoked",
        "webhook.test",
    }
)
WILDCARD = "*"
MAX_DESCRIPTION_CHARS = 1000
ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class IncomingEvent:
    """An event read from the stream: its envelope fields, the exact bytes, and its trace headers."""

    id: uuid.UUID
    type: str
    project_id: uuid.UUID
    body: str
    trace: dict[str, str]


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"fields": {field_name: message}})


def validate_events(events: Sequence[str]) -> list[str]:
    if not events:
        raise _invalid("events", "must list at least one event type, or ['*']")
    unknown = sorted({e for e in events if e != WILDCARD and e not in EVENT_TYPES})
    if unknown:
        raise _invalid("events", f"unknown event types: {', '.join(unknown)}")
    if WILDCARD in events:
        return [WILDCARD]
    return sorted(set(events))


def validate_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise _invalid("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters")


def _page_key(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    return decode_time_cursor(cursor)


def fan_out_rows(
    event: IncomingEvent, subscription_ids: Sequence[uuid.UUID], *, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "subscription_id": subscription_id,
            "project_id": event.project_id,
            "event_id": event.id,
            "event_type": event.type,
            "body": event.body,
            "trace": event.trace,
            "status": "pending",
            "attempts": 0,
            "retry_step": 0,
            "last_error": "",
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for subscription_id in subscription_ids
    ]


async def fan_out(db: Database, events: Sequence[IncomingEvent], *, now: datetime) -> int:
    """One pending delivery per (event, matching subscription); an event seen again adds nothing."""
    # One read for the whole batch, outside any transaction: most events belong to projects with no
    # subscription at all, and then nothing is written.
    async with db.read() as session:
        subscriptions = await repo.active_subscriptions(session, project_ids=[e.project_id for e in events])
    rows: list[dict[str, Any]] = []
    for event in events:
        matching = [
            sid
            for sid, project_id, types in subscriptions
            if project_id == event.project_id and (WILDCARD in types or event.type in types)
        ]
        rows += fan_out_rows(event, matching, now=now)
    if not rows:
        return 0
    async with db.transaction() as session:
        return await repo.insert_deliveries(session, rows)


class WebhookService:
    def __init__(
        self,
        db: Database,
        *,
        box: SecretBox,
        policy: OutboundPolicy,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.box = box
        self.policy = policy
        self.clock = clock

    async def _check_url(self, url: str) -> None:
        await self.policy.check(url)

    # -- subscriptions -------------------------------------------------------------------------------

    async def create_subscription(
        self, *, caller: Caller, url: str, events: Sequence[str], description: str
    ) -> tuple[Subscription, str]:
        chosen = validate_events(events)
        validate_description(description)
        await self._check_url(url)
        secret = new_secret()
        moment = self.clock()
        subscription_id = uuid.uuid4()
        subscription = Subscription(
            id=subscription_id,
            project_id=caller.project_id,
            url=url,
            events=chosen,
            description=description,
            secret_enc=self.box.seal(secret, subscription_id=subscription_id),
            created_at=moment,
            updated_at=moment,
        )
        async with self.db.transaction() as session:
            session.add(subscription)
        return subscription, secret

    async def list_subscriptions(self, *, caller: Caller, limit: int, cursor: str) -> Page[Subscription]:
        limit = clamp_limit(limit)
        after = _page_key(cursor)
        async with self.db.read() as session:
            rows = await repo.list_subscriptions(
                session, project_id=caller.project_id, limit=limit, after=after
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = encode_time_cursor(page[-1].created_at, page[-1].id) if more else None
        return Page(page, next_cursor)

    async def get_subscription(self, *, caller: Caller, subscription_id: str) -> Subscription:
        async with self.db.read() as session:
            return await self._subscription(session, caller=caller, subscription_id=subscription_id)

    async def update_subscription(
        self,
        *,
        caller: Caller,
        subscription_id: str,
        url: str | None,
        events: Sequence[str] | None,
        active: bool | None,
        description: str | None,
    ) -> Subscription:
        chosen = validate_events(events) if events is not None else None
        if description is not None:
            validate_description(description)
        if url is not None:
            await self._check_url(url)
        async with self.db.transaction() as session:
            subscription = await self._subscription(
                session, caller=caller, subscription_id=subscription_id, for_update=True
            )
            if url is not None:
                subscription.url = url
            if chosen is not None:
                subscription.events = chosen
            if description is not None:
                subscription.description = description
            if active is not None:
                subscription.active = active
                if active:
                    subscription.disabled_reason = ""
            subscription.updated_at = self.clock()
            session.add(subscription)
        return subscription

    async def delete_subscription(self, *, caller: Caller, subscription_id: str) -> None:
        async with self.db.transaction() as session:
            subscription = await self._subscription(
                session, caller=caller, subscription_id=subscription_id, for_update=True
            )
            # Deliveries and attempts go with it (ON DELETE CASCADE).
            await session.delete(subscription)

    async def rotate_secret(self, *, caller: Caller, subscription_id: str) -> tuple[Subscription, str]:
        secret = new_secret()
        async with self.db.transaction() as session:
            subscription = await self._subscription(
                session, caller=caller, subscription_id=subscription_id, for_update=True
            )
            moment = self.clock()
            # The secret being replaced keeps signing alongside the new one for 24 h.
            subscription.previous_secret_enc = subscription.secret_enc
            subscription.previous_secret_until = moment + ROTATION_OVERLAP
            subscription.secret_enc = self.box.seal(secret, subscription_id=subscription.id)
            subscription.updated_at = moment
            session.add(subscription)
        return subscription, secret

    async def test(self, *, caller: Caller, subscription_id: str) -> Delivery:
        """Queue a `webhook.test` delivery for this subscription only (it never goes through the stream)."""
        moment = self.clock()
        async with self.db.transaction() as session:
            subscription = await self._subscription(session, caller=caller, subscription_id=subscription_id)
            if not subscription.active:
                raise Conflict("the subscription is disabled; enable it first", details={"active": False})
            event_id = uuid.uuid4()
            envelope = event_envelope(
                event_id=event_id,
                type="webhook.test",
                project_id=caller.project_id,
                at=moment,
                data={"subscriptionId": str(subscription.id), "message": "This is a test delivery from pvc."},
            )
            event = IncomingEvent(
                id=event_id,
                type="webhook.test",
                project_id=caller.project_id,
                body=orjson.dumps(envelope).decode(),
                trace={},
            )
            (row,) = fan_out_rows(event, [subscription.id], now=moment)
            delivery = Delivery(**row)
            session.add(delivery)
            await session.flush()
            await repo.notify_deliveries(session)
        return delivery

    # -- deliveries ----------------------------------------------------------------------------------

    async def list_deliveries(
        self, *, caller: Caller, subscription_id: str, limit: int, cursor: str
    ) -> Page[Delivery]:
        limit = clamp_limit(limit)
        after = _page_key(cursor)
        async with self.db.read() as session:
            subscription = await self._subscription(session, caller=caller, subscription_id=subscription_id)
            rows = await repo.list_deliveries(
                session, subscription_id=subscription.id, limit=limit, after=after
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = encode_time_cursor(page[-1].created_at, page[-1].id) if more else None
        return Page(page, next_cursor)

    async def get_delivery(
        self, *, caller: Caller, subscription_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]]:
        async with self.db.read() as session:
            delivery = await self._delivery(
                session, caller=caller, subscription_id=subscription_id, delivery_id=delivery_id
            )
            return delivery, await repo.list_attempts(session, delivery_id=delivery.id)

    async def redeliver(self, *, caller: Caller, subscription_id: str, delivery_id: str) -> Delivery:
        """Queue the delivery again now, with a fresh retry schedule and the same webhook-id."""
        async with self.db.transaction() as session:
            delivery = await self._delivery(
                session,
                caller=caller,
                subscription_id=subscription_id,
                delivery_id=delivery_id,
                for_update=True,
            )
            moment = self.clock()
            delivery.status = "pending"
            delivery.retry_step = 0
            delivery.next_attempt_at = moment
            delivery.updated_at = moment
            session.add(delivery)
            await repo.notify_deliveries(session)
        return delivery

    # -- lookups -------------------------------------------------------------------------------------

    async def _subscription(
        self, session: AsyncSession, *, caller: Caller, subscription_id: str, for_update: bool = False
    ) -> Subscription:
        parsed = repo.parse_uuid(subscription_id)
        found = (
            await repo.find_subscription(
                session, project_id=caller.project_id, subscription_id=parsed, for_update=for_update
            )
            if parsed
            else None
        )
        if found is None:
            raise NotFound(f"webhook '{subscription_id}' not found")
        return found

    async def _delivery(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        subscription_id: str,
        delivery_id: str,
        for_update: bool = False,
    ) -> Delivery:
        subscription = await self._subscription(session, caller=caller, subscription_id=subscription_id)
        parsed = repo.parse_uuid(delivery_id)
        found = (
            await repo.find_delivery(
                session, subscription_id=subscription.id, delivery_id=parsed, for_update=for_update
            )
            if parsed
            else None
        )
        if found is None:
            raise NotFound(f"delivery '{delivery_id}' not found")
        return found
