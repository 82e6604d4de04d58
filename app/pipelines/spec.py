"""The typed model of a pipeline file, format version 1 (``shared/docs/pipeline-format.md``).

These models are the single source of the format: validation reads them, the engine runs
them and the JSON Schema served at ``/v1/schemas/pipeline.json`` is generated from them.
Expression strings (``${{ ... }}`` and bare expressions) are kept as written here; the
validator compiles them and the engine evaluates them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.pipelines.durations import parse_duration

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_ID_PATTERN = r"^[a-z_][a-z0-9_]*$"
USES_PATTERN = r"^[a-z0-9_]+\.[a-z0-9_]+$"

Duration = Annotated[
    str | int | float,
    Field(description="A duration: 500ms, 10s, 5m, 2h, 1d, or a number of seconds"),
]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_duration(value: str | int | float | None) -> str | int | float | None:
    if value is not None:
        parse_duration(value)
    return value


class InputSpec(SpecModel):
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    default: Any = None
    required: bool = False
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str | None = None


RetryOn = Literal["timeout", "http_429", "http_5xx", "connection"]


class RetrySpec(SpecModel):
    attempts: int = Field(default=1, ge=1, le=20, description="Total attempts, the first one included")
    backoff: Literal["constant", "linear", "exponential"] = "exponential"
    initial: Duration = "500ms"
    max: Duration = "30s"
    on: list[RetryOn] | None = Field(
        default=None,
        description="Which failures are retried (default: timeout, http_429, http_5xx, connection)",
    )

    _durations = field_validator("initial", "max")(_check_duration)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` starts at 1)."""
        initial = parse_duration(self.initial)
        if self.backoff == "constant":
            delay = initial
        elif self.backoff == "linear":
            delay = initial * attempt
        else:
            delay = initial * (2 ** (attempt - 1))
        return min(delay, parse_duration(self.max))

    def retries(self, kind: str | None) -> bool:
        if kind is None:
            return False
        allowed = self.on or ["timeout", "http_429", "http_5xx", "connection"]
        return kind in allowed


class DefaultsSpec(SpecModel):
    timeout: Duration | None = None
    retry: RetrySpec | None = None

    _durations = field_validator("timeout")(_check_duration)


class ConcurrencySpec(SpecModel):
    limit: int = Field(ge=1, le=1000)
    on_conflict: Literal["queue", "skip", "fail"] = "queue"


class StepSpec(SpecModel):
    id: str = Field(pattern=STEP_ID_PATTERN, max_length=64)
    uses: str = Field(pattern=USES_PATTERN, description="CONNECTOR.OPERATION or core.STEP")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    connection: str | None = Field(default=None, max_length=128)
    if_: str | None = Field(default=None, alias="if", description="Bare CEL expression yielding a boolean")
    for_each: str | list[Any] | None = None
    concurrency: int = Field(default=10, ge=1, le=1000)
    needs: list[str] = Field(default_factory=list)
    timeout: Duration | None = None
    retry: RetrySpec | None = None
    on_error: Literal["fail", "continue"] = "fail"
    on_error_output: Any = None
    description: str | None = None

    _durations = field_validator("timeout")(_check_duration)


class ScheduleTrigger(SpecModel):
    cron: str
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)


class HmacVerify(SpecModel):
    header: str
    secret: str
    prefix: str = ""


class WebhookVerify(SpecModel):
    hmac_sha256: HmacVerify | None = None
    standard_webhooks: dict[str, Any] | None = None


class WebhookTrigger(SpecModel):
    verify: WebhookVerify | None = None
    dedupe_header: str | None = None


class EndpointTrigger(SpecModel):
    format: Literal["json", "rss", "csv"] = "json"
    cache: Duration | None = None
    public: bool = True

    _durations = field_validator("cache")(_check_duration)


class PollTrigger(SpecModel):
    uses: str = Field(pattern=USES_PATTERN)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    connection: str | None = None
    every: Duration = "5m"

    _durations = field_validator("every")(_check_duration)


class Trigger(SpecModel):
    """Exactly one of the keys is set."""

    schedule: ScheduleTrigger | None = None
    webhook: WebhookTrigger | None = None
    endpoint: EndpointTrigger | None = None
    poll: PollTrigger | None = None

    @property
    def kind(self) -> str:
        for kind in ("schedule", "webhook", "endpoint", "poll"):
            if getattr(self, kind) is not None:
                return kind
        raise ValueError("empty trigger")


class PipelineSpec(SpecModel):
    version: Literal[1]
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=list)
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    concurrency: ConcurrencySpec | None = None
    steps: list[StepSpec] = Field(min_length=1)
    outputs: dict[str, Any] = Field(default_factory=dict)

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
