"""``Connector``: a third-party API's metadata, declared auth, and its operations.

Operations are async functions declared with ``@connector.action(title=...)``,
``@connector.poll(title=..., dedupe=...)`` or ``@connector.webhook(title=..., verify=...)``. Each is
checked when declared: it must be ``async``, have a docstring (its description) and type hints, take
``(ctx: Context, params: SomeModel)`` (a poll also takes the ``cursor``) with ``params`` a pydantic
model, and return something pydantic can describe (``list[Issue]``, ``Issue``, ``dict[str, Any]``; a
poll returns ``Poll[Item]``). A webhook takes ``(ctx: Context, request: WebhookRequest)`` and returns
``list[Item]`` (see ``app.sdk.webhooks``). The operation's name is the function's name. Mistakes raise
:class:`ConnectorDefinitionError` at import time, naming the connector and the operation.

Every connector also gets a ``request`` operation (a raw request with the connection's auth) unless
it declares its own.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
import string
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

import httpx
from pydantic import BaseModel, TypeAdapter

from app.sdk.auth import AuthKind, NoAuth
from app.sdk.cache import HttpCache
from app.sdk.context import Context
from app.sdk.errors import ConnectorDefinitionError
from app.sdk.passthrough import returns_request_json
from app.sdk.ratelimit import RateLimit
from app.sdk.raw import HttpResponse, RawRequest, raw_request
from app.sdk.webhooks import WebhookParams, WebhookRequest, WebhookVerifier, as_verifier

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
PLACEHOLDER_VALUE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
RESERVED_KEYS = frozenset({"core"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(slots=True)
class Poll(Generic[T]):
    """What a polling trigger returns: the items found and the cursor to pass to the next poll."""

    items: list[T]
    cursor: Any = None


OperationKind = Literal["action", "poll", "webhook"]


@dataclass(eq=False)
class Operation:
    """One declared operation, with everything the platform needs to validate, call and describe it."""

    connector: str
    name: str
    kind: OperationKind
    title: str
    description: str
    func: Callable[..., Awaitable[Any]]
    input_model: type[BaseModel]
    output_type: Any
    output_adapter: TypeAdapter[Any]
    output_schema: dict[str, Any]
    input_schema: dict[str, Any]
    cursor_type: Any = None
    cursor_adapter: TypeAdapter[Any] | None = None
    cursor_schema: dict[str, Any] | None = None
    dedupe: Callable[[Any], Any] | None = None
    verify: WebhookVerifier | None = None
    builtin: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    cache: HttpCache | Literal[False] | None = None  # None: the connector's cache; False: never cached
    # ``func`` when every return of it is `return await ctx.request_json(...)` (app.sdk.passthrough),
    # found when an `-> Any` action is declared; compared with ``func`` when used (a replaced func is not).
    passthrough: Callable[..., Awaitable[Any]] | None = None

    @property
    def uses(self) -> str:
        """``CONNECTOR.OPERATION``, as written in a pipeline."""
        return f"{self.connector}.{self.name}"

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata: name, kind, title, description, input and output JSON Schemas."""
        data: dict[str, Any] = {
            "name": self.name,
            "uses": self.uses,
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }
        if self.kind == "poll":
            data["cursor_schema"] = self.cursor_schema
            data["dedupe"] = True
        if self.kind == "webhook":
            data["verify"] = self.verify.describe() if self.verify is not None else None
        return data


def _schema(adapter: TypeAdapter[Any], where: str, what: str) -> dict[str, Any]:
    try:
        return adapter.json_schema(mode="serialization")
    except Exception as exc:  # pydantic raises several types for types it cannot describe
        raise ConnectorDefinitionError(
            f"{where}: cannot build the JSON Schema of its {what}: {exc}"
        ) from None


def _adapter(annotation: Any, where: str, what: str) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(annotation)
    except Exception as exc:  # PydanticSchemaGenerationError, PydanticUserError...
        raise ConnectorDefinitionError(
            f"{where}: pydantic cannot handle its {what} {annotation!r}: {exc}"
        ) from None


def _caller_locals() -> dict[str, Any] | None:
    """Local names where a decorator was applied, so hints may name models defined in a function."""
    frame = inspect.currentframe()
    try:
        target = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        return dict(target.f_locals) if target is not None and target.f_code.co_name != "<module>" else None
    finally:
        del frame


def _plain_host(host: str) -> bool:
    """Whether ``host`` is a DNS name (letters, digits, dots, hyphens) or an IP address."""
    if PLACEHOLDER_VALUE_RE.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _title_from_name(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


class Connector:
    """A connector: metadata, declared auth, base URL, and its operations.

    ``base_url`` may hold ``{field}`` placeholders filled from the connection's credentials (for
    APIs with a per-customer host, such as ``https://{subdomain}.example.com/api``). ``headers`` are
    sent with every request of the connector, the built-in ``request`` included (``Accept``, an API
    version header...).

    ``base_url_field`` names a connection field that, when set, replaces the whole base URL (an
    OpenAI-compatible server at ``http://127.0.0.1:8080/v1`` instead of the real API): an absolute
    http(s) URL without user info, query or fragment. The connection's auth goes to that origin
    only, and the egress guard checks every request to it like any other.

    ``cache=HttpCache(ttl=...)`` caches the GET answers of every action (opt-in; see :mod:`app.sdk.cache`).
    """

    def __init__(
        self,
        *,
        key: str,
        version: str,
        title: str,
        description: str,
        base_url: str | None = None,
        auth: Sequence[AuthKind] = (),
        rate_limit: RateLimit | None = None,
        test_request: tuple[str, str] | None = None,
        docs_url: str | None = None,
        headers: typing.Mapping[str, str] | None = None,
        base_url_field: str | None = None,
        cache: HttpCache | None = None,
    ) -> None:
        if not isinstance(key, str) or not KEY_RE.match(key) or key in RESERVED_KEYS:
            raise ConnectorDefinitionError(
                f"connector key {key!r} must be 1-40 lower-case letters, digits or _, start with a letter, "
                "and not be `core`"
            )
        where = f"connector {key!r}"
        if not isinstance(version, str) or not SEMVER_RE.match(version):
            raise ConnectorDefinitionError(
                f"{where}: version {version!r} is not a semantic version such as 1.0.0"
            )
        if not isinstance(title, str) or not title.strip():
            raise ConnectorDefinitionError(f"{where}: a title is required")
        if not isinstance(description, str) or not description.strip():
            raise ConnectorDefinitionError(f"{where}: a description is required (one sentence is enough)")
        if base_url is not None:
            self._check_base_url(where, base_url)
        auth_list = list(auth) or [NoAuth()]
        kinds: set[str] = set()
        for item in auth_list:
            if not isinstance(item, AuthKind):
                raise ConnectorDefinitionError(
                    f"{where}: auth entries must be NoAuth(), ApiKey(...), BearerToken(), BasicAuth() or "
                    f"OAuth2(...), got {item!r}"
                )
            if item.kind in kinds:
                raise ConnectorDefinitionError(f"{where}: auth kind {item.kind!r} is declared twice")
            kinds.add(item.kind)
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ConnectorDefinitionError(
                f"{where}: rate_limit must be a RateLimit(...), got {rate_limit!r}"
            )
        if test_request is not None:
            if (
                not isinstance(test_request, tuple)
                or len(test_request) != 2
                or str(test_request[0]).upper() not in METHODS
                or not isinstance(test_request[1], str)
            ):
                raise ConnectorDefinitionError(
                    f"{where}: test_request must be a (METHOD, path) pair such as ('GET', '/user')"
                )
            test_request = (test_request[0].upper(), test_request[1])
        if docs_url is not None and httpx.URL(docs_url).scheme not in ("http", "https"):
            raise ConnectorDefinitionError(f"{where}: docs_url must be an http(s) URL")
        if headers is not None and (
            not isinstance(headers, typing.Mapping)
            or not all(isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in headers.items())
        ):
            raise ConnectorDefinitionError(f"{where}: headers must map header names to string values")
        if base_url_field is not None and (
            not isinstance(base_url_field, str) or not base_url_field.isidentifier() or base_url is None
        ):
            raise ConnectorDefinitionError(
                f"{where}: base_url_field must be a field name, and needs a default base_url"
            )
        if cache is not None and not isinstance(cache, HttpCache):
            raise ConnectorDefinitionError(f"{where}: cache must be an HttpCache(ttl=...), got {cache!r}")
        self.key = key
        self.version = version
        self.cache = cache
        self.title = title.strip()
        self.description = description.strip()
        self.base_url = base_url
        self.auth: tuple[AuthKind, ...] = tuple(auth_list)
        self.rate_limit = rate_limit
        self.test_request = test_request
        self.docs_url = docs_url
        self.headers: dict[str, str] = dict(headers or {})
        self.base_url_field = base_url_field
        self._declared: dict[str, Operation] = {}
        self._builtin_request: Operation | None = None

    @staticmethod
    def _check_base_url(where: str, base_url: str) -> None:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(base_url) if name is not None]
        except ValueError as exc:
            raise ConnectorDefinitionError(f"{where}: base_url {base_url!r} is malformed: {exc}") from None
        if any(not name.isidentifier() for name in fields):
            raise ConnectorDefinitionError(
                f"{where}: base_url placeholders must be names such as {{subdomain}}"
            )
        sample = base_url.format(**dict.fromkeys(fields, "x"))
        try:
            parsed = httpx.URL(sample)
        except httpx.InvalidURL as exc:
            raise ConnectorDefinitionError(f"{where}: base_url {base_url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query or parsed.fragment:
            raise ConnectorDefinitionError(
                f"{where}: base_url must be an absolute http(s) URL without query or fragment: {base_url!r}"
            )

    # -- declaring operations -------------------------------------------------------------------

    def action(
        self, *, title: str | None = None, cache: HttpCache | Literal[False] | None = None
    ) -> Callable[[F], F]:
        """Declare an action: ``async def name(ctx: Context, params: Model) -> Output``.

        ``cache=HttpCache(ttl=...)`` caches the action's GET answers (see :mod:`app.sdk.cache`);
        ``cache=False`` opts it out of the connector's ``cache``.
        """
        if cache is not None and cache is not False and not isinstance(cache, HttpCache):
            raise ConnectorDefinitionError(
                f"connector {self.key!r}, action: cache must be HttpCache(ttl=...) or False, got {cache!r}"
            )

        def register(func: F) -> F:
            self._register(func, kind="action", title=title, dedupe=None, localns=_caller_locals())
            operation = self._declared[func.__name__]
            operation.cache = cache
            if operation.output_type is Any and returns_request_json(operation.func):
                operation.passthrough = operation.func  # its output may skip the JSON round trip (invoke)
            return func

        return register

    def poll(
        self, *, title: str | None = None, dedupe: Callable[[Any], Any] | None = None
    ) -> Callable[[F], F]:
        """Declare a polling trigger: ``async def name(ctx, params: Model, cursor: C | None) -> Poll[Item]``.

        ``dedupe`` maps an item to its stable key (``lambda issue: issue.number``); the platform keeps
        a window of seen keys so an item starts at most one run.
        """

        def register(func: F) -> F:
            self._register(func, kind="poll", title=title, dedupe=dedupe, localns=_caller_locals())
            return func

        return register

    def webhook(self, *, title: str | None = None, verify: Any = None) -> Callable[[F], F]:
        """Declare a webhook: ``async def name(ctx: Context, request: WebhookRequest) -> list[Item]``.

        ``verify`` checks each call's signature with the hook's secret: a :class:`WebhookVerifier`
        (``HmacSha256(header="X-Hub-Signature-256")``) or a function ``(request, secret) -> bool``.
        """
        verifier = as_verifier(verify, f"connector {self.key!r}, webhook")

        def register(func: F) -> F:
            self._register(
                func, kind="webhook", title=title, dedupe=None, localns=_caller_locals(), verify=verifier
            )
            return func

        return register

    def _register(
        self,
        func: Callable[..., Any],
        *,
        kind: OperationKind,
        title: str | None,
        dedupe: Callable[[Any], Any] | None,
        localns: dict[str, Any] | None = None,
        verify: WebhookVerifier | None = None,
    ) -> None:
        name = getattr(func, "__name__", repr(func))
        where = f"connector {self.key!r}, operation {name!r}"
        if not NAME_RE.match(name):
            raise ConnectorDefinitionError(
                f"{where}: operation names are lower-case letters, digits and _, starting with a letter"
            )
        if name in self._declared:
            raise ConnectorDefinitionError(f"{where}: declared twice (operation names must be unique)")
        if inspect.isasyncgenfunction(func) or not inspect.iscoroutinefunction(func):
            raise ConnectorDefinitionError(f"{where}: must be an `async def` function returning its result")
        description = inspect.getdoc(func)
        if not description or not description.strip():
            raise ConnectorDefinitionError(
                f"{where}: a docstring is required; it becomes the operation's description"
            )
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise ConnectorDefinitionError(f"{where}: title must be a non-empty string")
        if kind == "poll" and dedupe is None:
            raise ConnectorDefinitionError(
                f"{where}: a poll must declare dedupe=..., a function giving each item's stable key "
                "(such as `dedupe=lambda item: item.id`)"
            )
        if dedupe is not None and not callable(dedupe):
            raise ConnectorDefinitionError(f"{where}: dedupe must be a function of one item")
        operation = self._build(func, name, kind, title, description.strip(), dedupe, where, localns)
        operation.verify = verify
        self._declared[name] = operation

    def _build(
        self,
        func: Callable[..., Any],
        name: str,
        kind: OperationKind,
        title: str | None,
        description: str,
        dedupe: Callable[[Any], Any] | None,
        where: str,
        localns: dict[str, Any] | None = None,
    ) -> Operation:
        signature = inspect.signature(func)
        params = list(signature.parameters.values())
        expected = {"action": ["ctx", "params"], "poll": ["ctx", "params", "cursor"]}.get(
            kind, ["ctx", "request"]
        )
        shape = {
            "action": "(ctx: Context, params: Model)",
            "poll": "(ctx: Context, params: Model, cursor)",
        }.get(kind, "(ctx: Context, request: WebhookRequest)")
        if len(params) != len(expected) or any(
            p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.default is not p.empty
            for p in params
        ):
            raise ConnectorDefinitionError(f"{where}: the signature must be {shape}")
        try:
            hints = typing.get_type_hints(func, localns=localns, include_extras=True)
        except Exception as exc:  # NameError for an undefined name, TypeError for a bad annotation...
            raise ConnectorDefinitionError(f"{where}: cannot resolve its type hints: {exc}") from None
        missing = [p.name for p in params if p.name not in hints]
        if "return" not in hints:
            missing.append("the return value")
        if missing:
            raise ConnectorDefinitionError(
                f"{where}: type hints are required ({', '.join(missing)} lacks one)"
            )
        ctx_type = hints[params[0].name]
        if not (inspect.isclass(ctx_type) and issubclass(ctx_type, Context)):
            raise ConnectorDefinitionError(f"{where}: the first parameter must be annotated `Context`")
        if kind == "webhook" and hints[params[1].name] is not WebhookRequest:
            raise ConnectorDefinitionError(
                f"{where}: the second parameter must be annotated `WebhookRequest`"
            )
        model = WebhookParams if kind == "webhook" else hints[params[1].name]
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise ConnectorDefinitionError(
                f"{where}: the parameters must be a pydantic model (class P(BaseModel)), got {model!r}"
            )
        try:
            input_schema = model.model_json_schema()
        except Exception as exc:  # pydantic raises several types
            raise ConnectorDefinitionError(
                f"{where}: cannot build the JSON Schema of {model.__name__}: {exc}"
            ) from None
        returned = hints["return"]
        cursor_type: Any = None
        cursor_adapter: TypeAdapter[Any] | None = None
        cursor_schema: dict[str, Any] | None = None
        if kind == "poll":
            if get_origin(returned) is not Poll or len(get_args(returned)) != 1:
                raise ConnectorDefinitionError(f"{where}: a poll must return Poll[Item], got {returned!r}")
            output_type: Any = list[get_args(returned)[0]]  # type: ignore[misc]
            cursor_type = hints[params[2].name]
            cursor_adapter = _adapter(cursor_type, where, "cursor type")
            cursor_schema = _schema(cursor_adapter, where, "cursor")
        elif kind == "webhook":
            if get_origin(returned) is not list or len(get_args(returned)) != 1:
                raise ConnectorDefinitionError(
                    f"{where}: a webhook must return list[Item] (the items of the call), got {returned!r}"
                )
            output_type = returned
        else:
            if get_origin(returned) is Poll or returned is Poll:
                raise ConnectorDefinitionError(
                    f"{where}: an action cannot return Poll; declare it with @poll"
                )
            output_type = returned
        output_adapter = _adapter(output_type, where, "return type")
        output_schema = _schema(output_adapter, where, "output")
        return Operation(
            connector=self.key,
            name=name,
            kind=kind,
            title=(title or _title_from_name(name)).strip(),
            description=description,
            func=func,
            input_model=model,
            output_type=output_type,
            output_adapter=output_adapter,
            output_schema=output_schema,
            input_schema=input_schema,
            cursor_type=cursor_type,
            cursor_adapter=cursor_adapter,
            cursor_schema=cursor_schema,
            dedupe=dedupe,
        )

    # -- reading ---------------------------------------------------------------------------------

    def _request_operation(self) -> Operation:
        if self._builtin_request is None:
            adapter: TypeAdapter[Any] = TypeAdapter(HttpResponse)
            self._builtin_request = Operation(
                connector=self.key,
                name="request",
                kind="action",
                title="Raw request",
                description=(
                    f"Send any request to the {self.title} API with the connection's auth: a path under the "
                    "base URL (or an absolute URL on the same host). Returns status, headers and body."
                ),
                func=raw_request,
                input_model=RawRequest,
                output_type=HttpResponse,
                output_adapter=adapter,
                output_schema=adapter.json_schema(mode="serialization"),
                input_schema=RawRequest.model_json_schema(),
                builtin=True,
            )
        return self._builtin_request

    @property
    def operations(self) -> dict[str, Operation]:
        """Every operation by name: the declared ones, plus the built-in ``request`` unless overridden."""
        found = dict(self._declared)
        if "request" not in found:
            found["request"] = self._request_operation()
        return found

    def operation(self, name: str) -> Operation | None:
        """The operation called ``name``, or None."""
        if name == "request" and name not in self._declared:
            return self._request_operation()
        return self._declared.get(name)

    def actions(self) -> list[Operation]:
        """Actions (the built-in ``request`` included), in declaration order."""
        return [op for op in self.operations.values() if op.kind == "action"]

    def polls(self) -> list[Operation]:
        """Polling triggers, in declaration order."""
        return [op for op in self._declared.values() if op.kind == "poll"]

    def webhooks(self) -> list[Operation]:
        """Webhooks (inbound calls turned into items), in declaration order."""
        return [op for op in self._declared.values() if op.kind == "webhook"]

    def cache_for(self, operation: Operation) -> HttpCache | None:
        """The cache an operation's requests use: its own, else the connector's (actions only)."""
        if operation.kind != "action" or operation.builtin or operation.cache is False:
            return None
        return operation.cache or self.cache

    def auth_kinds(self) -> list[str]:
        """The kinds of auth accepted (``["oauth2", "bearer"]``)."""
        return [item.kind for item in self.auth]

    def base_url_for(self, credentials: typing.Mapping[str, Any] | None) -> str | None:
        """The base URL with its ``{placeholders}`` filled from ``credentials``.

        Values must look like host labels (letters, digits, dots, hyphens) so a credential can never
        move the base URL to another host or path. A connector declaring ``base_url_field`` takes the
        connection's whole base URL from that field when it is set (checked, see the class docstring).
        """
        override = (credentials or {}).get(self.base_url_field) if self.base_url_field else None
        if override not in (None, ""):
            return self._checked_override(override)
        if self.base_url is None or "{" not in self.base_url:
            return self.base_url
        from app.errors import StepError

        values: dict[str, str] = {}
        for _, name, _, _ in string.Formatter().parse(self.base_url):
            if name is None:
                continue
            value = (credentials or {}).get(name)
            if not isinstance(value, str) or not PLACEHOLDER_VALUE_RE.match(value):
                raise StepError(
                    f"{self.key}: the connection must give `{name}` (letters, digits, dots and hyphens) "
                    f"to build the base URL {self.base_url}",
                    code="connection_invalid",
                )
            values[name] = value
        return self.base_url.format(**values)

    def _checked_override(self, value: Any) -> str:
        """A connection's replacement base URL, refused unless it is a plain absolute http(s) URL."""
        from app.errors import StepError

        problem = f"{self.key}: the connection's `{self.base_url_field}` must be an absolute http(s) URL"
        if not isinstance(value, str):
            raise StepError(problem, code="connection_invalid")
        try:
            url = httpx.URL(value.strip())
        except httpx.InvalidURL:
            raise StepError(problem, code="connection_invalid") from None
        if url.scheme not in ("http", "https") or not _plain_host(url.host):
            raise StepError(problem, code="connection_invalid")
        if url.userinfo or url.query or url.fragment:
            raise StepError(
                f"{problem} without user info, query or fragment (put credentials in the connection's "
                "other fields)",
                code="connection_invalid",
            )
        return str(url).rstrip("/")

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata: key, version, title, description, auth, operations and their schemas."""
        return {
            "key": self.key,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "base_url": self.base_url,
            "base_url_field": self.base_url_field,
            "docs_url": self.docs_url,
            "auth": [item.describe() for item in self.auth],
            "auth_kinds": self.auth_kinds(),
            "rate_limit": self.rate_limit.describe() if self.rate_limit else None,
            "operations": [op.describe() for op in self.actions()],
            "polls": [op.describe() for op in self.polls()],
            "webhooks": [op.describe() for op in self.webhooks()],
        }

    def __repr__(self) -> str:
        return f"Connector(key={self.key!r}, version={self.version!r})"
