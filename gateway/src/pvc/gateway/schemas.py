"""Request and response bodies of the REST API (camelCase on the wire). They also make the OpenAPI spec."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Item = TypeVar("Item")

PROMPT_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
TEXT_MAX = 10_000
TEMPLATE_MAX = 100_000

Variables = list[str | dict[str, Any]]


class Body(BaseModel):
    """Request bodies: unknown fields are refused and types are not coerced ("5" is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True)


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# -- errors and pages ---------------------------------------------------------------------------------


class ErrorDetail(Out):
    code: str = Field(examples=["NOT_FOUND"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(Out):
    error: ErrorDetail
    request_id: str | None


class PageMeta(Out):
    limit: int
    next_cursor: str | None


class Page(Out, Generic[Item]):
    data: list[Item]
    meta: PageMeta


class DataList(Out, Generic[Item]):
    data: list[Item]


# -- prompts and versions -------------------------------------------------------------------------------


class CreatePrompt(Body):
    name: str = Field(pattern=PROMPT_NAME_PATTERN, examples=["support-reply"])
    description: str = Field(default="", max_length=TEXT_MAX)
    metadata: dict[str, Any] = Field(default_factory=dict)
    template: str | None = Field(default=None, min_length=1, max_length=TEMPLATE_MAX)
    variables: Variables = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)


class UpdatePrompt(Body):
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    metadata: dict[str, Any] | None = None


class CreateVersion(Body):
    template: str = Field(min_length=1, max_length=TEMPLATE_MAX)
    variables: Variables = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    message: str = Field(default="", max_length=TEXT_MAX)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SetTag(Body):
    """Exactly one of `versionId` or `version` (the number)."""

    version_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    version: int | None = Field(default=None, ge=1)


class RenderRequest(Body):
    variables: dict[str, Any] = Field(default_factory=dict)
    version: int | str | None = Field(default=None, description="A version number or id")
    tag: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$")


class PromptOut(Out):
    id: str
    project_id: str
    name: str
    description: str
    metadata: dict[str, Any]
    archived: bool
    latest_version: int | None
    tags: dict[str, int]
    created_at: str
    updated_at: str


class VersionOut(Out):
    id: str
    prompt_id: str
    number: int
    template: str
    variables: list[Any]
    config: dict[str, Any]
    checksum: str
    message: str
    author: str
    metadata: dict[str, Any]
    created_at: str


class DiffSection(Out):
    type: Literal["added", "removed", "modified"]
    value: str
    old_value: str | None = None
    line_start: int


class DiffOut(Out):
    from_version: int
    to_version: int
    sections: list[DiffSection]
    stats: dict[str, int]
    variables: dict[str, list[str]]
    config: dict[str, Any]
    semantic_impact: Literal["none", "minor", "major"]
    impact: dict[str, Any]


class RenderOut(Out):
    version: int
    version_id: str
    rendered: str
    variables_used: list[str]
    missing_variables: list[str]


class TagOut(Out):
    name: str
    version_id: str
    version_number: int
    updated_at: str


class TagMoveOut(Out):
    kind: Literal["moved", "removed"]
    version_number: int | None
    previous_version_number: int | None
    actor: str
    at: str
