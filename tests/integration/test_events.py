"""State changes reach JetStream through the outbox: one event per change, with the envelope of DESIGN.md."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats

from pvc.devstack import Stack

from .support import unique

# Events are read from this moment on (less a margin for clock reads), not from the start of the
# stream: a long-lived NATS (a developer's, or the machine's) holds many other runs' events.
SINCE = datetime.now(UTC) - timedelta(minutes=1)


async def collect(nats_url: str, *, subject: str, want: int, wait: float = 5.0) -> list[dict[str, Any]]:
    import orjson

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject,
            ordered_consumer=True,
            config=nats.js.api.ConsumerConfig(
                deliver_policy=nats.js.api.DeliverPolicy.BY_START_TIME, opt_start_time=SINCE
            ),
        )
        events: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(events) < want and loop.time() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.05, deadline - loop.time()))
            except nats.errors.TimeoutError:
                break
            events.append({"headers": msg.headers or {}, **orjson.loads(msg.data)})
        return events
    finally:
        await nc.close()


def test_registry_changes_are_published_once_each(stack: Stack, api: httpx.Client) -> None:
    name = unique()
    prompt = api.post("/api/v1/prompts", json={"name": name, "template": "one"}).json()
    api.post(f"/api/v1/prompts/{name}/versions", json={"template": "two"})
    api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 2})
    api.delete(f"/api/v1/prompts/{name}/tags/staging")
    api.put(f"/api/v1/prompts/{name}", json={"description": "d"})
    api.delete(f"/api/v1/prompts/{name}")
    events = asyncio.run(collect(stack.nats_url, subject="pvc.events.>", want=10_000, wait=3))
    mine = [e for e in events if e["data"].get("promptId") == prompt["id"]]
    assert [e["type"] for e in mine] == [
        "prompt.created",
        "version.created",
        "version.created",
        "tag.moved",
        "tag.removed",
        "prompt.updated",
        "prompt.archived",
    ]
    assert len({e["id"] for e in mine}) == len(mine)
    for event in mine:
        assert set(event) == {"headers", "id", "type", "timestamp", "projectId", "data"}
        assert event["headers"]["Nats-Msg-Id"] == event["id"]
        assert event["timestamp"].endswith("Z")
    moved = mine[3]["data"]
    assert moved["tag"] == "staging"
    assert moved["versionNumber"] == 2
    assert moved["previousVersionNumber"] is None
