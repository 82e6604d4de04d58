"""Settings read from the environment (prefix ``MASHPIPE_``); every field documents itself.

Settings are built once, by whoever starts the process (``create_app`` or the CLI), and
passed down. Nothing reads the environment at import time.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "xxx", "todo"})


class Settings(BaseSettings):
    """Process-wide configuration of a Mashpipe server, worker or CLI."""

    model_config = SettingsConfigDict(env_prefix="MASHPIPE_", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'mashpipe.db'}",
        description="SQLAlchemy async URL. Default: a SQLite file `mashpipe.db` in the working directory.",
    )
    secret_key: str | None = Field(
        default=None,
        description=(
            "Key material for hashing API keys and encrypting secrets. When unset, a random key is "
            "generated and kept in `<data dir>/secret.key` next to the SQLite file."
        ),
    )
    secret_keys: str = Field(
        default="",
        description=(
            "Comma-separated encryption keys for secrets and connection credentials, newest first: the first "
            "encrypts, all decrypt (rotation: put a new key first, run `mashpipe keys rotate-secrets`, then "
            "drop the old one). When unset, `secret_keys_file`, else the secret key, is used."
        ),
    )
    secret_keys_file: str | None = Field(
        default=None,
        description="A file of encryption keys, one a line, newest first (used when `secret_keys` is unset).",
    )
    api_rate_limit: str = Field(
        default="600/minute",
        description=(
            "Requests allowed per API key (limits syntax, such as `600/minute` or `10/second;600/minute`), "
            "on a moving window kept in memory. Empty turns the limit off."
        ),
    )
    public_rate_limit: str = Field(
        default="120/minute",
        description=(
            "Requests allowed per client IP and route on public endpoints (hooks, apps); empty turns it off."
        ),
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description=(
            "Where rate limit counters live: `memory://` (per process, default) or a store the `limits` "
            "package supports, such as `redis://host:6379`, shared by every process."
        ),
    )
    bootstrap_key: str | None = Field(
        default=None,
        description=(
            "When set and no account exists, an account `default` is created with exactly this API key."
        ),
    )
    egress_allow: str = Field(
        default="",
        description=(
            "Comma-separated CIDRs or host:port pairs that outbound requests may reach even though they "
            "are loopback, private or link-local (refused by default)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address `mashpipe serve` binds to.")
    port: int = Field(default=8000, description="Port `mashpipe serve` listens on.")
    telemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's OpenTelemetry spans, metrics and logs, for an OpenTelemetry SDK configured in the "
            "process (e.g. run under `opentelemetry-instrument`). Off: nothing is checked per request."
        ),
    )
    forwarded_allow_ips: str = Field(
        default="",
        description=(
            "Comma-separated addresses of the reverse proxies `mashpipe serve` trusts for "
            "`X-Forwarded-For`/`X-Forwarded-Proto` (`*`: any). Empty (the default): those headers are "
            "ignored and the client is the connection's peer (rate limits are per client IP)."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The server's external base URL (https://mashpipe.example.com). OAuth2 redirect URIs are "
            "`<public_url>/v1/oauth/callback`; register that URI with each OAuth app. Default: the URL the "
            "API request came to. OAuth clients: `MASHPIPE_OAUTH_<CONNECTOR>_CLIENT_ID` and "
            "`MASHPIPE_OAUTH_<CONNECTOR>_CLIENT_SECRET` (or per connection, in its credentials)."
        ),
    )
    max_body_bytes: int = Field(default=1_048_576, description="Largest request body the API accepts.")
    max_yaml_bytes: int = Field(default=262_144, description="Largest pipeline source accepted.")
    step_output_max_bytes: int = Field(
        default=262_144, description="Step outputs larger than this (as JSON) are stored truncated."
    )
    endpoint_step_output_max_bytes: int = Field(
        default=256,
        ge=0,
        description=(
            "Step outputs of SUCCEEDED published-endpoint runs larger than this (as JSON) are stored as a "
            "truncated preview (`{truncated, size, preview}`); failed endpoint runs and all other runs keep "
            "them up to MASHPIPE_STEP_OUTPUT_MAX_BYTES. An endpoint answering hundreds of calls a second "
            "would otherwise store every intermediate list of every call."
        ),
    )
    run_outputs_max_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="A run whose outputs (as JSON) are larger than this fails with `outputs_too_large`.",
    )
    response_max_bytes: int = Field(
        default=10_485_760, description="Largest upstream response body a connector may read."
    )
    http_timeout: float = Field(default=30.0, description="Default timeout, in seconds, for outbound HTTP.")
    http_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description=(
            "Retries of one connector call's idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, or any "
            "request with an Idempotency-Key) answered 429/500/502/503/504 or failing to connect, shared "
            "by every request of the call. Only a step's first attempt retries inside the SDK; a step's own "
            "`retry:` handles the rest, so the two add up instead of multiplying."
        ),
    )
    http_retry_max_wait: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Longest wait, in seconds, before an SDK retry. An upstream asking (Retry-After) for longer is "
            "not retried inside the call: the step fails as rate limited and its `retry:` decides."
        ),
    )
    http_cache_max_bytes: int = Field(
        default=33_554_432,
        ge=0,
        description=(
            "Memory for the HTTP cache of connectors that opt in (`cache=HttpCache(...)`); responses are "
            "kept per connection. 0 turns caching off."
        ),
    )
    http_transport: Literal["httpx", "aiohttp"] = Field(
        default="aiohttp",
        description=(
            "Transport of the outbound HTTP client: `aiohttp` (default: ~4x less CPU per request under "
            "concurrency; HTTP/1.1 only) or `httpx` (httpx's own pool, what respx mocks in tests). Both "
            "keep the egress guard and pin connections."
        ),
    )
    max_concurrent_runs: int = Field(
        default=32,
        ge=1,
        description=(
            "Runs executing at once in this process (the global limit; a pipeline's `concurrency.limit` "
            "applies within it)."
        ),
    )
    run_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Finished runs (and their steps) older than this many days are pruned; 0 keeps them.",
    )
    run_retention_max_per_pipeline: int = Field(
        default=10_000,
        ge=0,
        description="Finished runs beyond the newest N of each pipeline are pruned; 0 sets no cap.",
    )
    runs_total_max: int = Field(
        default=10_000,
        ge=0,
        description=(
            "`GET /v1/runs` counts matching runs up to this many: beyond it, `total` is this number and "
            "`total_exact` is false (a count stops early instead of scanning every match); 0 always "
            "counts exactly."
        ),
    )
    run_prune_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often the server prunes old runs (`mashpipe prune` does it on demand).",
    )
    run_heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How often a process marks the runs it executes as alive. A `running` run with no heartbeat "
            "for 3 intervals was left by a dead process: it is resumed or failed (see docs/runtime.md)."
        ),
    )
    run_wait_max_seconds: float = Field(
        default=30.0,
        description=(
            "Longest a `POST /v1/pipelines/{name}/runs` with `wait: true` blocks; past it the run is "
            "returned as it is (202) and keeps going."
        ),
    )
    webhook_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description=(
            "Largest body a `POST /v1/hooks/{id}` delivery may have (413 beyond); applies to hooks "
            "instead of `max_body_bytes`."
        ),
    )
    endpoint_cache_entries: int = Field(
        default=1024,
        ge=1,
        description=(
            "Results kept by the cache of published endpoints (`endpoint: {cache: ...}`), least recently "
            "used dropped first; one entry per revision and inputs."
        ),
    )
    triggers_enabled: bool = Field(
        default=True,
        description=(
            "Run the schedule and poll trigger loops in this process. Several processes may run them on "
            "one database: each fire time and each poll is handled once (see docs/triggers.md)."
        ),
    )
    trigger_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Longest the trigger loops sleep without re-reading the database (they notice schedules and "
            "polls saved by other processes within this delay)."
        ),
    )
    schedule_missed_policy: Literal["latest", "all", "none"] = Field(
        default="latest",
        description=(
            "What a schedule does with fire times missed while no scheduler ran (downtime): `latest` runs "
            "once for the latest missed time, `all` runs each (at most `schedule_catchup_max`, the most "
            "recent), `none` runs none. Every skipped fire time is counted and shown in the pipeline's view."
        ),
    )
    schedule_catchup_max: int = Field(
        default=10, ge=1, description="With `schedule_missed_policy=all`: most missed fire times run at once."
    )
    schedule_misfire_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "A fire time handled at most this late is on time, not missed: `schedule_missed_policy=none` "
            "still runs it."
        ),
    )
    poll_dedupe_window: int = Field(
        default=1000, ge=1, description="Dedupe keys a poll trigger remembers (the most recent ones)."
    )
    poll_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest one poll of a connector may take (then it counts as failed)."
    )
    poll_min_interval_seconds: float = Field(
        default=10.0, ge=0, description="Shortest time between two polls of a trigger, whatever its `every`."
    )
    poll_max_backoff_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "After failed polls a trigger waits `every` x 2^(failures-1), at most this long (or `every` "
            "when that is longer)."
        ),
    )
    poll_concurrency: int = Field(default=8, ge=1, description="Polls running at once in this process.")
    published_lookup_ttl: float = Field(
        default=1.0,
        ge=0,
        description=(
            "Seconds hooks and published endpoints reuse their lookup of a pipeline (its latest revision) "
            "before reading the database again: another process's new revision is used at most this late."
        ),
    )
    examples_dir: str | None = Field(
        default=None, description="Folder of pipeline YAML files loaded into the bootstrap account at start."
    )
    connectors: str = Field(
        default="",
        description="Comma-separated allowlist of connector keys to load (empty: all installed).",
    )
    log_level: str = Field(default="info", description="Log level of the server.")

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 16:
            raise ValueError("MASHPIPE_SECRET_KEY must be a real secret of at least 16 characters")
        return value

    @cached_property
    def egress_allow_list(self) -> list[str]:
        return [part.strip() for part in self.egress_allow.split(",") if part.strip()]

    @cached_property
    def connector_allowlist(self) -> set[str] | None:
        keys = {part.strip() for part in self.connectors.split(",") if part.strip()}
        return keys or None
