"""(d) Version create latency through Envoy with 20 concurrent writers.

wrk keeps 20 connections busy creating versions, each request on the next of 20 prompts and with a
template never sent before (so every request creates a version; none is answered by the dedup rule).
A load tool written in C leaves the 2 cores to the servers; a Python client would take a share of
them. The key is minted without a rate limit, as a CI pipeline's would be.
"""

from __future__ import annotations

import os

import httpx

from benchmarks.loadtool import run_wrk
from pvc.devstack import Stack

WRITERS = 20
PROMPTS = 20
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))

CREATE_LUA = """
counter = 0
threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local prompt = "{prefix}-" .. (counter % {prompts})
  local body = '{"template": "writer ' .. tid .. ' version ' .. counter .. ' {{x}}"}'
  return wrk.format(nil, "/api/v1/prompts/" .. prompt .. "/versions", nil, body)
end
"""


def run(stack: Stack) -> dict[str, object]:
    prefix = f"bench-versions-{os.getpid()}"
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.admin_key}"}) as api:
        for i in range(PROMPTS):
            api.post("/api/v1/prompts", json={"name": f"{prefix}-{i}"}).raise_for_status()
        minted = api.post(
            "/api/v1/api-keys", json={"name": "bench-writer", "scopes": ["admin"], "rateLimitPerSecond": 0}
        )
        minted.raise_for_status()
        key: str = minted.json()["key"]
        before = sum(
            api.get(f"/api/v1/prompts/{prefix}-{i}").json()["latestVersion"] or 0 for i in range(PROMPTS)
        )
        lua = CREATE_LUA.replace("{prefix}", prefix).replace("{prompts}", str(PROMPTS))
        result = run_wrk(base_url=stack.base_url, key=key, connections=WRITERS, seconds=SECONDS, lua=lua)
        after = sum(
            api.get(f"/api/v1/prompts/{prefix}-{i}").json()["latestVersion"] or 0 for i in range(PROMPTS)
        )
    if result["non_2xx"]:
        raise RuntimeError(f"{result['non_2xx']:.0f} creates were not 2xx")
    created = after - before
    # wrk stops with up to one request per connection in flight; those may still have been written.
    if not result["requests"] <= created <= result["requests"] + WRITERS:
        raise RuntimeError(f"{result['requests']:.0f} creates answered but {created} versions were written")
    print(
        f"version create p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{result['rps']:.0f}/s at {WRITERS} writers",
        flush=True,
    )
    return {
        "writers": WRITERS,
        "versions": created,
        "per_second": round(result["rps"]),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "target_p99_ms": 50,
        "met": result["p99_ms"] <= 50,
    }
