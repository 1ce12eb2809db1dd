"""Evaluation results, the per-version gate view and every default gate rule, alone and together."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from .gating import gate, prompt_with_versions, record
from .support import ClientFactory, assert_error, unique


def test_record_get_and_list_evaluations(api: httpx.Client) -> None:
    _, (v1, v2) = prompt_with_versions(api, 2)
    first = record(
        api,
        v1["id"],
        harness="quality",
        score=0.91,
        metrics={"latencyMs": 420},
        details={"cases": 20},
        externalId="ci-1",
    )
    assert first == {
        **first,
        "versionId": v1["id"],
        "promptId": v1["promptId"],
        "harness": "quality",
        "status": "passed",
        "score": 0.91,
        "metrics": {"latencyMs": 420},
        "details": {"cases": 20},
        "externalId": "ci-1",
    }
    assert first["createdAt"].endswith("Z")
    assert first["completedAt"].endswith("Z")
    pending = record(api, v1["id"], harness="safety", status="pending", score=None)
    assert pending["completedAt"] is None
    assert pending["score"] is None
    other = record(api, v2["id"], harness="quality")
    assert api.get(f"/api/v1/evaluations/{first['id']}").json() == first
    by_version = api.get("/api/v1/evaluations", params={"versionId": v1["id"]}).json()
    assert [e["id"] for e in by_version["data"]] == [pending["id"], first["id"]]
    by_prompt = api.get(
        "/api/v1/evaluations", params={"promptId": v1["promptId"], "harness": "quality"}
    ).json()
    assert [e["id"] for e in by_prompt["data"]] == [other["id"], first["id"]]
    paged = api.get("/api/v1/evaluations", params={"promptId": v1["promptId"], "limit": 2}).json()
    assert len(paged["data"]) == 2
    rest = api.get(
        "/api/v1/evaluations",
        params={"promptId": v1["promptId"], "limit": 2, "cursor": paged["meta"]["nextCursor"]},
    ).json()
    assert [e["id"] for e in rest["data"]] == [first["id"]]
    assert rest["meta"]["nextCursor"] is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"versionId": None}, "versionId"),
        ({"versionId": "not-a-uuid"}, "versionId"),
        ({"harness": ""}, "harness"),
        ({"harness": "Has Caps"}, "harness"),
        ({"harness": 5}, "harness"),
        ({"status": "great"}, "status"),
        ({"status": None}, "status"),
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": "0.9"}, "score"),
        ({"metrics": {"latency": "fast"}}, "metrics"),
        ({"metrics": [1]}, "metrics"),
        ({"externalId": 7}, "externalId"),
        ({"externalId": "x" * 501}, "externalId"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_evaluation_bodies(api: httpx.Client, patch: dict[str, object], field: str) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    body = {"versionId": version["id"], "harness": "quality", "status": "passed", "score": 0.9, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    error = assert_error(api.post("/api/v1/evaluations", json=body), 400, "VALIDATION_ERROR")
    assert any(key.startswith(field) for key in error["details"]["fields"]), error  # type: ignore[index,union-attr]
    assert api.get("/api/v1/evaluations", params={"versionId": version["id"]}).json()["data"] == []


def test_oversize_details_are_refused(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    body = {
        "versionId": version["id"],
        "harness": "q",
        "status": "passed",
        "score": 1,
        "details": "x" * 70_000,
    }
    assert_error(api.post("/api/v1/evaluations", json=body), 400, "VALIDATION_ERROR")
    huge = {**body, "details": "x" * 1_100_000}
    assert api.post("/api/v1/evaluations", json=huge).status_code == 413


def test_unknown_and_foreign_ids_are_404(api: httpx.Client, client_for: ClientFactory) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    mine = record(api, version["id"])
    missing = str(uuid.uuid4())
    assert_error(
        api.post("/api/v1/evaluations", json={"versionId": missing, "harness": "q", "status": "passed"}),
        404,
        "NOT_FOUND",
    )
    assert_error(api.get(f"/api/v1/evaluations/{missing}"), 404, "NOT_FOUND")
    assert_error(api.get("/api/v1/evaluations/not-a-uuid"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/evaluations/versions/{missing}/gate"), 404, "NOT_FOUND")
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(
        stranger.post(
            "/api/v1/evaluations", json={"versionId": version["id"], "harness": "q", "status": "passed"}
        ),
        404,
        "NOT_FOUND",
    )
    assert_error(stranger.get(f"/api/v1/evaluations/{mine['id']}"), 404, "NOT_FOUND")
    assert_error(stranger.get(f"/api/v1/evaluations/versions/{version['id']}/gate"), 404, "NOT_FOUND")
    assert stranger.get("/api/v1/evaluations", params={"versionId": version["id"]}).json()["data"] == []
    assert_error(api.get("/api/v1/evaluations", params={"versionId": "nope"}), 400, "VALIDATION_ERROR")


def test_scopes(api: httpx.Client, client_for: ClientFactory) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    reader = client_for(scopes=["read"])
    body = {"versionId": version["id"], "harness": "q", "status": "passed", "score": 1}
    assert_error(reader.post("/api/v1/evaluations", json=body), 403, "FORBIDDEN")
    assert_error(
        reader.post("/api/v1/evaluations/trigger", json={"versionId": version["id"], "harness": "q"}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        reader.put("/api/v1/evaluations/harnesses/q", json={"url": "http://127.0.0.1:1/"}), 403, "FORBIDDEN"
    )
    writer = client_for(scopes=["evals:write"])
    assert writer.post("/api/v1/evaluations", json=body).status_code == 201
    assert_error(writer.get(f"/api/v1/evaluations/versions/{version['id']}/gate"), 403, "FORBIDDEN")
    assert reader.get(f"/api/v1/evaluations/versions/{version['id']}/gate").status_code == 200
    assert_error(httpx.get(f"{api.base_url}/api/v1/evaluations"), 401, "UNAUTHORIZED")


# -- the default gate, rule by rule ------------------------------------------------------------------


def test_no_evaluations_blocks(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    answer = gate(api, version["id"])
    assert answer["canPromote"] is False
    assert answer["reasons"] == ["no evaluations recorded for this version"]
    assert answer["evaluations"] == []
    assert answer["policy"] == {
        "minScore": 0.8,
        "requiredHarnesses": [],
        "maxAgeHours": None,
        "metricThresholds": {},
    }
    assert answer["versionId"] == version["id"]


def test_passing_evaluation_passes(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    result = record(api, version["id"], score=0.85)
    answer = gate(api, version["id"])
    assert answer["canPromote"] is True
    assert answer["reasons"] == []
    assert answer["evaluations"] == [result]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("failed", "harness 'quality' failed"),
        ("error", "harness 'quality' errored"),
        ("pending", "harness 'quality' is still pending"),
        ("running", "harness 'quality' is still running"),
    ],
)
def test_unfinished_or_bad_results_block(api: httpx.Client, status: str, reason: str) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    record(api, version["id"], harness="safety", score=1.0)
    record(api, version["id"], harness="quality", status=status, score=0.95)
    answer = gate(api, version["id"])
    assert answer["canPromote"] is False
    assert answer["reasons"] == [reason]


def test_passing_rerun_supersedes_failure_and_a_later_failure_supersedes_a_pass(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    record(api, version["id"], status="failed", score=0.2)
    assert gate(api, version["id"])["canPromote"] is False
    rerun = record(api, version["id"], status="passed", score=0.9)
    answer = gate(api, version["id"])
    assert answer["canPromote"] is True
    assert answer["evaluations"] == [rerun]
    record(api, version["id"], status="error", score=None)
    assert gate(api, version["id"])["reasons"] == ["harness 'quality' errored"]


def test_null_score_never_passes(api: httpx.Client) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    record(api, version["id"], score=None)
    assert gate(api, version["id"])["reasons"] == ["harness 'quality' reported no score"]


def test_required_harnesses(api: httpx.Client) -> None:
    name, (version,) = prompt_with_versions(api, 1)
    assert (
        api.put(f"/api/v1/prompts/{name}/gate", json={"requiredHarnesses": ["safety", "quality"]}).status_code
        == 200
    )
    record(api, version["id"], harness="quality")
    assert gate(api, version["id"])["reasons"] == ["required harness 'safety' has no evaluation"]
    record(api, version["id"], harness="safety")
    assert gate(api, version["id"])["canPromote"] is True


def test_mean_score_against_min_score(api: httpx.Client) -> None:
    name, (version,) = prompt_with_versions(api, 1)
    record(api, version["id"], harness="a", score=0.9)
    record(api, version["id"], harness="b", score=0.6)
    assert gate(api, version["id"])["reasons"] == ["mean score 0.75 is below minScore 0.8"]
    api.put(f"/api/v1/prompts/{name}/gate", json={"minScore": 0.75})
    assert gate(api, version["id"])["canPromote"] is True


def test_metric_thresholds(api: httpx.Client) -> None:
    name, (version,) = prompt_with_versions(api, 1)
    policy = {
        "metricThresholds": {"latencyMs": {"max": 500}, "accuracy": {"min": 0.7}, "toxicity": {"max": 0.1}}
    }
    put = api.put(f"/api/v1/prompts/{name}/gate", json=policy)
    assert put.status_code == 200, put.text
    assert put.json()["metricThresholds"] == {
        "accuracy": {"min": 0.7},
        "latencyMs": {"max": 500},
        "toxicity": {"max": 0.1},
    }
    record(api, version["id"], metrics={"latencyMs": 650, "accuracy": 0.65})
    assert gate(api, version["id"])["reasons"] == [
        "metric 'accuracy' = 0.65 from 'quality' is below min 0.7",
        "metric 'latencyMs' = 650 from 'quality' is above max 500",
        "metric 'toxicity' was not reported",
    ]
    record(api, version["id"], metrics={"latencyMs": 300, "accuracy": 0.9, "toxicity": 0.01})
    assert gate(api, version["id"])["canPromote"] is True


def test_max_age(api: httpx.Client) -> None:
    name, (version,) = prompt_with_versions(api, 1)
    record(api, version["id"])
    # 0.0002 h is 0.72 s: the result above is soon too old.
    api.put(f"/api/v1/prompts/{name}/gate", json={"maxAgeHours": 0.0002})
    time.sleep(1.0)
    assert gate(api, version["id"])["reasons"] == ["harness 'quality' result is older than 0.0002 hours"]
    api.put(f"/api/v1/prompts/{name}/gate", json={"maxAgeHours": 1})
    assert gate(api, version["id"])["canPromote"] is True


def test_every_reason_is_listed_together(api: httpx.Client) -> None:
    name, (version,) = prompt_with_versions(api, 1)
    api.put(
        f"/api/v1/prompts/{name}/gate",
        json={"minScore": 0.9, "requiredHarnesses": ["safety"], "metricThresholds": {"cost": {"max": 1}}},
    )
    record(api, version["id"], harness="quality", status="failed", score=0.5, metrics={"cost": 3})
    record(api, version["id"], harness="speed", status="running", score=None)
    answer = gate(api, version["id"])
    assert answer["canPromote"] is False
    assert answer["reasons"] == [
        "harness 'quality' failed",
        "harness 'speed' is still running",
        "required harness 'safety' has no evaluation",
        "mean score 0.5 is below minScore 0.9",
        "metric 'cost' = 3 from 'quality' is above max 1",
    ]
    assert [e["harness"] for e in answer["evaluations"]] == ["quality", "speed"]


# -- gate policy -------------------------------------------------------------------------------------


def test_gate_policy_defaults_put_and_replace(api: httpx.Client) -> None:
    name, _ = prompt_with_versions(api, 1)
    default = {"minScore": 0.8, "requiredHarnesses": [], "maxAgeHours": None, "metricThresholds": {}}
    assert api.get(f"/api/v1/prompts/{name}/gate").json() == default
    put = api.put(
        f"/api/v1/prompts/{name}/gate",
        json={"minScore": 0.5, "requiredHarnesses": ["b", "a", "a"], "maxAgeHours": 24},
    )
    assert put.json() == {
        "minScore": 0.5,
        "requiredHarnesses": ["a", "b"],
        "maxAgeHours": 24,
        "metricThresholds": {},
    }
    prompt_id = api.get(f"/api/v1/prompts/{name}").json()["id"]
    assert api.get(f"/api/v1/prompts/{prompt_id}/gate").json() == put.json()
    # PUT replaces: omitted fields return to their defaults.
    assert api.put(f"/api/v1/prompts/{name}/gate", json={}).json() == default


@pytest.mark.parametrize(
    "body",
    [
        {"minScore": 2},
        {"minScore": "high"},
        {"requiredHarnesses": "quality"},
        {"requiredHarnesses": [""]},
        {"maxAgeHours": 0},
        {"maxAgeHours": -1},
        {"metricThresholds": {"x": {}}},
        {"metricThresholds": {"x": {"min": 2, "max": 1}}},
        {"metricThresholds": {"x": {"min": "a"}}},
        {"metricThresholds": {"x": {"avg": 1}}},
        {"unknown": True},
    ],
)
def test_bad_gate_policies(api: httpx.Client, body: dict[str, object]) -> None:
    name, _ = prompt_with_versions(api, 1)
    assert_error(api.put(f"/api/v1/prompts/{name}/gate", json=body), 400, "VALIDATION_ERROR")
    assert api.get(f"/api/v1/prompts/{name}/gate").json()["minScore"] == 0.8


def test_gate_policy_access(api: httpx.Client, client_for: ClientFactory) -> None:
    name, _ = prompt_with_versions(api, 1)
    assert_error(api.get("/api/v1/prompts/no-such-prompt/gate"), 404, "NOT_FOUND")
    assert_error(api.put("/api/v1/prompts/no-such-prompt/gate", json={}), 404, "NOT_FOUND")
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(stranger.get(f"/api/v1/prompts/{name}/gate"), 404, "NOT_FOUND")
    assert_error(
        client_for(scopes=["prompts:write", "read"]).put(f"/api/v1/prompts/{name}/gate", json={}),
        403,
        "FORBIDDEN",
    )
    assert (
        client_for(scopes=["promote"]).put(f"/api/v1/prompts/{name}/gate", json={"minScore": 0.1}).status_code
        == 200
    )


def test_openapi_documents_the_new_routes(anon: httpx.Client) -> None:
    paths = anon.get("/api/v1/docs/openapi.json").json()["paths"]
    expected = {
        ("/api/v1/evaluations", "post"): "evals:write",
        ("/api/v1/evaluations", "get"): "read",
        ("/api/v1/evaluations/trigger", "post"): "evals:write",
        ("/api/v1/evaluations/harnesses/{name}", "put"): "evals:write",
        ("/api/v1/evaluations/versions/{versionId}/gate", "get"): "read",
        ("/api/v1/prompts/{prompt}/gate", "put"): "promote",
        ("/api/v1/prompts/{prompt}/promote", "post"): "promote",
        ("/api/v1/prompts/{prompt}/promote/override", "post"): "promote:override",
        ("/api/v1/prompts/{prompt}/rollback", "post"): "promote",
        ("/api/v1/prompts/{prompt}/promotions", "get"): "read",
    }
    for (path, method), scope in expected.items():
        operation = paths[path][method]
        assert operation["x-required-scope"] == scope, path
        assert "409" in operation["responses"] or method == "get", path
    callback = paths["/api/v1/evaluations/{id}/callback"]["post"]
    assert "x-required-scope" not in callback
    assert "security" not in callback
    assert {p["name"] for p in callback["parameters"]} >= {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
