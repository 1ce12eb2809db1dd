"""Webhooks through the real stack: subscriptions, signed deliveries of real events, retries, 410, errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import nats
import orjson
import psycopg
import pytest

from pvc.devstack import Stack
from pvc.webhooks.signing import SECRET_PREFIX

from .receiver import Receiver, receiving
from .support import ClientFactory, assert_error, unique

REGISTRY_EVENTS = [
    "prompt.created",
    "version.created",
    "tag.moved",
    "tag.removed",
    "prompt.updated",
    "prompt.archived",
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def subscribe(api: httpx.Client, url: str, events: list[str]) -> dict[str, object]:
    response = api.post("/api/v1/webhooks", json={"url": url, "events": events, "description": "test"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def deliveries(api: httpx.Client, webhook_id: object, **params: object) -> list[dict[str, object]]:
    response = api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def wait_for(check: object, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def prompt_lifecycle(api: httpx.Client) -> str:
    name = unique()
    assert api.post("/api/v1/prompts", json={"name": name, "template": "one"}).status_code == 201
    assert api.post(f"/api/v1/prompts/{name}/versions", json={"template": "two"}).status_code == 201
    assert api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 2}).status_code in (200, 201)
    assert api.delete(f"/api/v1/prompts/{name}/tags/staging").status_code == 204
    assert api.put(f"/api/v1/prompts/{name}", json={"description": "d"}).status_code == 200
    assert api.delete(f"/api/v1/prompts/{name}").status_code == 200
    return name


def test_create_shows_the_secret_once(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/once"), ["version.created", "version.created", "tag.moved"])
    secret = created["secret"]
    assert isinstance(secret, str)
    assert secret.startswith(SECRET_PREFIX)
    assert created["events"] == ["tag.moved", "version.created"]
    assert created["active"] is True
    fetched = api.get(f"/api/v1/webhooks/{created['id']}").json()
    assert "secret" not in fetched
    assert fetched == {k: v for k, v in created.items() if k != "secret"}
    listed = api.get("/api/v1/webhooks", params={"limit": 100}).json()["data"]
    assert any(w["id"] == created["id"] for w in listed)
    assert all("secret" not in w for w in listed)
    assert secret not in api.get("/api/v1/webhooks", params={"limit": 100}).text


def test_secrets_are_encrypted_at_rest(stack: Stack, api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/at-rest"), ["*"])
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT secret_enc FROM webhooks.subscriptions WHERE id = %s", (created["id"],)
        ).fetchone()
    assert row is not None
    stored = bytes(row[0])
    secret = str(created["secret"])
    assert secret.encode() not in stored
    assert secret.removeprefix(SECRET_PREFIX).encode() not in stored


def test_every_registry_event_is_delivered_signed_and_filters_hold(
    api: httpx.Client, receiver: Receiver
) -> None:
    everything = subscribe(api, receiver.url("/all"), ["*"])
    versions = subscribe(api, receiver.url("/versions"), ["version.created"])
    name = prompt_lifecycle(api)

    def mine(r: object) -> bool:
        data = r.json["data"]  # type: ignore[attr-defined]
        return data.get("promptName", data.get("name")) == name or data.get("promptName") == name

    got = receiver.wait("/all", count=len(REGISTRY_EVENTS) + 1, where=mine)
    assert sorted(r.json["type"] for r in got) == sorted([*REGISTRY_EVENTS, "version.created"])
    for r in got:
        assert r.verifies(str(everything["secret"]))
        assert not r.verifies(str(versions["secret"]))
        assert r.headers["webhook-id"] == r.json["id"]
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
        assert r.headers["content-type"] == "application/json"
        assert set(r.json) == {"id", "type", "timestamp", "projectId", "data"}
    only_versions = receiver.wait("/versions", count=2, where=mine)
    assert [r.json["type"] for r in only_versions] == ["version.created", "version.created"]
    assert all(r.verifies(str(versions["secret"])) for r in only_versions)
    # Nothing else arrives for the filtered subscription.
    time.sleep(0.5)
    assert {r.json["type"] for r in receiver.at("/versions")} == {"version.created"}

    listed = deliveries(api, everything["id"])
    ids = {r.json["id"] for r in got}
    records = [d for d in listed if d["eventId"] in ids]
    assert len(records) == len(got)
    wait_for(
        lambda: all(
            d["status"] == "succeeded" for d in deliveries(api, everything["id"]) if d["eventId"] in ids
        )
    )
    record = next(d for d in deliveries(api, everything["id"]) if d["eventId"] in ids)
    assert set(record) == {
        "id",
        "eventId",
        "eventType",
        "status",
        "attempts",
        "lastStatusCode",
        "lastError",
        "nextAttemptAt",
        "createdAt",
    }
    assert record["attempts"] == 1
    assert record["lastStatusCode"] == 200
    assert record["nextAttemptAt"] is None
    detail = api.get(f"/api/v1/webhooks/{everything['id']}/deliveries/{record['id']}").json()
    assert len(detail["attemptHistory"]) == 1
    assert detail["attemptHistory"][0]["statusCode"] == 200
    assert detail["attemptHistory"][0]["durationMs"] >= 0


def test_test_delivery_is_signed(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/ping"), ["version.created"])
    response = api.post(f"/api/v1/webhooks/{created['id']}/test")
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["eventType"] == "webhook.test"
    assert queued["status"] == "pending"
    (got,) = receiver.wait("/ping", count=1)
    assert got.json["type"] == "webhook.test"
    assert got.json["id"] == queued["eventId"]
    assert got.verifies(str(created["secret"]))


def test_retries_keep_the_webhook_id_honour_retry_after_then_succeed(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.script["/flaky"] = [(500, {}), (429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    created = subscribe(api, receiver.url("/flaky"), ["webhook.test"])
    queued = api.post(f"/api/v1/webhooks/{created['id']}/test").json()
    # The 500 waits the schedule's first step (5 s ± 10%); 429 and 503 come back after Retry-After (1 s).
    got = receiver.wait("/flaky", count=4, timeout=30)
    assert len(got) == 4
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert got[0].body == got[-1].body
    assert 4.0 < got[1].at - got[0].at < 8
    assert got[2].at - got[1].at < 4
    assert got[3].at - got[2].at < 4
    assert all(r.verifies(str(created["secret"])) for r in got)

    def done() -> bool:
        return (
            api.get(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}").json()["status"]
            == "succeeded"
        )

    wait_for(done)
    detail = api.get(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}").json()
    assert detail["attempts"] == 4
    assert [a["statusCode"] for a in detail["attemptHistory"]] == [500, 429, 503, 200]
    assert detail["attemptHistory"][0]["error"] == "HTTP 500"
    assert detail["lastError"] is None


def test_410_disables_the_subscription(api: httpx.Client, receiver: Receiver) -> None:
    receiver.script["/gone"] = [(410, {})]
    created = subscribe(api, receiver.url("/gone"), ["webhook.test"])
    queued = api.post(f"/api/v1/webhooks/{created['id']}/test").json()
    receiver.wait("/gone", count=1)

    def disabled() -> bool:
        return api.get(f"/api/v1/webhooks/{created['id']}").json()["active"] is False

    wait_for(disabled)
    subscription = api.get(f"/api/v1/webhooks/{created['id']}").json()
    assert "410" in subscription["disabledReason"]
    delivery = api.get(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}").json()
    assert delivery["status"] == "dead"
    assert delivery["lastStatusCode"] == 410
    assert_error(api.post(f"/api/v1/webhooks/{created['id']}/test"), 409, "CONFLICT")
    # Enabling again clears the reason; a redelivery then goes out with the same webhook-id.
    enabled = api.put(f"/api/v1/webhooks/{created['id']}", json={"active": True}).json()
    assert enabled["active"] is True
    assert enabled["disabledReason"] is None
    response = api.post(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}/redeliver")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    got = receiver.wait("/gone", count=2)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == queued["eventId"]


def test_rotation_signs_with_both_secrets(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/rotate"), ["webhook.test"])
    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    assert new_secret.startswith(SECRET_PREFIX)
    api.post(f"/api/v1/webhooks/{created['id']}/test")
    (got,) = receiver.wait("/rotate", count=1)
    assert len(got.headers["webhook-signature"].split()) == 2
    assert got.verifies(new_secret)
    assert got.verifies(str(created["secret"]))


def test_update_and_delete(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/update"), ["*"])
    updated = api.put(
        f"/api/v1/webhooks/{created['id']}", json={"url": receiver.url("/moved"), "events": ["tag.moved"]}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["url"] == receiver.url("/moved")
    assert updated.json()["events"] == ["tag.moved"]
    assert "secret" not in updated.json()
    assert api.delete(f"/api/v1/webhooks/{created['id']}").status_code == 204
    assert_error(api.get(f"/api/v1/webhooks/{created['id']}"), 404, "NOT_FOUND")
    assert_error(api.delete(f"/api/v1/webhooks/{created['id']}"), 404, "NOT_FOUND")


def test_the_same_event_twice_makes_one_delivery(stack: Stack, api: httpx.Client, receiver: Receiver) -> None:
    """JetStream may deliver an event again (or a relay republish it after the window): fan-out is idempotent."""
    created = subscribe(api, receiver.url("/twice"), ["prompt.updated"])
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "prompt.updated",
        "timestamp": "2026-01-01T00:00:00Z",
        "projectId": created["projectId"],
        "data": {"promptId": str(uuid.uuid4())},
    }

    async def publish_twice() -> None:
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            for _ in range(2):  # different Nats-Msg-Id, so the stream keeps both copies
                await js.publish(
                    "pvc.events.prompt.updated",
                    orjson.dumps(envelope),
                    headers={"Nats-Msg-Id": str(uuid.uuid4())},
                )
        finally:
            await nc.close()

    asyncio.run(publish_twice())
    receiver.wait("/twice", count=1)
    time.sleep(1.0)
    assert len(receiver.at("/twice")) == 1
    assert len([d for d in deliveries(api, created["id"]) if d["eventId"] == envelope["id"]]) == 1


# -- bad input and scopes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x"}, "events"),
        ({"url": 5, "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": "version.created"}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": ["nope.happened"]}, "events"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "http://user:pw@example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "http://example.com/" + "a" * 2100, "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "mine"}, "secret"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "description": "d" * 1001}, "description"),
    ],
)
def test_create_refuses_bad_input(api: httpx.Client, body: dict[str, object], field: str) -> None:
    error = assert_error(api.post("/api/v1/webhooks", json=body), 400, "VALIDATION_ERROR")
    assert field in str(error["details"])


def test_update_refuses_bad_input(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/bad-update"), ["*"])
    for body in ({"active": "yes"}, {"events": ["bogus"]}, {"url": "gopher://x"}, {"unknown": 1}):
        assert_error(api.put(f"/api/v1/webhooks/{created['id']}", json=body), 400, "VALIDATION_ERROR")


def test_oversize_body_is_refused(api: httpx.Client) -> None:
    body = {"url": "http://127.0.0.1:9/x", "events": ["*"], "description": "x" * (1024 * 1024 + 10)}
    assert_error(api.post("/api/v1/webhooks", json=body), 413, "PAYLOAD_TOO_LARGE")


def test_unknown_ids_are_404(api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/ids"), ["*"])
    missing = str(uuid.uuid4())
    assert_error(api.get(f"/api/v1/webhooks/{missing}"), 404, "NOT_FOUND")
    assert_error(api.get("/api/v1/webhooks/not-a-uuid"), 404, "NOT_FOUND")
    assert_error(api.put(f"/api/v1/webhooks/{missing}", json={"active": False}), 404, "NOT_FOUND")
    assert_error(api.post(f"/api/v1/webhooks/{missing}/rotate-secret"), 404, "NOT_FOUND")
    assert_error(api.post(f"/api/v1/webhooks/{missing}/test"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/webhooks/{missing}/deliveries"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/webhooks/{created['id']}/deliveries/{missing}"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/webhooks/{created['id']}/deliveries/nope"), 404, "NOT_FOUND")
    assert_error(
        api.post(f"/api/v1/webhooks/{created['id']}/deliveries/{missing}/redeliver"), 404, "NOT_FOUND"
    )
    assert_error(api.get("/api/v1/webhooks", params={"cursor": "garbage"}), 400, "VALIDATION_ERROR")
    assert_error(api.get("/api/v1/webhooks", params={"limit": 0}), 400, "VALIDATION_ERROR")


def test_other_projects_see_nothing(api: httpx.Client, client_for: ClientFactory, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/private"), ["webhook.test"])
    queued = api.post(f"/api/v1/webhooks/{created['id']}/test").json()
    other = client_for(scopes=["admin"], project=unique("proj"))
    assert all(
        w["id"] != created["id"] for w in other.get("/api/v1/webhooks", params={"limit": 100}).json()["data"]
    )
    for response in (
        other.get(f"/api/v1/webhooks/{created['id']}"),
        other.put(f"/api/v1/webhooks/{created['id']}", json={"active": False}),
        other.delete(f"/api/v1/webhooks/{created['id']}"),
        other.post(f"/api/v1/webhooks/{created['id']}/rotate-secret"),
        other.post(f"/api/v1/webhooks/{created['id']}/test"),
        other.get(f"/api/v1/webhooks/{created['id']}/deliveries"),
        other.get(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}"),
        other.post(f"/api/v1/webhooks/{created['id']}/deliveries/{queued['id']}/redeliver"),
    ):
        assert_error(response, 404, "NOT_FOUND")


def test_scopes(client_for: ClientFactory, anon: httpx.Client, api: httpx.Client, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url("/scopes"), ["*"])
    reader = client_for(scopes=["read"])
    assert reader.get("/api/v1/webhooks").status_code == 200
    assert reader.get(f"/api/v1/webhooks/{created['id']}/deliveries").status_code == 200
    assert_error(
        reader.post("/api/v1/webhooks", json={"url": receiver.url("/x"), "events": ["*"]}), 403, "FORBIDDEN"
    )
    assert_error(reader.post(f"/api/v1/webhooks/{created['id']}/rotate-secret"), 403, "FORBIDDEN")
    assert_error(reader.delete(f"/api/v1/webhooks/{created['id']}"), 403, "FORBIDDEN")
    writer = client_for(scopes=["prompts:write"])
    assert_error(
        writer.post("/api/v1/webhooks", json={"url": receiver.url("/x"), "events": ["*"]}), 403, "FORBIDDEN"
    )
    admin = client_for(scopes=["webhooks:admin"])
    assert (
        admin.post("/api/v1/webhooks", json={"url": receiver.url("/x"), "events": ["*"]}).status_code == 201
    )
    assert_error(anon.get("/api/v1/webhooks"), 401, "UNAUTHORIZED")


# -- no loss -----------------------------------------------------------------------------------------


def test_no_event_is_lost_while_the_webhooks_service_is_down(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    created = subscribe(api, receiver.url("/outage"), ["version.created"])
    name = unique()
    api.post("/api/v1/prompts", json={"name": name, "template": "v1"})
    receiver.wait("/outage", count=1)
    stack.stop_process("webhooks")
    try:
        # The API answers 503 quickly while the service is down; prompt changes keep flowing.
        assert_error(api.get("/api/v1/webhooks"), 503, "UNAVAILABLE")
        for i in range(2, 12):
            assert api.post(f"/api/v1/prompts/{name}/versions", json={"template": f"v{i}"}).status_code == 201
    finally:
        stack.start_process("webhooks")
    got = receiver.wait("/outage", count=11, timeout=30)
    time.sleep(1.0)
    got = receiver.at("/outage")
    numbers = sorted(r.json["data"]["versionNumber"] for r in got)  # type: ignore[index]
    assert numbers == list(range(1, 12)), numbers
    assert len({r.headers["webhook-id"] for r in got}) == 11
    assert all(r.verifies(str(created["secret"])) for r in got)


def test_a_nats_outage_delays_events_but_loses_none(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    if "nats" not in stack.process_names():
        pytest.skip(
            "PVC_TEST_NATS_URL points at an external NATS server, which this test must not stop; "
            "test_outbox_relay.py covers the outbox with its own NATS"
        )
    created = subscribe(api, receiver.url("/nats-outage"), ["prompt.created"])
    names = [unique() for _ in range(3)]
    stack.stop_process("nats")
    try:
        for name in names:
            assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM registry.outbox WHERE published_at IS NULL").fetchone()
        assert row is not None
        assert row[0] >= 3
    finally:
        stack.start_process("nats")
    got = receiver.wait("/nats-outage", count=3, timeout=45)
    assert sorted(r.json["data"]["name"] for r in got) == sorted(names)  # type: ignore[index]
    assert all(r.verifies(str(created["secret"])) for r in got)
