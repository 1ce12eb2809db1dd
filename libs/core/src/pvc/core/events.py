"""The event stream: one JetStream stream, `PVC_EVENTS`, subjects `pvc.events.<type>`."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

log = logging.getLogger("pvc.events")

STREAM = "PVC_EVENTS"
SUBJECT_PREFIX = "pvc.events."
# Long enough that a relay crashing between publish and mark-sent, then retrying, is deduplicated.
DUPLICATE_WINDOW_SECONDS = 15 * 60
RETENTION_SECONDS = 7 * 24 * 3600


def subject_for(event_type: str) -> str:
    return SUBJECT_PREFIX + event_type


async def connect(url: str, *, name: str) -> NATS:
    """Connect, retrying until the server answers; reconnects forever afterwards."""
    while True:
        try:
            return await nats.connect(
                url, name=name, connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.5
            )
        except Exception as exc:  # the client raises several unrelated types while the server is down
            log.warning("NATS not reachable yet (%s); retrying", exc)
            await asyncio.sleep(1)


async def ensure_stream(js: JetStreamContext) -> None:
    """Create or update the stream; every process may call this at start-up."""
    config = StreamConfig(
        name=STREAM,
        subjects=[SUBJECT_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=RETENTION_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
