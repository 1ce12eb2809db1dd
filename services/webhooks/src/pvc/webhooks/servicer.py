"""Thin adapter: protobuf requests in, domain calls, protobuf messages out. Also the service's SPEC."""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from pvc.core.clock import rfc3339
from pvc.core.context import current_caller
from pvc.core.db import Database
from pvc.core.grpc_server import Registrar
from pvc.core.runner import ServiceSpec
from pvc.core.settings import ServiceSettings
from pvc.v1 import common_pb2, webhooks_pb2, webhooks_pb2_grpc
from pvc.webhooks.consumer import EventConsumer, durable_name
from pvc.webhooks.delivery import DeliveryWorker
from pvc.webhooks.models import SCHEMA, Attempt, Delivery, Subscription, outbox
from pvc.webhooks.service import WebhookService
from pvc.webhooks.settings import WebhookSettings
from pvc.webhooks.signing import SecretBox

# grpc ships no type information; the context is only passed through.
Ctx: TypeAlias = Any


def subscription_message(s: Subscription) -> webhooks_pb2.Subscription:
    return webhooks_pb2.Subscription(
        id=str(s.id),
        project_id=str(s.project_id),
        url=s.url,
        events=s.events,
        description=s.description,
        active=s.active,
        disabled_reason=s.disabled_reason,
        created_at=rfc3339(s.created_at),
        updated_at=rfc3339(s.updated_at),
    )


def attempt_message(a: Attempt) -> webhooks_pb2.Attempt:
    return webhooks_pb2.Attempt(
        at=rfc3339(a.at), status_code=a.status_code or 0, error=a.error, duration_ms=a.duration_ms
    )


def delivery_message(d: Delivery, attempts: list[Attempt] | None = None) -> webhooks_pb2.Delivery:
    return webhooks_pb2.Delivery(
        id=str(d.id),
        subscription_id=str(d.subscription_id),
        event_id=str(d.event_id),
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code or 0,
        last_error=d.last_error,
        next_attempt_at=rfc3339(d.next_attempt_at) if d.next_attempt_at else "",
        created_at=rfc3339(d.created_at),
        attempt_history=[attempt_message(a) for a in attempts or ()],
    )


def page_info(limit: int, next_cursor: str | None) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(limit=limit, next_cursor=next_cursor or "")


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, service: WebhookService) -> None:
        self.service = service

    async def CreateSubscription(
        self, request: webhooks_pb2.CreateSubscriptionRequest, context: Ctx
    ) -> webhooks_pb2.SubscriptionWithSecret:
        subscription, secret = await self.service.create_subscription(
            caller=current_caller(),
            url=request.url,
            events=list(request.events),
            description=request.description,
        )
        return webhooks_pb2.SubscriptionWithSecret(
            subscription=subscription_message(subscription), secret=secret
        )

    async def ListSubscriptions(
        self, request: webhooks_pb2.ListSubscriptionsRequest, context: Ctx
    ) -> webhooks_pb2.ListSubscriptionsResponse:
        page = await self.service.list_subscriptions(
            caller=current_caller(), limit=request.page.limit, cursor=request.page.cursor
        )
        return webhooks_pb2.ListSubscriptionsResponse(
            subscriptions=[subscription_message(s) for s in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )

    async def GetSubscription(
        self, request: webhooks_pb2.SubscriptionRef, context: Ctx
    ) -> webhooks_pb2.Subscription:
        return subscription_message(
            await self.service.get_subscription(caller=current_caller(), subscription_id=request.id)
        )

    async def UpdateSubscription(
        self, request: webhooks_pb2.UpdateSubscriptionRequest, context: Ctx
    ) -> webhooks_pb2.Subscription:
        subscription = await self.service.update_subscription(
            caller=current_caller(),
            subscription_id=request.id,
            url=request.url if request.HasField("url") else None,
            events=list(request.events) if request.set_events else None,
            active=request.active if request.HasField("active") else None,
            description=request.description if request.HasField("description") else None,
        )
        return subscription_message(subscription)

    async def DeleteSubscription(
        self, request: webhooks_pb2.SubscriptionRef, context: Ctx
    ) -> webhooks_pb2.DeleteSubscriptionResponse:
        await self.service.delete_subscription(caller=current_caller(), subscription_id=request.id)
        return webhooks_pb2.DeleteSubscriptionResponse()

    async def RotateSecret(
        self, request: webhooks_pb2.SubscriptionRef, context: Ctx
    ) -> webhooks_pb2.SubscriptionWithSecret:
        subscription, secret = await self.service.rotate_secret(
            caller=current_caller(), subscription_id=request.id
        )
        return webhooks_pb2.SubscriptionWithSecret(
            subscription=subscription_message(subscription), secret=secret
        )

    async def TestSubscription(
        self, request: webhooks_pb2.SubscriptionRef, context: Ctx
    ) -> webhooks_pb2.Delivery:
        return delivery_message(await self.service.test(caller=current_caller(), subscription_id=request.id))

    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: Ctx
    ) -> webhooks_pb2.ListDeliveriesResponse:
        page = await self.service.list_deliveries(
            caller=current_caller(),
            subscription_id=request.subscription_id,
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return webhooks_pb2.ListDeliveriesResponse(
            deliveries=[delivery_message(d) for d in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )

    async def GetDelivery(self, request: webhooks_pb2.DeliveryRef, context: Ctx) -> webhooks_pb2.Delivery:
        delivery, attempts = await self.service.get_delivery(
            caller=current_caller(), subscription_id=request.subscription_id, delivery_id=request.id
        )
        return delivery_message(delivery, attempts)

    async def Redeliver(self, request: webhooks_pb2.DeliveryRef, context: Ctx) -> webhooks_pb2.Delivery:
        delivery = await self.service.redeliver(
            caller=current_caller(), subscription_id=request.subscription_id, delivery_id=request.id
        )
        return delivery_message(delivery)


def _settings(settings: ServiceSettings) -> WebhookSettings:
    assert isinstance(settings, WebhookSettings)
    return settings


def _servicers(settings: ServiceSettings, db: Database) -> list[tuple[Registrar, object]]:
    s = _settings(settings)
    service = WebhookService(
        db,
        box=SecretBox(s.webhook_encryption_key),
        policy=s.outbound_policy(),
    )
    return [(webhooks_pb2_grpc.add_WebhookServiceServicer_to_server, WebhookServicer(service))]


def _background(settings: ServiceSettings, db: Database) -> list[Coroutine[Any, Any, None]]:
    s = _settings(settings)
    consumer = EventConsumer(
        db=db,
        nats_url=s.nats_url,
        durable=durable_name(configured=s.webhook_consumer, database_url=s.database_url),
        inactive_seconds=s.webhook_consumer_inactive_seconds,
    )
    worker = DeliveryWorker(
        db=db,
        box=SecretBox(s.webhook_encryption_key),
        policy=s.outbound_policy(),
        database_url=s.database_url,
        concurrency=s.webhook_concurrency,
    )
    return [consumer.run(), worker.run()]


SPEC = ServiceSpec(
    name="webhooks",
    schema=SCHEMA,
    migrations=Path(__file__).parent / "migrations",
    settings=WebhookSettings,
    service_names=[webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name],
    servicers=_servicers,
    outbox=outbox,
    background=_background,
)
