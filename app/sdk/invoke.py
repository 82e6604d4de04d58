"""Calling an operation the way the platform does: validate, build the context, call, convert, map errors.

Used by the runtime's ``ConnectorCaller`` and by the testing harness, so a connector behaves the
same in its tests as in a run:

* params are validated against the operation's input model (``invalid_params`` with details);
  a webhook's call is checked against its declared signature verifier first (401 when refused);
* the connection's credentials pick the auth kind and build ``ctx.http``;
* the result is checked against the declared return type and converted to JSON values;
* ``httpx`` failures become typed errors; a pydantic ``ValidationError`` raised inside the operation
  (upstream data of an unexpected shape) becomes ``InvalidResponse``; any other exception becomes a
  failed step ``connector raised ValueError: ...``. ``StepError`` subclasses pass through unchanged,
  except that the connection's secret values are masked in their message and details.
"""

from __future__ import annotations

import functools
import json
import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import UnionType
from typing import Any, Union, get_args, get_origin

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from app.errors import StepError
from app.sdk.auth import AuthKind, NoAuth, select_auth
from app.sdk.connector import Connector, Operation, Poll
from app.sdk.context import Context, StepLog
from app.sdk.errors import InvalidResponse
from app.sdk.http import ConnectorHTTP, map_transport_error, merge_headers
from app.sdk.ratelimit import RateLimiter
from app.sdk.redaction import mask_error, secret_values
from app.sdk.retries import RetryPolicy
from app.sdk.webhooks import (
    WebhookPayloadInvalid,
    WebhookRequest,
    WebhookSignatureInvalid,
    check_signature,
)

logger = logging.getLogger("mashpipe.connectors")
MAX_ERROR_CHARS = 500


@dataclass(slots=True)
class PollResult:
    """The JSON outcome of one poll: items, one dedupe key per item, and the new cursor."""

    items: list[Any]
    keys: list[str]
    cursor: Any


@dataclass(slots=True)
class CallOptions:
    """Everything an invocation needs besides the operation and its params."""

    http_client: httpx.AsyncClient
    max_response_bytes: int | None = None
    credentials: Mapping[str, Any] | None = None
    log: list[str] | None = None
    run_id: str = ""
    step_id: str = ""
    attempt: int = 1
    limiter: RateLimiter | None = None
    limiter_name: str = "this connection"
    clock: Callable[[], datetime] | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    retry: RetryPolicy | None = None  # SDK retries of idempotent requests (app.sdk.retries); None: none


def pydantic_problems(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{path, message, type}]`` (input values left out: they may be secrets)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        problems.append({"path": path, "message": error["msg"], "type": error["type"]})
    return problems


def validate_params(operation: Operation, raw: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """``raw`` validated against the operation's input model; ``invalid_params`` step error otherwise."""
    if isinstance(raw, operation.input_model):
        return raw
    data = raw.model_dump(by_alias=True) if isinstance(raw, BaseModel) else (raw or {})
    if not isinstance(data, Mapping):
        raise StepError(
            f"{operation.uses}: `with` must be an object, got {type(data).__name__}", code="invalid_params"
        )
    try:
        return operation.input_model.model_validate(dict(data))
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        summary = "; ".join(f"{p['path'] or '(root)'}: {p['message']}" for p in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StepError(
            f"invalid parameters for {operation.uses}: {summary}{more}",
            code="invalid_params",
            details=problems,
        ) from None


@functools.lru_cache(maxsize=256)
def _placeholder_names(base_url: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(base_url) if name)


def _placeholders(base_url: str) -> list[str]:
    """The ``{placeholder}`` names of a base URL (parsed once per base URL)."""
    return list(_placeholder_names(base_url))


def build_context(connector: Connector, operation: Operation, options: CallOptions) -> Context:
    """The :class:`Context` of one call (auth selected from the credentials; a webhook may have none)."""
    kind: AuthKind
    auth: httpx.Auth | None
    if operation.kind == "webhook" and not options.credentials:
        kind, auth = NoAuth(), None  # an inbound call needs no connection; its signature is its proof
    else:
        kind, auth = select_auth(connector.auth, options.credentials, connector=connector.key)
    credentials = options.credentials
    if credentials:
        secrets = [v for v in credentials.values() if isinstance(v, str)]
        public = [f.name for f in kind.fields if not f.secret]
        if connector.base_url:  # base URL placeholders are host labels, shown in every URL anyway
            public += _placeholders(connector.base_url)
        masked = secret_values(credentials, public=public)
    else:  # no connection: nothing to mask
        secrets, masked = [], ()
    log = StepLog(options.log, name=f"mashpipe.connectors.{connector.key}", secrets=secrets)
    retry = options.retry
    budget = retry.budget(attempt=options.attempt, note=log.warning) if retry is not None else None
    extra = options.extra_headers
    http = ConnectorHTTP(
        options.http_client,
        base_url=connector.base_url_for(credentials),
        auth=auth,
        max_response_bytes=options.max_response_bytes,
        limiter=options.limiter,
        limiter_name=options.limiter_name,
        headers=merge_headers(connector.headers, extra) if extra else connector.headers,  # copied by it
        secrets=masked,
        retry=budget,
        cache=connector.cache_for(operation),
    )
    return Context(
        connector=connector.key,
        operation=operation.name,
        http=http,
        log=log,
        credentials=options.credentials,
        run_id=options.run_id,
        step_id=options.step_id,
        attempt=options.attempt,
        clock=options.clock,
    )


def _failure(exc: Exception, operation: Operation, ctx: Context) -> tuple[StepError, bool]:
    """The step error for ``exc``, with the connection's secrets masked; True when some were masked."""
    error = map_exception(exc, operation)
    return error, mask_error(error, ctx.http.secrets)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"


def map_exception(exc: Exception, operation: Operation) -> StepError:
    """The step error reported for an exception escaping ``operation``."""
    if isinstance(exc, StepError):
        return exc
    mapped = map_transport_error(exc)
    if isinstance(mapped, StepError):
        return mapped
    if isinstance(exc, ValidationError):
        problems = pydantic_problems(exc)
        return InvalidResponse(
            _clip(
                f"{operation.uses}: the upstream data has an unexpected shape: {exc.title}: "
                + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:3])
            ),
            details=problems,
        )
    logger.warning("%s raised %s", operation.uses, type(exc).__name__, exc_info=exc)
    return StepError(
        _clip(f"connector raised {type(exc).__name__}: {exc}"),
        code="connector_error",
        details={"operation": operation.uses, "exception": type(exc).__name__},
    )


def type_name(annotation: Any) -> str:
    """A short name of a type for messages: ``list[Issue]``, ``dict[str, Any]``, ``Feed``."""
    args = get_args(annotation)
    origin = get_origin(annotation)
    if annotation is type(None):
        return "None"
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join(type_name(arg) for arg in args)}]"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


_PLAIN_JSON_ONLY = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""orjson refuses (TypeError) what it would not write as plain JSON types: datetimes, dataclasses, subclasses
of str/int/dict/list; sets, bytes, non-string keys and integers beyond 64 bits are refused anyway."""


def _convert(operation: Operation, value: Any, what: str = "output") -> tuple[Any, Any]:
    """``value`` checked against the declared output type, and its JSON form."""
    if operation.output_type is Any:
        # What pydantic's dump of ``Any`` gives (tuples as lists, enums as values, UUIDs as text, NaN as
        # null), for a value orjson writes as plain JSON, in a third of the time (the round trip).
        try:
            return value, orjson.loads(orjson.dumps(value, option=_PLAIN_JSON_ONLY))
        except (TypeError, orjson.JSONEncodeError):
            pass  # anything else: the adapter decides
    try:
        checked = operation.output_adapter.validate_python(value)
        return checked, operation.output_adapter.dump_python(checked, mode="json")
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        declared = type_name(operation.output_type)
        raise StepError(
            _clip(
                f"{operation.uses} returned an {what} that does not match its declared type {declared}: "
                + "; ".join(f"{p['path'] or '(root)'}: {p['message']}" for p in problems[:3])
            ),
            code="invalid_output",
            details=problems,
        ) from None
    except Exception as exc:  # PydanticSerializationError and friends
        raise StepError(
            _clip(f"{operation.uses} returned a value that is not JSON: {exc}"), code="invalid_output"
        ) from None


def dedupe_key(value: Any) -> str:
    """A stable text key of what a poll's ``dedupe`` returned."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


async def invoke_action(
    connector: Connector,
    operation: Operation,
    params: Mapping[str, Any] | BaseModel | None,
    options: CallOptions,
) -> Any:
    """Run an action and return its output as JSON values."""
    checked = validate_params(operation, params)
    ctx = build_context(connector, operation, options)
    func = operation.func
    try:
        result = await func(ctx, checked)
    except Exception as exc:
        error, masked = _failure(exc, operation, ctx)
        if masked:
            raise error from None  # the original exception still holds the secret
        raise error from exc
    if operation.passthrough is func and operation.output_type is Any and ctx.is_fresh_json(result):
        return result  # plain JSON as orjson decoded it, untouched since: what _convert would copy
    return _convert(operation, result)[1]


async def invoke_poll(
    connector: Connector,
    operation: Operation,
    params: Mapping[str, Any] | BaseModel | None,
    cursor: Any,
    options: CallOptions,
) -> PollResult:
    """Run a polling trigger with a stored (JSON) ``cursor``; return items, dedupe keys and the new cursor."""
    if operation.kind != "poll" or operation.cursor_adapter is None or operation.dedupe is None:
        raise StepError(f"{operation.uses} is not a polling trigger", code="unknown_operation")
    checked = validate_params(operation, params)
    try:
        typed_cursor = operation.cursor_adapter.validate_python(cursor)
    except ValidationError as exc:
        raise StepError(
            _clip(f"{operation.uses}: the stored cursor {cursor!r} does not fit its cursor type: {exc}"),
            code="invalid_cursor",
        ) from None
    ctx = build_context(connector, operation, options)
    try:
        result = await operation.func(ctx, checked, typed_cursor)
    except Exception as exc:
        error, masked = _failure(exc, operation, ctx)
        if masked:
            raise error from None
        raise error from exc
    if not isinstance(result, Poll):
        raise StepError(
            f"{operation.uses} must return Poll(items=..., cursor=...), got {type(result).__name__}",
            code="invalid_output",
        )
    items, items_json = _convert(operation, list(result.items), "item list")
    try:
        keys = [dedupe_key(operation.dedupe(item)) for item in items]
    except Exception as exc:
        raise StepError(
            _clip(f"{operation.uses}: its dedupe function raised {type(exc).__name__}: {exc}"),
            code="connector_error",
        ) from None
    try:
        new_cursor = operation.cursor_adapter.dump_python(
            operation.cursor_adapter.validate_python(result.cursor), mode="json"
        )
    except Exception as exc:
        raise StepError(
            _clip(f"{operation.uses} returned a cursor that does not fit its cursor type: {exc}"),
            code="invalid_output",
        ) from None
    return PollResult(items=items_json, keys=keys, cursor=new_cursor)


async def invoke_webhook(
    connector: Connector,
    operation: Operation,
    request: WebhookRequest,
    options: CallOptions,
    *,
    secret: str | None = None,
) -> list[Any]:
    """Check a webhook call's signature against ``secret``, run the operation, return its items as JSON.

    A refused signature raises :class:`app.sdk.webhooks.WebhookSignatureInvalid` (401) before the
    operation runs; the operation may refuse a call itself with ``WebhookPayloadInvalid`` (400) or
    ``WebhookSignatureInvalid``, raised as they are; its other failures are step errors, as for actions.
    """
    if operation.kind != "webhook":
        raise StepError(f"{operation.uses} is not a webhook", code="unknown_operation")
    check_signature(operation.verify, request, secret, where=operation.uses)
    ctx = build_context(connector, operation, options)
    try:
        result = await operation.func(ctx, request)
    except (WebhookPayloadInvalid, WebhookSignatureInvalid):
        raise  # the operation refuses the call itself: 400 / 401, not a failed step
    except Exception as exc:
        error, masked = _failure(exc, operation, ctx)
        if masked:
            raise error from None
        raise error from exc
    items: list[Any] = _convert(operation, result, "item list")[1]
    return items
