"""Harness configuration, trigger, signed callback (good, forged, missing, stale) and timeouts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from pvc.devstack.ports import free_port

from .gating import TEST_SECRET, prompt_with_versions, running_harness, wait_for
from .support import ClientFactory, assert_error, unique


def signed(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def configure(api: httpx.Client, url: str, *, timeout: float = 30, secret: str = TEST_SECRET) -> str:
    name = unique("h")
    response = api.put(
        f"/api/v1/evaluations/harnesses/{name}",
        json={"url": url, "secret": secret, "timeoutSeconds": timeout},
    )
    assert response.status_code == 200, response.text
    return name


def finished(api: httpx.Client, evaluation_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = api.get(f"/api/v1/evaluations/{evaluation_id}").json()
    return body if body["status"] in ("passed", "failed", "error") else None


def trigger(api: httpx.Client, version_id: str, harness: str) -> dict[str, Any]:
    response = api.post("/api/v1/evaluations/trigger", json={"versionId": version_id, "harness": harness})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "pending"
    assert body["completedAt"] is None
    return body


def test_harness_configuration(api: httpx.Client, client_for: ClientFactory) -> None:
    name = unique("h")
    created = api.put(f"/api/v1/evaluations/harnesses/{name}", json={"url": "http://127.0.0.1:9/evaluate"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["timeoutSeconds"] == 300
    updated = api.put(
        f"/api/v1/evaluations/harnesses/{name}",
        json={"url": "https://93.184.216.34/run", "timeoutSeconds": 5},
    )
    assert "secret" not in updated.json()
    assert updated.json()["url"] == "https://93.184.216.34/run"
    listed = api.get("/api/v1/evaluations/harnesses").json()["data"]
    mine = [h for h in listed if h["name"] == name]
    assert mine == [{**mine[0], "url": "https://93.184.216.34/run", "timeoutSeconds": 5}]
    assert all("secret" not in h for h in listed)
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert name not in [h["name"] for h in stranger.get("/api/v1/evaluations/harnesses").json()["data"]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "ftp://x/"},
        {"url": "not a url"},
        {"url": 5},
        {"url": "http://x/", "timeoutSeconds": 0},
        {"url": "http://x/", "timeoutSeconds": "5"},
        {"url": "http://x/", "secret": "plain"},
        {"url": "http://x/", "secret": "whsec_!!"},
        {"url": "http://x/", "extra": 1},
    ],
)
def test_bad_harness_bodies(api: httpx.Client, body: dict[str, object]) -> None:
    assert_error(api.put(f"/api/v1/evaluations/harnesses/{unique('h')}", json=body), 400, "VALIDATION_ERROR")


def test_bad_harness_name(api: httpx.Client) -> None:
    assert_error(
        api.put("/api/v1/evaluations/harnesses/Bad_Name", json={"url": "http://x/"}), 400, "VALIDATION_ERROR"
    )


def test_trigger_bad_input(api: httpx.Client, client_for: ClientFactory) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    assert_error(
        api.post("/api/v1/evaluations/trigger", json={"versionId": version["id"], "harness": unique("h")}),
        404,
        "NOT_FOUND",
    )
    harness = configure(api, "http://127.0.0.1:9/")
    assert_error(
        api.post("/api/v1/evaluations/trigger", json={"versionId": str(uuid.uuid4()), "harness": harness}),
        404,
        "NOT_FOUND",
    )
    assert_error(
        api.post("/api/v1/evaluations/trigger", json={"versionId": version["id"]}), 400, "VALIDATION_ERROR"
    )
    assert_error(
        api.post("/api/v1/evaluations/trigger", json={"versionId": 1, "harness": harness}),
        400,
        "VALIDATION_ERROR",
    )
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(
        stranger.post("/api/v1/evaluations/trigger", json={"versionId": version["id"], "harness": harness}),
        404,
        "NOT_FOUND",
    )


def test_round_trip_with_the_example_harness(api: httpx.Client) -> None:
    _, (good, bad) = prompt_with_versions(api, 2, template="Answer {{{{question}}}} politely. v{n}")
    api.post(f"/api/v1/prompts/{good['promptId']}/versions", json={"template": "TODO write this"})
    todo = api.get(f"/api/v1/prompts/{good['promptId']}/versions/3").json()
    with running_harness() as url:
        harness = configure(api, url)
        passing = trigger(api, good["id"], harness)
        failing = trigger(api, todo["id"], harness)
        passed = wait_for(lambda: finished(api, passing["id"]))
        assert passed == {
            **passed,
            "status": "passed",
            "score": 1.0,
            "harness": harness,
            "versionId": good["id"],
        }
        assert passed["metrics"] == {"length": len(good["template"]), "placeholders": 1}
        assert passed["externalId"].startswith("example-")
        assert passed["completedAt"] is not None
        failed = wait_for(lambda: finished(api, failing["id"]))
        assert (failed["status"], failed["score"]) == ("failed", 0.4)
    gate = api.get(f"/api/v1/evaluations/versions/{good['id']}/gate").json()
    assert gate["canPromote"] is True
    assert bad["id"] != good["id"]


def test_callback_signatures(api: httpx.Client, anon: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1, template="NO_ANSWER {{{{x}}}} {n}")
    with running_harness() as url:
        harness = configure(api, url)
        pending = trigger(api, version["id"], harness)
        # The harness accepts the trigger (running) but never answers: we answer in its place.
        wait_for(lambda: api.get(f"/api/v1/evaluations/{pending['id']}").json()["status"] == "running")
    callback = f"/api/v1/evaluations/{pending['id']}/callback"
    body = json.dumps({"status": "passed", "score": 0.9, "metrics": {"cases": 12}}).encode()
    assert_error(
        anon.post(callback, content=body, headers={"content-type": "application/json"}), 401, "UNAUTHORIZED"
    )
    forged = signed("whsec_" + base64.b64encode(b"another secret, 32 bytes long!!!").decode(), body)
    assert_error(anon.post(callback, content=body, headers=forged), 401, "UNAUTHORIZED")
    tampered = signed(TEST_SECRET, body)
    assert_error(
        anon.post(callback, content=body.replace(b"0.9", b"1.0"), headers=tampered), 401, "UNAUTHORIZED"
    )
    stale = signed(TEST_SECRET, body, timestamp=int(time.time()) - 3600)
    assert_error(anon.post(callback, content=body, headers=stale), 401, "UNAUTHORIZED")
    assert api.get(f"/api/v1/evaluations/{pending['id']}").json()["status"] == "running"
    bad_body = b'{"status": "great"}'
    assert_error(
        anon.post(callback, content=bad_body, headers=signed(TEST_SECRET, bad_body)), 400, "VALIDATION_ERROR"
    )
    good = anon.post(callback, content=body, headers=signed(TEST_SECRET, body))
    assert good.status_code == 200, good.text
    assert good.json() == {**good.json(), "status": "passed", "score": 0.9, "metrics": {"cases": 12}}
    # A finished evaluation takes no second answer.
    assert_error(anon.post(callback, content=body, headers=signed(TEST_SECRET, body)), 409, "CONFLICT")
    assert_error(
        anon.post(
            f"/api/v1/evaluations/{uuid.uuid4()}/callback", content=body, headers=signed(TEST_SECRET, body)
        ),
        404,
        "NOT_FOUND",
    )


def test_harness_that_never_answers_times_out(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1, template="NO_ANSWER {{{{x}}}} {n}")
    with running_harness() as url:
        harness = configure(api, url, timeout=1)
        pending = trigger(api, version["id"], harness)
        errored = wait_for(lambda: finished(api, pending["id"]), timeout=20)
    assert errored["status"] == "error"
    assert "timeout" in errored["details"]["error"]
    gate = api.get(f"/api/v1/evaluations/versions/{version['id']}/gate").json()
    assert gate["reasons"] == [f"harness '{harness}' errored"]


def test_unreachable_harness_is_an_error(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    harness = configure(api, f"http://127.0.0.1:{free_port()}/nobody-home")
    pending = trigger(api, version["id"], harness)
    errored = wait_for(lambda: finished(api, pending["id"]))
    assert errored["status"] == "error"
    assert "unreachable" in errored["details"]["error"]
