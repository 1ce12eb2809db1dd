"""(a) `GET /prompts/{prompt}/resolve` through Envoy vs (b) a bare FastAPI constant endpoint.

Both run on Granian behind the same Envoy config on this machine, measured alternately with wrk at
50 connections; each request carries another session id. The result is their throughput ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.loadtool import run_wrk
from pvc.devstack import Stack, envoy
from pvc.devstack.health import http_ok
from pvc.devstack.ports import LOCALHOST, free_port

CONNECTIONS = 50
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = 3


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not http_ok(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def _setup(stack: Stack) -> tuple[str, int, str]:
    """A prompt with a 50/50 deployment; returns its resolve path, the answer's size and a read key.

    The key is minted without a rate limit (`rateLimitPerSecond: 0`, as a serving app's key would
    be): the default per-key limit would turn most of the load into 429s.
    """
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.admin_key}"}) as api:
        name = f"bench-resolve-{os.getpid()}"
        prompt = api.post("/api/v1/prompts", json={"name": name, "template": "Hello {{name}}, v1."}).json()
        v1 = api.get(f"/api/v1/prompts/{name}/versions/1").json()
        v2 = api.post(f"/api/v1/prompts/{name}/versions", json={"template": "Hi {{name}}! v2"}).json()
        deployment = api.post(
            "/api/v1/deployments",
            json={
                "promptId": prompt["id"],
                "name": "bench",
                "variants": [
                    {"versionId": v1["id"], "weight": 50, "isControl": True},
                    {"versionId": v2["id"], "weight": 50},
                ],
            },
        )
        deployment.raise_for_status()
        minted = api.post(
            "/api/v1/api-keys", json={"name": "bench-serving", "scopes": ["read"], "rateLimitPerSecond": 0}
        )
        minted.raise_for_status()
        key: str = minted.json()["key"]
        path = f"/api/v1/prompts/{name}/resolve"
        answer = api.get(path, params={"sessionId": "user-1"}, headers={"Authorization": f"Bearer {key}"})
        answer.raise_for_status()
        return path, len(answer.content), key


def run(stack: Stack) -> dict[str, object]:
    path, size, key = _setup(stack)
    bare_port, edge_port, admin_port = free_port(), free_port(), free_port()
    logs = stack.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, "BARE_BODY_BYTES": str(size), "PYTHONPATH": str(Path.cwd())}
    processes = []
    try:
        with open(logs / "bare-app.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.bare_app", str(bare_port)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
        config = envoy.render_config(
            dest=stack.data_dir / "envoy-bare.yaml",
            http_port=edge_port,
            admin_port=admin_port,
            gateway_host=LOCALHOST,
            gateway_port=bare_port,
        )
        with open(logs / "envoy-bare.log", "wb") as log:
            processes.append(subprocess.Popen(envoy.envoy_argv(config), stdout=log, stderr=log))
        _wait(f"http://{LOCALHOST}:{admin_port}/ready")
        bare_url = f"http://{LOCALHOST}:{edge_port}"
        _wait(f"{bare_url}{path}")
        bare_size = len(httpx.get(f"{bare_url}{path}").content)

        common = {"path": path, "key": key, "connections": CONNECTIONS}
        run_wrk(base_url=stack.base_url, seconds=3, **common)  # warm both up
        run_wrk(base_url=bare_url, seconds=3, **common)
        rounds = []
        for _ in range(ROUNDS):
            bare = run_wrk(base_url=bare_url, seconds=SECONDS, **common)
            resolve = run_wrk(base_url=stack.base_url, seconds=SECONDS, **common)
            rounds.append({"bare": bare, "resolve": resolve, "ratio": round(resolve["rps"] / bare["rps"], 3)})
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    failed = sum(float(r[side]["non_2xx"]) for r in rounds for side in ("bare", "resolve"))  # type: ignore[index]
    if failed:
        raise RuntimeError(f"{failed:.0f} answers were not 2xx; the ratio would be meaningless")
    best = max(rounds, key=lambda r: float(r["ratio"]))  # type: ignore[arg-type]
    resolve_p99 = max(float(r["resolve"]["p99_ms"]) for r in rounds)  # type: ignore[index]
    ratio = sum(float(r["ratio"]) for r in rounds) / len(rounds)  # type: ignore[arg-type]
    summary = {
        "connections": CONNECTIONS,
        "seconds_per_run": SECONDS,
        "body_bytes": {"resolve": size, "bare": bare_size},
        "rounds": rounds,
        "ratio_mean": round(ratio, 3),
        "resolve_p99_ms_worst": resolve_p99,
        "targets": {"ratio_min": 0.8, "p99_ms_max": 20},
        "met": ratio >= 0.8 and resolve_p99 <= 20,
    }
    print(
        f"resolve/bare throughput ratio {ratio:.2f} (best round {best['ratio']}); "
        f"resolve p99 {resolve_p99:.2f} ms at {CONNECTIONS} connections",
        flush=True,
    )
    return summary
