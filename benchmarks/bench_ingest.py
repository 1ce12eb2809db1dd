"""(c) Metrics ingest through Envoy in points/s (batches of 10,000, a few concurrent clients), and how
long aggregates over the stored points take afterwards."""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from pvc.devstack import Stack

BATCH = 10_000
BATCHES = int(os.environ.get("BENCH_INGEST_BATCHES", "60"))
CLIENTS = 3


def _batches(version_ids: list[str], count: int) -> list[bytes]:
    start = datetime.now(UTC) - timedelta(days=7)
    rng = random.Random(7)
    bodies = []
    for b in range(count):
        points = []
        for i in range(BATCH):
            moment = start + timedelta(seconds=(b * BATCH + i) * 0.5)
            points.append(
                {
                    "versionId": version_ids[i % len(version_ids)],
                    "type": "latency",
                    "name": "latency_ms" if i % 2 else "cost_usd",
                    "value": rng.lognormvariate(5, 0.5),
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "sessionId": f"s-{i % 5000}",
                }
            )
        bodies.append(orjson.dumps({"metrics": points}))
    return bodies


def run(stack: Stack) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {stack.admin_key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=120) as api:
        name = f"bench-ingest-{os.getpid()}"
        api.post("/api/v1/prompts", json={"name": name, "template": "one"}).raise_for_status()
        v1 = api.get(f"/api/v1/prompts/{name}/versions/1").json()["id"]
        v2 = api.post(f"/api/v1/prompts/{name}/versions", json={"template": "two"}).json()["id"]
        bodies = _batches([v1, v2], BATCHES)
        api.post("/api/v1/metrics/ingest", content=bodies[0]).raise_for_status()  # warm-up

        def send(body: bytes) -> float:
            started = time.perf_counter()
            api.post("/api/v1/metrics/ingest", content=body).raise_for_status()
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            latencies = sorted(pool.map(send, bodies[1:]))
        elapsed = time.perf_counter() - started
        points = BATCH * (len(bodies) - 1)
        stored = BATCH * len(bodies)

        def timed(path: str, **params: str) -> float:
            best = float("inf")
            for _ in range(3):
                begun = time.perf_counter()
                api.get(path, params=params).raise_for_status()
                best = min(best, time.perf_counter() - begun)
            return round(best * 1000, 1)

        day_ago = (datetime.now(UTC) - timedelta(days=6)).isoformat().replace("+00:00", "Z")
        aggregates_ms = {
            "version_all_time": timed(f"/api/v1/metrics/versions/{v1}"),
            "version_one_name": timed(f"/api/v1/metrics/versions/{v1}", name="latency_ms"),
            "version_window": timed(f"/api/v1/metrics/versions/{v1}", **{"from": day_ago}),
            "prompt_all_versions": timed(f"/api/v1/metrics/prompts/{name}"),
        }
    rate = points / elapsed
    print(f"ingest {rate:,.0f} points/s ({points:,} points, {CLIENTS} clients)", flush=True)
    return {
        "points": points,
        "batch": BATCH,
        "clients": CLIENTS,
        "seconds": round(elapsed, 2),
        "points_per_second": round(rate),
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "batch_max_ms": round(latencies[-1] * 1000, 1),
        "points_stored_per_version": stored // 2,
        "aggregate_ms_best_of_3": aggregates_ms,
        "target_points_per_second": 50_000,
        "met": rate >= 50_000,
    }
