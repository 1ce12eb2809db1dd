"""(d) Version create latency through Envoy with 20 concurrent writers (each on its own prompt)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from pvc.devstack import Stack

WRITERS = 20
PER_WRITER = int(os.environ.get("BENCH_VERSIONS_PER_WRITER", "50"))


def run(stack: Stack) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {stack.admin_key}"}

    def writer(index: int) -> list[float]:
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as api:
            name = f"bench-versions-{os.getpid()}-{index}"
            api.post("/api/v1/prompts", json={"name": name}).raise_for_status()
            latencies = []
            for n in range(PER_WRITER):
                started = time.perf_counter()
                response = api.post(f"/api/v1/prompts/{name}/versions", json={"template": f"v{n} {{{{x}}}}"})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
            return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        latencies = sorted(x for chunk in pool.map(writer, range(WRITERS)) for x in chunk)
    elapsed = time.perf_counter() - started

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    print(f"version create p50 {pct(0.5)} ms, p99 {pct(0.99)} ms at {WRITERS} writers", flush=True)
    return {
        "writers": WRITERS,
        "versions": len(latencies),
        "per_second": round(len(latencies) / elapsed),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "target_p99_ms": 50,
        "met": pct(0.99) <= 50,
    }
