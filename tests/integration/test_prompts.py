"""Prompts through Envoy: create, read by id or name, list, search, paginate, update, archive."""

from __future__ import annotations

import uuid

import httpx

from .support import ClientFactory, assert_error, unique


def create(api: httpx.Client, **body: object) -> dict[str, object]:
    response = api.post("/api/v1/prompts", json={"name": unique(), **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_and_get_by_id_and_name(api: httpx.Client) -> None:
    name = unique("support")
    created = api.post(
        "/api/v1/prompts", json={"name": name, "description": "Replies", "metadata": {"team": "cx", "n": 1}}
    )
    assert created.status_code == 201, created.text
    prompt = created.json()
    uuid.UUID(prompt["id"])
    assert prompt["name"] == name
    assert prompt["description"] == "Replies"
    assert prompt["metadata"] == {"team": "cx", "n": 1}
    assert prompt["archived"] is False
    assert prompt["latestVersion"] is None
    assert prompt["tags"] == {}
    assert prompt["createdAt"].endswith("Z")
    assert api.get(f"/api/v1/prompts/{prompt['id']}").json() == prompt
    assert api.get(f"/api/v1/prompts/{name}").json() == prompt


def test_create_with_template_makes_version_one(api: httpx.Client) -> None:
    prompt = create(api, template="Hello {{name}}", variables=["name"], config={"temperature": 0.2})
    assert prompt["latestVersion"] == 1
    version = api.get(f"/api/v1/prompts/{prompt['id']}/versions/1").json()
    assert version["template"] == "Hello {{name}}"
    assert version["variables"] == ["name"]
    assert version["config"] == {"temperature": 0.2}


def test_duplicate_name_conflicts_and_changes_nothing(api: httpx.Client) -> None:
    prompt = create(api, description="first")
    again = api.post("/api/v1/prompts", json={"name": prompt["name"], "description": "second"})
    assert_error(again, 409, "CONFLICT")
    assert api.get(f"/api/v1/prompts/{prompt['name']}").json()["description"] == "first"


def test_uuid_shaped_name_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/v1/prompts", json={"name": str(uuid.uuid4())})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "name" in error["details"]["fields"]  # type: ignore[index]


def test_list_newest_first_with_search_and_cursor_pagination(api: httpx.Client) -> None:
    marker = uuid.uuid4().hex[:8]
    names = [f"list-{marker}-{i}" for i in range(5)]
    for name in names:
        assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, "q": marker}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/prompts", params=params).json()
        assert page["meta"]["limit"] == 2
        assert len(page["data"]) <= 2
        seen += [p["name"] for p in page["data"]]
        cursor = page["meta"]["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(names))


def test_list_default_limit_and_bounds(api: httpx.Client) -> None:
    page = api.get("/api/v1/prompts").json()
    assert page["meta"]["limit"] == 20
    assert len(page["data"]) <= 20
    assert_error(api.get("/api/v1/prompts", params={"limit": 0}), 400, "VALIDATION_ERROR")
    assert_error(api.get("/api/v1/prompts", params={"limit": 101}), 400, "VALIDATION_ERROR")
    assert_error(api.get("/api/v1/prompts", params={"limit": "ten"}), 400, "VALIDATION_ERROR")
    assert_error(api.get("/api/v1/prompts", params={"cursor": "not-a-cursor"}), 400, "VALIDATION_ERROR")


def test_update_description_and_metadata(api: httpx.Client) -> None:
    prompt = create(api)
    updated = api.put(
        f"/api/v1/prompts/{prompt['id']}", json={"description": "new", "metadata": {"k": [1, 2]}}
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["description"] == "new"
    assert body["metadata"] == {"k": [1, 2]}
    assert body["updatedAt"] >= prompt["updatedAt"]  # type: ignore[operator]
    # A partial update leaves the other field alone.
    assert api.put(f"/api/v1/prompts/{prompt['id']}", json={"description": "newer"}).json()["metadata"] == {
        "k": [1, 2]
    }


def test_archive_hides_from_list_and_blocks_changes(api: httpx.Client) -> None:
    prompt = create(api, template="v1")
    archived = api.delete(f"/api/v1/prompts/{prompt['name']}")
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    listed = api.get("/api/v1/prompts", params={"q": prompt["name"]}).json()["data"]
    assert listed == []
    listed = api.get("/api/v1/prompts", params={"q": prompt["name"], "archived": "true"}).json()["data"]
    assert [p["id"] for p in listed] == [prompt["id"]]
    assert_error(
        api.post(f"/api/v1/prompts/{prompt['id']}/versions", json={"template": "v2"}), 409, "ARCHIVED"
    )
    assert_error(
        api.post(f"/api/v1/prompts/{prompt['id']}/tags/staging", json={"version": 1}), 409, "ARCHIVED"
    )
    assert api.get(f"/api/v1/prompts/{prompt['id']}").json()["latestVersion"] == 1


def test_another_projects_prompt_is_not_found(api: httpx.Client, client_for: ClientFactory) -> None:
    prompt = create(api, template="secret")
    other = client_for(scopes=["admin"], project=unique("proj"))
    for path in (
        f"/api/v1/prompts/{prompt['id']}",
        f"/api/v1/prompts/{prompt['name']}",
        f"/api/v1/prompts/{prompt['id']}/versions",
        f"/api/v1/prompts/{prompt['id']}/versions/1",
        f"/api/v1/prompts/{prompt['id']}/tags",
    ):
        assert_error(other.get(path), 404, "NOT_FOUND")
    assert_error(
        other.post(f"/api/v1/prompts/{prompt['id']}/versions", json={"template": "x"}), 404, "NOT_FOUND"
    )
    assert_error(other.delete(f"/api/v1/prompts/{prompt['id']}"), 404, "NOT_FOUND")
    assert api.get(f"/api/v1/prompts/{prompt['id']}").json()["archived"] is False
    # Names are unique per project, not globally.
    assert other.post("/api/v1/prompts", json={"name": prompt["name"]}).status_code == 201
    assert prompt["id"] not in [p["id"] for p in other.get("/api/v1/prompts").json()["data"]]
