"""Event committed -> first webhook delivery attempt, through the whole system (DESIGN.md: p99 <= 1 s).

A local receiver (loopback only) subscribes to `version.created`; versions are created one after another
through Envoy. Latency is the receiver's arrival time minus the event's `timestamp`, which the registry
sets inside the committing transaction; both clocks are this machine's.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime

import httpx

from pvc.devstack import Stack
from tests.integration.receiver import Receiver

VERSIONS = 200


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(stack: Stack) -> dict[str, object]:
    receiver = Receiver()
    try:
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30
        ) as api:
            name = f"bench-webhooks-{int(time.time())}"
            api.post("/api/v1/prompts", json={"name": name}).raise_for_status()
            api.post(
                "/api/v1/webhooks", json={"url": receiver.url("/bench"), "events": ["version.created"]}
            ).raise_for_status()
            for i in range(VERSIONS):
                api.post(f"/api/v1/prompts/{name}/versions", json={"template": f"v{i}"}).raise_for_status()
            got = receiver.wait("/bench", count=VERSIONS, timeout=60)
    finally:
        receiver.close()
    latencies = [
        (r.at - datetime.fromisoformat(str(r.json["timestamp"]).replace("Z", "+00:00")).timestamp()) * 1000
        for r in got
    ]
    return {
        "events": VERSIONS,
        "delivered": len(got),
        "commit_to_first_attempt_ms": {
            "p50": round(_percentile(latencies, 0.50), 1),
            "p99": round(_percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "target_p99_ms": 1000,
    }
