"""Property-based fuzzing of the whole API with schemathesis, against the live stack through Envoy.

Every operation of the served OpenAPI spec gets generated valid and invalid inputs (with an admin key
of its own, unlimited rate): no response may be a 5xx, and every response must conform to the spec
(documented status code, content type, body schema). Invalid inputs are generated too and must get
a documented 4xx, never a 5xx. (schemathesis' `negative_data_rejection` check is not used: it counts
a repeated query parameter or an oversized body refused by Envoy with 413 as "accepted".)
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pvc.devstack import Stack

from .support import create_key

EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_key(api: httpx.Client) -> str:
    return str(create_key(api, scopes=["admin"], name="fuzz", rateLimitPerSecond=0)["key"])


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> Any:
    spec = httpx.get(f"{stack.base_url}/api/v1/docs/openapi.json", timeout=30).json()
    return schemathesis.openapi.from_dict(spec)


def test_api_fuzz(api_schema: Any, stack: Stack, fuzz_key: str) -> None:
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
                derandomize=True,
                database=None,
            )
            def run(case: Any) -> None:
                case.call_and_validate(base_url=stack.base_url, headers=headers, checks=CHECKS, timeout=30)

            try:
                run()
            except (Exception, BaseExceptionGroup) as error:
                failures.append(f"{operation.label} ({mode}): {str(error)[:1500]}")
    # What the fuzzer stored must still be servable: every list without path parameters answers.
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
        for path, item in api_schema.raw_schema["paths"].items():
            if "get" in item and "{" not in path:
                response = client.get(path, params={"limit": 100} if "limit" in str(item["get"]) else None)
                if response.status_code >= 500:
                    failures.append(f"GET {path} after fuzzing: {response.status_code} {response.text[:300]}")
    assert not failures, "\n\n".join(failures)
