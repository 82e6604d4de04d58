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
    """A typed parameter of the pipeline; values given to a run are checked and coerced."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = Field(
        default="string", description="The type of the value"
    )
    default: Any = Field(default=None, description="The value when the run does not give one")
    required: bool = Field(default=False, description="A run must give this input (unless it has a default)")
    enum: list[Any] | None = Field(default=None, description="The only values allowed")
    minimum: float | None = Field(default=None, description="Smallest allowed value (integer and number)")
    maximum: float | None = Field(default=None, description="Largest allowed value (integer and number)")
    description: str | None = Field(default=None, description="What the input is for")


RetryOn = Literal["timeout", "http_429", "http_5xx", "connection"]


class RetrySpec(SpecModel):
    """How a step is retried after a transient failure (never after a 4xx other than 429)."""

    attempts: int = Field(default=1, ge=1, le=20, description="Total attempts, the first one included")
    backoff: Literal["constant", "linear", "exponential"] = Field(
        default="exponential", description="How the delay grows between attempts"
    )
    initial: Duration = Field(default="500ms", description="The delay before the second attempt")
    max: Duration = Field(default="30s", description="The longest delay between two attempts")
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
    """Applied to every step that does not set its own."""

    timeout: Duration | None = Field(default=None, description="Time allowed to one attempt of a step")
    retry: RetrySpec | None = Field(default=None, description="Retry policy of the steps")

    _durations = field_validator("timeout")(_check_duration)


class ConcurrencySpec(SpecModel):
    """How many runs of this pipeline may be in progress at once."""

    limit: int = Field(ge=1, le=1000, description="Runs in progress at most")
    on_conflict: Literal["queue", "skip", "fail"] = Field(
        default="queue", description="What happens to a run over the limit: wait, be skipped, or fail"
    )


class StepSpec(SpecModel):
    """One step: a connector operation or a built-in ``core.*`` step."""

    id: str = Field(
        pattern=STEP_ID_PATTERN, max_length=64, description="Unique in the pipeline: `steps.ID.output`"
    )
    uses: str = Field(pattern=USES_PATTERN, description="CONNECTOR.OPERATION or core.STEP")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="The operation's parameters; strings may hold `${{ expression }}`",
    )
    connection: str | None = Field(
        default=None, max_length=128, description="A stored connection (token, API key) of the account"
    )
    if_: str | None = Field(
        default=None,
        alias="if",
        description="Bare CEL expression yielding a boolean (no `${{ }}`); false skips the step",
    )
    for_each: str | list[Any] | None = Field(
        default=None,
        description="`${{ expression }}` yielding a list, or a literal list: the step runs once per element"
        " with `item` and `index`",
    )
    concurrency: int = Field(default=10, ge=1, le=1000, description="With `for_each`: elements at once")
    needs: list[str] = Field(
        default_factory=list, description="Steps to wait for without reading their output"
    )
    timeout: Duration | None = Field(default=None, description="Time allowed to one attempt")
    retry: RetrySpec | None = Field(default=None, description="Retry policy of this step")
    on_error: Literal["fail", "continue"] = Field(
        default="fail", description="`fail`: the run fails; `continue`: the step fails, the run goes on"
    )
    on_error_output: Any = Field(
        default=None, description="The step's output when it failed with `on_error: continue`"
    )
    description: str | None = Field(default=None, description="What the step does")

    _durations = field_validator("timeout")(_check_duration)


class ScheduleTrigger(SpecModel):
    """Run at each fire time of a cron expression."""

    cron: str = Field(description='Five fields: minute hour day month weekday, e.g. "0 8 * * 1-5"')
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Paris")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The inputs of the scheduled runs")


class HmacVerify(SpecModel):
    """Check an HMAC-SHA256 signature of the request body."""

    header: str = Field(description="The header holding the signature, e.g. X-Hub-Signature-256")
    secret: str = Field(description="The shared secret, as `${{ secrets.NAME }}`")
    prefix: str = Field(default="", description='Text before the hex digest in the header, e.g. "sha256="')


class StandardWebhooksVerify(SpecModel):
    """Check a Standard Webhooks signature (standardwebhooks.com): the ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature: v1,<base64>`` headers."""

    secret: str = Field(
        description="The signing secret, `whsec_<base64>`, as `${{ secrets.NAME }}` or written out"
    )
    tolerance: Duration = Field(
        default="5m", description="How far the webhook-timestamp may be from the server's clock"
    )

    _durations = field_validator("tolerance")(_check_duration)


class WebhookVerify(SpecModel):
    """How a webhook call proves where it comes from; forged calls get 401."""

    hmac_sha256: HmacVerify | None = Field(default=None, description="HMAC-SHA256 signature in a header")
    standard_webhooks: StandardWebhooksVerify | None = Field(
        default=None, description="Standard Webhooks signature (webhook-id, -timestamp, -signature headers)"
    )


class WebhookTrigger(SpecModel):
    """Run on each POST to the pipeline's hook URL; `trigger.body/headers/query` carry the request."""

    verify: WebhookVerify | None = Field(default=None, description="Signature check of the calls")
    dedupe_header: str | None = Field(
        default=None, description="A header whose repeated value starts no second run, e.g. X-GitHub-Delivery"
    )


class EndpointTrigger(SpecModel):
    """Publish the pipeline's outputs at GET /v1/apps/{account}/{name}?input=value."""

    format: Literal["json", "rss", "csv"] = Field(default="json", description="How the outputs are served")
    cache: Duration | None = Field(default=None, description="How long a result is served again")
    public: bool = Field(default=True, description="Served without an API key")

    _durations = field_validator("cache")(_check_duration)


class PollTrigger(SpecModel):
    """Call a connector's polling trigger on an interval; new items start a run (`trigger.items`)."""

    uses: str = Field(pattern=USES_PATTERN, description="CONNECTOR.TRIGGER")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The trigger's parameters")
    connection: str | None = Field(default=None, description="A stored connection of the account")
    every: Duration = Field(default="5m", description="The polling interval")

    _durations = field_validator("every")(_check_duration)


class Trigger(SpecModel):
    """Exactly one of the keys is set."""

    schedule: ScheduleTrigger | None = Field(default=None, description="Run on a cron schedule")
    webhook: WebhookTrigger | None = Field(default=None, description="Run on each call of a hook URL")
    endpoint: EndpointTrigger | None = Field(default=None, description="Serve the outputs at a public URL")
    poll: PollTrigger | None = Field(default=None, description="Run when a connector finds new items")

    @property
    def kind(self) -> str:
        for kind in ("schedule", "webhook", "endpoint", "poll"):
            if getattr(self, kind) is not None:
                return kind
        raise ValueError("empty trigger")


class PipelineSpec(SpecModel):
    """A Mashpipe pipeline, format version 1."""

    version: Literal[1] = Field(description="The format version: 1")
    name: str = Field(pattern=NAME_PATTERN, description="Slug, unique within the account")
    description: str | None = Field(default=None, description="What the pipeline does")
    inputs: dict[str, InputSpec] = Field(default_factory=dict, description="Typed parameters, by name")
    triggers: list[Trigger] = Field(
        default_factory=list, description="What starts a run, besides a run by hand (API, CLI)"
    )
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec, description="Timeout and retry of the steps")
    concurrency: ConcurrencySpec | None = Field(default=None, description="Runs of this pipeline at once")
    steps: list[StepSpec] = Field(
        min_length=1, description="The steps; the data references decide the order of execution"
    )
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="The run's result, by name: values with `${{ expression }}`"
    )

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
