"""Request and response bodies of the REST API (camelCase on the wire). They also make the OpenAPI spec."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

Item = TypeVar("Item")

PROMPT_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
TEXT_MAX = 10_000
TEMPLATE_MAX = 100_000

Variables = list[str | dict[str, Any]]


class Body(BaseModel):
    """Request bodies: unknown fields are refused and types are not coerced ("5" is not 5).

    Text anywhere in a body (also inside free-form metadata) must be storable: no NUL characters
    (PostgreSQL text and jsonb refuse them) and no lone UTF-16 surrogates (not encodable as UTF-8);
    numbers stay within ±2^63 (jsonb stores numbers exactly, and must be able to give them back).
    """

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _check_text(data, "body")
        return data


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # PostgreSQL jsonb keeps numbers exact: 1e300 comes back as a 301-digit integer that no
        # 64-bit JSON encoder can write again. Numbers stay within the 64-bit integer range.
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: numbers must be between -2^63 and 2^63")
    elif isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise ValueError(f"{where}: text must be valid UTF-8 without NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, f"{where}.{key}" if isinstance(key, str) and _encodable(key) else where)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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


# -- evaluations, gate and promotions ----------------------------------------------------------------

HARNESS_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
EvaluationStatus = Literal["passed", "failed", "error", "pending", "running"]


class CreateEvaluation(Body):
    version_id: str = Field(pattern=UUID_PATTERN)
    harness: str = Field(pattern=HARNESS_PATTERN, examples=["quality"])
    status: EvaluationStatus
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=100)
    details: Any = None
    external_id: str | None = Field(default=None, max_length=500)


class TriggerEvaluation(Body):
    version_id: str = Field(pattern=UUID_PATTERN)
    harness: str = Field(pattern=HARNESS_PATTERN)


class PutHarness(Body):
    url: str = Field(min_length=1, max_length=2048, examples=["http://127.0.0.1:9000/evaluate"])
    secret: str | None = Field(default=None, max_length=200, description="whsec_...; generated when absent")
    timeout_seconds: float = Field(default=300, gt=0, le=86_400)


class MetricThreshold(Body):
    min: float | None = None
    max: float | None = None


class GatePolicyBody(Body):
    min_score: float = Field(default=0.8, ge=0, le=1)
    required_harnesses: list[str] = Field(default_factory=list, max_length=50)
    max_age_hours: float | None = Field(default=None, gt=0)
    metric_thresholds: dict[str, MetricThreshold] = Field(default_factory=dict, max_length=50)


class PromoteBody(Body):
    version_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    reason: str = Field(default="", max_length=TEXT_MAX)


class OverrideBody(Body):
    version_id: str = Field(pattern=UUID_PATTERN)
    reason: str = Field(min_length=1, max_length=TEXT_MAX)


class RollbackBody(Body):
    reason: str = Field(default="", max_length=TEXT_MAX)


class EvaluationOut(Out):
    id: str
    version_id: str
    prompt_id: str
    harness: str
    status: EvaluationStatus
    score: float | None
    metrics: dict[str, float]
    details: Any
    external_id: str | None
    created_at: str
    completed_at: str | None


class GatePolicyOut(Out):
    min_score: float
    required_harnesses: list[str]
    max_age_hours: float | None
    metric_thresholds: dict[str, dict[str, float]]


class GateOut(Out):
    version_id: str
    prompt_id: str
    can_promote: bool
    reasons: list[str]
    policy: GatePolicyOut
    evaluations: list[EvaluationOut]
    checked_at: str


class HarnessOut(Out):
    name: str
    url: str
    timeout_seconds: float
    secret: str | None = Field(default=None, description="Only in the answer that created or replaced it")
    created_at: str
    updated_at: str


class PromoteOut(Out):
    promoted: bool
    version: int
    version_id: str
    previous_version: int | None
    gate: GateOut


class OverrideOut(Out):
    promoted: bool
    overridden: bool
    version: int
    version_id: str
    previous_version: int | None
    reason: str


class RollbackOut(Out):
    rolled_back: bool
    version: int
    version_id: str
    previous_version: int | None
    reason: str


class PromotionOut(Out):
    kind: Literal["promote", "override", "rollback"]
    from_version: int | None
    to_version: int
    to_version_id: str
    actor: str
    reason: str
    gate: GateOut | None
    at: str


# -- webhooks ---------------------------------------------------------------------------------------------

WEBHOOK_URL_MAX = 2048


class CreateWebhook(Body):
    url: str = Field(min_length=1, max_length=WEBHOOK_URL_MAX, examples=["https://ci.example.com/pvc-hook"])
    events: list[str] = Field(min_length=1, max_length=50, examples=[["version.created", "tag.moved"]])
    description: str = Field(default="", max_length=1000)


class UpdateWebhook(Body):
    url: str | None = Field(default=None, min_length=1, max_length=WEBHOOK_URL_MAX)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=1000)


class WebhookOut(Out):
    id: str
    project_id: str
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookWithSecretOut(WebhookOut):
    secret: str = Field(description="`whsec_...`: shown only on create and rotate")


class AttemptOut(Out):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(Out):
    id: str
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str


class DeliveryDetailOut(DeliveryOut):
    attempt_history: list[AttemptOut] = Field(description="Every attempt, oldest first")


# -- deployments and metrics ------------------------------------------------------------------------------

METRIC_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$"
TAG_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"


class VariantIn(Body):
    version_id: str = Field(pattern=UUID_PATTERN)
    # Not bounded here: a weight < 0 or a total other than 100 is 400 INVALID_WEIGHTS from the service.
    weight: float = Field(allow_inf_nan=False)
    is_control: bool = False


class GuardrailIn(Body):
    metric: str = Field(pattern=METRIC_NAME_PATTERN, examples=["latency_ms"])
    stat: Literal["mean", "p95"] = "mean"
    max: float | None = Field(default=None, allow_inf_nan=False)
    min: float | None = Field(default=None, allow_inf_nan=False)
    min_samples: int = Field(default=30, ge=1, le=10**9)


class CreateDeployment(Body):
    prompt_id: str = Field(pattern=UUID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    variants: list[VariantIn] = Field(min_length=1, max_length=20)
    status: Literal["active", "paused"] = "active"
    guardrails: list[GuardrailIn] = Field(default_factory=list, max_length=20)


class UpdateDeployment(Body):
    status: Literal["active", "paused"] | None = None
    variants: list[VariantIn] | None = Field(default=None, min_length=1, max_length=20)
    guardrails: list[GuardrailIn] | None = Field(default=None, max_length=20)


class VariantOut(Out):
    version_id: str
    version_number: int
    weight: float
    is_control: bool


class DeploymentOut(Out):
    id: str
    project_id: str
    prompt_id: str
    name: str
    status: Literal["active", "paused", "archived"]
    variants: list[VariantOut]
    guardrails: list[dict[str, Any]]
    seed: str = Field(description="Salt of the sticky bucketing hash; see docs/deployments.md")
    paused_reason: dict[str, Any] | None
    created_at: str
    updated_at: str


class DeploymentResolveOut(Out):
    deployment_id: str
    version_id: str
    version_number: int
    session_id: str | None
    sticky: bool


class ServedVersion(Out):
    id: str
    number: int
    template: str
    variables: list[Any]
    config: dict[str, Any]


class PromptResolveOut(Out):
    version: ServedVersion
    deployment_id: str | None
    source: Literal["deployment", "tag"]


class MetricPointIn(Body):
    version_id: str = Field(pattern=UUID_PATTERN)
    type: Literal["cost", "latency", "quality", "custom"]
    name: str = Field(pattern=METRIC_NAME_PATTERN)
    value: float = Field(allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=32)
    timestamp: str | None = Field(default=None, max_length=64, description="RFC 3339; default: now")
    session_id: str | None = Field(default=None, min_length=1, max_length=256)
    deployment_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    dimensions: dict[str, str | int | float | bool] | None = Field(default=None, max_length=32)


class MetricsIngest(Body):
    metrics: list[MetricPointIn] = Field(min_length=1, max_length=10_000)


class Ingested(Out):
    ingested: int


class MetricAggregateOut(Out):
    name: str
    type: str
    unit: str
    count: int
    sum: float
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    stddev: float


class VersionMetricsOut(Out):
    version_id: str
    version_number: int
    metrics: list[MetricAggregateOut]


class Comparison(Out):
    samples: dict[str, int]
    delta: float
    relative_delta: float | None
    ci95: list[float] | None = Field(description="95% CI of the difference of means (Welch)")
    p_value: float | None = Field(description="Two-sided p-value of Welch's t-test")
    t: float | None
    df: float | None


class VariantMetricOut(MetricAggregateOut):
    vs_control: Comparison | None = None


class VariantResultOut(Out):
    version_id: str
    version_number: int | None
    weight: float
    is_control: bool
    samples: int
    metrics: dict[str, VariantMetricOut]


class ResultsOut(Out):
    deployment_id: str
    status: str
    paused_reason: dict[str, Any] | None
    window: dict[str, str | None]
    method: Literal["welch-t"]
    control: str | None
    variants: list[VariantResultOut]
