"""``openai``: chat completions, embeddings and the model list of the OpenAI API, or of any compatible server.

Auth is the API key as a bearer token. A connection may also set ``base_url`` to use any
OpenAI-compatible server (a local llama.cpp, vLLM or Ollama at ``http://127.0.0.1:8080/v1``, a
gateway...): the key is then sent to that origin only, and the platform's egress guard still
applies (a private or loopback address must be allowed with ``MASHPIPE_EGRESS_ALLOW``).

* ``openai.chat``: one chat completion (``POST /chat/completions``), from ``messages`` or from a
  plain ``prompt`` (plus an optional ``system`` message); returns the first choice's ``content``,
  every choice and the token usage. With ``response_format: json_object`` the reply is also
  decoded into ``data``.
* ``openai.embeddings``: embedding vectors for one text or a list of texts (``POST /embeddings``),
  in input order.
* ``openai.list_models``: the models the key can use (``GET /models``).

Errors keep the API's own explanation: ``{"error": {"message", "type", "code"}}`` becomes the step
error's message (``... answered 429: Rate limit reached (type: requests, code: rate_limit_exceeded)``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    BearerToken,
    Connector,
    Context,
    CredentialField,
    InvalidResponse,
    decode_json,
    raise_for_response,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

connector = Connector(
    key="openai",
    version="1.0.0",
    title="OpenAI",
    description="Chat completions and embeddings from OpenAI, or from any OpenAI-compatible server.",
    base_url=DEFAULT_BASE_URL,
    base_url_field="base_url",
    auth=[
        BearerToken(
            label="API key",
            extra_fields=[
                CredentialField(
                    "base_url",
                    f"Base URL of an OpenAI-compatible server (default {DEFAULT_BASE_URL})",
                    secret=False,
                    required=False,
                )
            ],
        )
    ],
    test_request=("GET", "/models"),
    docs_url="https://platform.openai.com/docs/api-reference",
)

Role = Literal["system", "developer", "user", "assistant"]


def explain_error(body: Any) -> str | None:
    """``{"error": {"message", "type", "code"}}`` as ``message (type: ..., code: ...)``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    tags = [f"{key}: {error[key]}" for key in ("type", "code") if error.get(key) not in (None, "")]
    return f"{error['message']} ({', '.join(tags)})" if tags else str(error["message"])


async def call(ctx: Context, method: str, path: str, *, seconds: float | None = None, **kwargs: Any) -> Any:
    """Send a request, raise the typed error (with OpenAI's explanation) on failure, return the JSON.

    ``seconds`` bounds the whole exchange (connecting takes at most 10 of them).
    """
    if seconds is not None:
        kwargs["timeout"] = httpx.Timeout(seconds, connect=min(seconds, 10.0))
    response = await ctx.http.request(method, path, **kwargs)
    raise_for_response(response, explain=explain_error)
    body = decode_json(response)
    if not isinstance(body, dict):
        raise InvalidResponse(f"openai: {method} {path} did not answer a JSON object")
    return body


class Message(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="Who speaks: system, developer, user or assistant")
    content: str = Field(max_length=1_000_000, description="The message text")
    name: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="Optional participant name"
    )


class ChatParams(BaseModel):
    """A chat completion request: either ``messages``, or a ``prompt`` with an optional ``system``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="Model id, such as gpt-4o-mini")
    messages: list[Message] = Field(
        default_factory=list, max_length=1000, description="The conversation so far (instead of prompt)"
    )
    prompt: str | None = Field(
        default=None, max_length=1_000_000, description="A single user message (instead of messages)"
    )
    system: str | None = Field(
        default=None, max_length=100_000, description="A system message put before prompt or messages"
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature, 0 to 2")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling probability mass")
    max_completion_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Upper bound of generated tokens (OpenAI)"
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Legacy upper bound of generated tokens, for compatible servers that lack the new name",
    )
    stop: list[str] = Field(default_factory=list, max_length=4, description="Up to 4 stop sequences")
    seed: int | None = Field(default=None, description="Seed for best-effort deterministic sampling")
    response_format: Literal["text", "json_object"] = Field(
        default="text", description="json_object asks for a JSON reply, decoded into `data`"
    )
    user: str | None = Field(
        default=None, max_length=256, description="An end-user id, for the provider's abuse monitoring"
    )
    timeout: float = Field(
        default=120.0, gt=0, le=600, description="Seconds to wait for the whole reply (long generations)"
    )

    @model_validator(mode="after")
    def _one_input(self) -> ChatParams:
        if bool(self.messages) == (self.prompt is not None):
            raise ValueError("give either messages or prompt (exactly one)")
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions``."""
        messages = [m.model_dump(exclude_none=True) for m in self.messages]
        if self.prompt is not None:
            messages = [{"role": "user", "content": self.prompt}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        for name in ("temperature", "top_p", "max_completion_tokens", "max_tokens", "seed", "user"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.stop:
            body["stop"] = self.stop
        if self.response_format != "text":
            body["response_format"] = {"type": self.response_format}
        return body


class ChoiceMessage(BaseModel):
    """The message of one choice."""

    model_config = ConfigDict(extra="ignore")

    role: str = Field(default="assistant", description="assistant")
    content: str | None = Field(default=None, description="The generated text (null for a refusal or tools)")
    refusal: str | None = Field(default=None, description="The model's refusal message, if it refused")


class Choice(BaseModel):
    """One generated alternative."""

    model_config = ConfigDict(extra="ignore")

    index: int = Field(default=0, description="Position among the choices")
    message: ChoiceMessage = Field(description="The generated message")
    finish_reason: str | None = Field(default=None, description="stop, length, content_filter or tool_calls")


class Usage(BaseModel):
    """Tokens counted by the API."""

    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = Field(default=0, description="Tokens of the input")
    completion_tokens: int = Field(default=0, description="Tokens generated")
    total_tokens: int = Field(default=0, description="Sum of both")


class ChatCompletion(BaseModel):
    """A chat completion, with the first choice's text at the top."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default="", description="Completion id")
    model: str = Field(default="", description="The model that answered")
    created: datetime | None = Field(default=None, description="When it was created (UTC)")
    content: str | None = Field(description="The first choice's text")
    finish_reason: str | None = Field(description="Why the first choice stopped")
    data: Any = Field(default=None, description="The reply decoded as JSON (response_format: json_object)")
    choices: list[Choice] = Field(description="Every choice")
    usage: Usage | None = Field(default=None, description="Token usage")


class EmbeddingsParams(BaseModel):
    """Texts to embed."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(
        description="One text, or a list of up to 2048 texts (each embedded separately)"
    )
    model: str = Field(
        default="text-embedding-3-small", min_length=1, max_length=200, description="Embedding model id"
    )
    dimensions: int | None = Field(
        default=None, ge=1, le=8192, description="Shorter vectors (text-embedding-3 models only)"
    )
    timeout: float = Field(default=60.0, gt=0, le=600, description="Seconds to wait for the reply")

    @model_validator(mode="after")
    def _bounded(self) -> EmbeddingsParams:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts or len(texts) > 2048:
            raise ValueError("input must hold 1 to 2048 texts")
        if any(not text for text in texts):
            raise ValueError("input texts must not be empty")
        return self


class Embeddings(BaseModel):
    """Embedding vectors, in the order of the input texts."""

    model: str = Field(description="The model that answered")
    embeddings: list[list[float]] = Field(description="One vector per input text, in input order")
    dimensions: int = Field(description="Length of each vector")
    usage: Usage | None = Field(default=None, description="Token usage")


class ModelsParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid")


class Model(BaseModel):
    """A model the key may use."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Model id, as given to chat or embeddings")
    owned_by: str | None = Field(default=None, description="The organisation owning it")
    created: datetime | None = Field(default=None, description="When it was created (UTC)")


@connector.action(title="Chat completion")
async def chat(ctx: Context, params: ChatParams) -> ChatCompletion:
    """Generate a chat completion; ``content`` is the first choice's text (``data`` its JSON, if asked)."""
    raw = await call(ctx, "POST", "/chat/completions", json=params.body(), seconds=params.timeout)
    choices = [Choice.model_validate(choice) for choice in raw.get("choices") or []]
    if not choices:
        raise InvalidResponse("openai: the completion has no choices")
    first = choices[0]
    data = None
    if params.response_format == "json_object" and first.message.content is not None:
        try:
            data = json.loads(first.message.content)
        except ValueError as exc:
            raise InvalidResponse(f"openai: the model's reply is not the JSON asked for ({exc})") from None
    return ChatCompletion.model_validate(
        {
            **raw,
            "content": first.message.content,
            "finish_reason": first.finish_reason,
            "data": data,
            "choices": choices,
        }
    )


@connector.action(title="Embeddings")
async def embeddings(ctx: Context, params: EmbeddingsParams) -> Embeddings:
    """Embedding vectors for one text or a list of texts, returned in input order."""
    body: dict[str, Any] = {"model": params.model, "input": params.input, "encoding_format": "float"}
    if params.dimensions is not None:
        body["dimensions"] = params.dimensions
    raw = await call(ctx, "POST", "/embeddings", json=body, seconds=params.timeout)
    items = raw.get("data")
    expected = 1 if isinstance(params.input, str) else len(params.input)
    if not isinstance(items, list) or len(items) != expected:
        raise InvalidResponse(f"openai: expected {expected} embeddings in `data`")
    ordered = sorted(items, key=lambda item: item.get("index", 0) if isinstance(item, dict) else 0)
    vectors = [item.get("embedding") if isinstance(item, dict) else None for item in ordered]
    return Embeddings.model_validate(
        {
            "model": raw.get("model") or params.model,
            "embeddings": vectors,
            "dimensions": len(vectors[0]) if isinstance(vectors[0], list) else 0,
            "usage": raw.get("usage"),
        }
    )


@connector.action(title="List models")
async def list_models(ctx: Context, params: ModelsParams) -> list[Model]:
    """The models available to the connection's key, sorted by id."""
    raw = await call(ctx, "GET", "/models")
    items = raw.get("data")
    if not isinstance(items, list):
        raise InvalidResponse("openai: GET /models has no `data` list")
    return sorted((Model.model_validate(item) for item in items), key=lambda model: model.id)
