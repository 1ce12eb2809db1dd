"""Webhook subscriptions and their deliveries: the webhooks service's routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from pvc.gateway.auth import require
from pvc.gateway.clients import Services
from pvc.gateway.identity import Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok, page, page_request, uuid_or_404
from pvc.gateway.schemas import (
    CreateWebhook,
    DeliveryDetailOut,
    DeliveryOut,
    Page,
    UpdateWebhook,
    WebhookOut,
    WebhookWithSecretOut,
)
from pvc.v1 import webhooks_pb2

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=ERRORS)

WebhookId = Annotated[str, Path(alias="id", min_length=1, max_length=64, description="Subscription id")]
DeliveryId = Annotated[str, Path(alias="did", min_length=1, max_length=64, description="Delivery id")]
Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("webhooks:admin"))]


# -- converters (proto -> REST JSON) ---------------------------------------------------------------


def webhook_json(s: webhooks_pb2.Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "projectId": s.project_id,
        "url": s.url,
        "events": list(s.events),
        "description": s.description,
        "active": s.active,
        "disabledReason": s.disabled_reason or None,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
    }


def with_secret_json(reply: webhooks_pb2.SubscriptionWithSecret) -> dict[str, Any]:
    return {**webhook_json(reply.subscription), "secret": reply.secret}


def delivery_json(d: webhooks_pb2.Delivery, *, detail: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": d.id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "lastStatusCode": d.last_status_code or None,
        "lastError": d.last_error or None,
        "nextAttemptAt": d.next_attempt_at or None,
        "createdAt": d.created_at,
    }
    if detail:
        body["attemptHistory"] = [
            {
                "at": a.at,
                "statusCode": a.status_code or None,
                "error": a.error or None,
                "durationMs": a.duration_ms,
            }
            for a in d.attempt_history
        ]
    return body


# -- subscriptions ----------------------------------------------------------------------------------


@router.post(
    "", status_code=201, response_model=WebhookWithSecretOut, summary="Subscribe a URL (secret shown once)"
)
async def create_webhook(body: CreateWebhook, principal: Admin, services: Services) -> JSON:
    reply = await services.call(
        services.webhooks.CreateSubscription,
        webhooks_pb2.CreateSubscriptionRequest(
            url=body.url, events=body.events, description=body.description
        ),
        principal=principal,
    )
    return ok(with_secret_json(reply), 201)


@router.get("", response_model=Page[WebhookOut], summary="List webhook subscriptions, newest first")
async def list_webhooks(
    principal: Reader, services: Services, limit: Limit = 20, cursor: Cursor = None
) -> JSON:
    reply = await services.call(
        services.webhooks.ListSubscriptions,
        webhooks_pb2.ListSubscriptionsRequest(page=page_request(limit, cursor)),
        principal=principal,
    )
    return page([webhook_json(s) for s in reply.subscriptions], reply.page, limit)


@router.get("/{id}", response_model=WebhookOut, summary="Get a subscription (never its secret)")
async def get_webhook(webhook: WebhookId, principal: Reader, services: Services) -> JSON:
    reply = await services.call(
        services.webhooks.GetSubscription,
        webhooks_pb2.SubscriptionRef(id=uuid_or_404(webhook, what="webhook")),
        principal=principal,
    )
    return ok(webhook_json(reply))


@router.put("/{id}", response_model=WebhookOut, summary="Change url, events, active or description")
async def update_webhook(
    webhook: WebhookId, body: UpdateWebhook, principal: Admin, services: Services
) -> JSON:
    request = webhooks_pb2.UpdateSubscriptionRequest(id=uuid_or_404(webhook, what="webhook"))
    if body.url is not None:
        request.url = body.url
    if body.events is not None:
        request.events.extend(body.events)
        request.set_events = True
    if body.active is not None:
        request.active = body.active
    if body.description is not None:
        request.description = body.description
    reply = await services.call(services.webhooks.UpdateSubscription, request, principal=principal)
    return ok(webhook_json(reply))


@router.delete("/{id}", status_code=204, summary="Delete a subscription and its deliveries")
async def delete_webhook(webhook: WebhookId, principal: Admin, services: Services) -> Response:
    await services.call(
        services.webhooks.DeleteSubscription,
        webhooks_pb2.SubscriptionRef(id=uuid_or_404(webhook, what="webhook")),
        principal=principal,
    )
    return Response(status_code=204)


@router.post(
    "/{id}/rotate-secret",
    response_model=WebhookWithSecretOut,
    summary="New secret; the old one keeps signing alongside for 24 h",
)
async def rotate_secret(webhook: WebhookId, principal: Admin, services: Services) -> JSON:
    reply = await services.call(
        services.webhooks.RotateSecret,
        webhooks_pb2.SubscriptionRef(id=uuid_or_404(webhook, what="webhook")),
        principal=principal,
    )
    return ok(with_secret_json(reply))


@router.post(
    "/{id}/test", status_code=202, response_model=DeliveryOut, summary="Queue a webhook.test delivery"
)
async def test_webhook(webhook: WebhookId, principal: Admin, services: Services) -> JSON:
    reply = await services.call(
        services.webhooks.TestSubscription,
        webhooks_pb2.SubscriptionRef(id=uuid_or_404(webhook, what="webhook")),
        principal=principal,
    )
    return ok(delivery_json(reply), 202)


# -- deliveries -------------------------------------------------------------------------------------


@router.get(
    "/{id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="Deliveries of a subscription, newest first",
)
async def list_deliveries(
    webhook: WebhookId, principal: Reader, services: Services, limit: Limit = 20, cursor: Cursor = None
) -> JSON:
    reply = await services.call(
        services.webhooks.ListDeliveries,
        webhooks_pb2.ListDeliveriesRequest(
            subscription_id=uuid_or_404(webhook, what="webhook"), page=page_request(limit, cursor)
        ),
        principal=principal,
    )
    return page([delivery_json(d) for d in reply.deliveries], reply.page, limit)


@router.get(
    "/{id}/deliveries/{did}",
    response_model=DeliveryDetailOut,
    summary="A delivery with every attempt (attemptHistory)",
)
async def get_delivery(
    webhook: WebhookId, delivery: DeliveryId, principal: Reader, services: Services
) -> JSON:
    reply = await services.call(
        services.webhooks.GetDelivery,
        webhooks_pb2.DeliveryRef(
            subscription_id=uuid_or_404(webhook, what="webhook"), id=uuid_or_404(delivery, what="delivery")
        ),
        principal=principal,
    )
    return ok(delivery_json(reply, detail=True))


@router.post(
    "/{id}/deliveries/{did}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery again now (same webhook-id, fresh retry schedule)",
)
async def redeliver(webhook: WebhookId, delivery: DeliveryId, principal: Admin, services: Services) -> JSON:
    reply = await services.call(
        services.webhooks.Redeliver,
        webhooks_pb2.DeliveryRef(
            subscription_id=uuid_or_404(webhook, what="webhook"), id=uuid_or_404(delivery, what="delivery")
        ),
        principal=principal,
    )
    return ok(delivery_json(reply), 202)
