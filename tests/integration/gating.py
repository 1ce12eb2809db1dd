"""Helpers for the evals and promotion tests: prompts with versions, recorded results, the harness."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from pvc.devstack.ports import free_port

from .support import unique

HARNESS_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "harness.py"
# A fixed, valid Standard Webhooks secret for tests that need to know it.
TEST_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/FpzWI9SDNY="


def prompt_with_versions(
    api: httpx.Client, count: int, *, template: str = "Answer {{q}} v{n}"
) -> tuple[str, list[dict[str, Any]]]:
    name = unique("rel")
    assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201
    versions = []
    for n in range(1, count + 1):
        created = api.post(f"/api/v1/prompts/{name}/versions", json={"template": template.format(n=n)})
        assert created.status_code == 201, created.text
        versions.append(created.json())
    return name, versions


def record(
    api: httpx.Client,
    version_id: str,
    *,
    harness: str = "quality",
    status: str = "passed",
    score: float | None = 0.9,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"versionId": version_id, "harness": harness, "status": status, **extra}
    if score is not None:
        body["score"] = score
    response = api.post("/api/v1/evaluations", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def gate(api: httpx.Client, version_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/evaluations/versions/{version_id}/gate")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def staged(api: httpx.Client, count: int = 1) -> tuple[str, list[dict[str, Any]]]:
    """A prompt whose last version is tagged staging."""
    name, versions = prompt_with_versions(api, count)
    assert api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": count}).status_code == 200
    return name, versions


def production_number(api: httpx.Client, prompt: str) -> int | None:
    response = api.get(f"/api/v1/prompts/{prompt}/production")
    return response.json()["number"] if response.status_code == 200 else None


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextmanager
def running_harness(secret: str = TEST_SECRET) -> Iterator[str]:
    """examples/harness.py on a free port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HARNESS_SCRIPT), "--port", str(port), "--secret", secret],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield f"http://127.0.0.1:{port}/evaluate"
    finally:
        process.terminate()
        process.wait(timeout=10)
