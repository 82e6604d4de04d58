"""Auth kinds a connector declares, and the ``httpx.Auth`` that applies a connection's credentials.

A connector lists the kinds it accepts (``auth=[OAuth2(...), BearerToken()]``). A connection holds
credentials as a plain mapping, for example ``{"kind": "bearer", "token": "..."}``; the ``kind`` key is
optional when only one declared kind has its fields present. :func:`select_auth` picks the kind and
builds the ``httpx.Auth`` that ``ctx.http`` applies to every request sent to the connector's API.

========================  ================  ==========================================================
declaration               kind              credential fields
========================  ================  ==========================================================
``NoAuth()``              ``none``          (none)
``ApiKey(header=...)``    ``api_key``       ``api_key``
``ApiKey(query=...)``     ``api_key``       ``api_key``
``BearerToken()``         ``bearer``        ``token``
``BasicAuth()``           ``basic``         ``username``, ``password``
``OAuth2(...)``           ``oauth2``        ``access_token`` (the platform runs the flow and refreshes it)
``PathToken(prefix=..)``  ``path_token``    ``token`` (in the URL path: ``/bot<token>/getMe``)
``WebhookUrl(hosts=..)``  ``webhook_url``   ``webhook_url`` (a secret URL the connector posts to)
========================  ================  ==========================================================
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from app.errors import StepError
from app.sdk.errors import ConnectorDefinitionError


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One value a connection of this auth kind must hold."""

    name: str
    label: str
    secret: bool = True
    required: bool = True

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "label": self.label, "secret": self.secret}
        if not self.required:
            data["required"] = False
        return data


class HeaderAuth(httpx.Auth):
    """Sets one header on every request (``Authorization: Bearer ...``, ``X-Api-Key: ...``)."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.name] = self.value
        yield request


class QueryParamAuth(httpx.Auth):
    """Adds one query parameter to every request (``?api_key=...``)."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self.name, self.value)
        yield request


class PathPrefixAuth(httpx.Auth):
    """Puts a secret segment before every request path (``/getMe`` → ``/bot<token>/getMe``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_with(raw_path=self.prefix + request.url.raw_path)
        yield request


class AuthKind(ABC):
    """A way of authenticating a connector accepts. Subclasses declare their fields and build the auth."""

    kind: ClassVar[str]
    label: str
    # False for credentials of another protocol (an SMTP server...), which no HTTP test_request checks.
    verified_by_request: ClassVar[bool] = True

    @property
    @abstractmethod
    def fields(self) -> tuple[CredentialField, ...]:
        """The credential fields a connection of this kind holds."""

    @abstractmethod
    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth | None:
        """The ``httpx.Auth`` applying ``credentials`` (already checked to hold every field)."""

    def matches(self, credentials: Mapping[str, Any]) -> bool:
        """Whether ``credentials`` hold a non-empty string for every required field of this kind."""
        return all(
            isinstance(credentials.get(f.name), str) and credentials[f.name]
            for f in self.fields
            if f.required
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata for the API and docs."""
        return {"kind": self.kind, "label": self.label, "fields": [f.describe() for f in self.fields]}


class NoAuth(AuthKind):
    """The API is public: no credentials."""

    kind = "none"

    def __init__(self, *, label: str = "No authentication") -> None:
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return ()

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth | None:
        return None


class ApiKey(AuthKind):
    """An API key in a header (``header="X-Api-Key"``, optional ``prefix="Token "``) or a query parameter."""

    kind = "api_key"

    def __init__(
        self, *, header: str | None = None, query: str | None = None, prefix: str = "", label: str = "API key"
    ) -> None:
        if (header is None) == (query is None):
            raise ConnectorDefinitionError("ApiKey(...) takes exactly one of header=... or query=...")
        if header is not None and not header.strip():
            raise ConnectorDefinitionError("ApiKey(header=...) needs a header name")
        if query is not None and not query.strip():
            raise ConnectorDefinitionError("ApiKey(query=...) needs a parameter name")
        if prefix and query is not None:
            raise ConnectorDefinitionError("ApiKey(prefix=...) only applies to header=...")
        self.header = header
        self.query = query
        self.prefix = prefix
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (CredentialField("api_key", self.label),)

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth:
        key = str(credentials["api_key"])
        if self.header is not None:
            return HeaderAuth(self.header, f"{self.prefix}{key}")
        assert self.query is not None
        return QueryParamAuth(self.query, key)

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data.update({"header": self.header, "query": self.query, "prefix": self.prefix or None})
        return data


class BearerToken(AuthKind):
    """A token sent as ``Authorization: Bearer <token>`` (a personal access token, for instance).

    ``extra_fields`` declares more values a connection may hold, such as an optional, non-secret
    ``base_url`` (see ``Connector(base_url_field=...)``).
    """

    kind = "bearer"

    def __init__(self, *, label: str = "Access token", extra_fields: Sequence[CredentialField] = ()) -> None:
        self.label = label
        extra = tuple(extra_fields)
        if not all(isinstance(f, CredentialField) for f in extra) or any(f.name == "token" for f in extra):
            raise ConnectorDefinitionError(
                "BearerToken(extra_fields=...) takes CredentialField(...) items other than `token`"
            )
        self.extra_fields = extra

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (CredentialField("token", self.label), *self.extra_fields)

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth:
        return HeaderAuth("Authorization", f"Bearer {credentials['token']}")


class BasicAuth(AuthKind):
    """HTTP basic authentication with a user name and a password."""

    kind = "basic"

    def __init__(self, *, label: str = "User name and password") -> None:
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (
            CredentialField("username", "User name", secret=False),
            CredentialField("password", "Password"),
        )

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth:
        return httpx.BasicAuth(str(credentials["username"]), str(credentials["password"]))


class OAuth2(AuthKind):
    """OAuth2 authorization code: the platform runs the flow and refreshes; requests send the token."""

    kind = "oauth2"

    def __init__(
        self,
        *,
        authorize_url: str,
        token_url: str,
        scopes: Sequence[str] = (),
        label: str = "OAuth2",
    ) -> None:
        for name, url in (("authorize_url", authorize_url), ("token_url", token_url)):
            parsed = httpx.URL(url)
            if parsed.scheme != "https" or not parsed.host:
                raise ConnectorDefinitionError(
                    f"OAuth2({name}=...) must be an absolute https URL, got {url!r}"
                )
        if isinstance(scopes, str):
            raise ConnectorDefinitionError("OAuth2(scopes=...) is a list of scope names, not a string")
        self.authorize_url = authorize_url
        self.token_url = token_url
        self.scopes = tuple(scopes)
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (CredentialField("access_token", "Access token"),)

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth:
        return HeaderAuth("Authorization", f"Bearer {credentials['access_token']}")

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["authorize_url"] = self.authorize_url
        data["token_url"] = self.token_url
        data["scopes"] = list(self.scopes)
        return data


PATH_TOKEN_RE = re.compile(r"^[A-Za-z0-9:._~-]+$")


class PathToken(AuthKind):
    """A token carried in the URL path, as ``PathToken(prefix="/bot")`` for ``https://api.telegram.org/bot<token>``.

    Requests to the base URL's origin get ``prefix + token`` put before their path, so operations
    and ``test_request`` write plain paths (``/getMe``). The token is masked in logs and errors.
    """

    kind = "path_token"

    def __init__(self, *, prefix: str = "/", label: str = "Token") -> None:
        if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.isascii():
            raise ConnectorDefinitionError("PathToken(prefix=...) must be an ASCII path start such as '/bot'")
        self.prefix = prefix
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (CredentialField("token", self.label),)

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth:
        token = str(credentials["token"]).strip()
        if not PATH_TOKEN_RE.match(token):
            raise StepError(
                "the connection's token has characters that cannot appear in a URL path "
                "(letters, digits and : . _ ~ - only)",
                code="connection_invalid",
            )
        return PathPrefixAuth(f"{self.prefix}{token}")

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["prefix"] = self.prefix
        return data


class WebhookUrl(AuthKind):
    """A secret URL the connector posts to (a Slack or Discord incoming webhook); requests get nothing added.

    The connection's ``webhook_url`` must be an https URL on one of ``hosts``, without user info; the
    operation reads it from ``ctx.credentials["webhook_url"]``. It is masked in logs and errors.
    """

    kind = "webhook_url"
    verified_by_request = False  # the only use of a webhook URL posts a message

    def __init__(self, *, hosts: Sequence[str], label: str = "Webhook URL") -> None:
        if isinstance(hosts, str) or not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ConnectorDefinitionError("WebhookUrl(hosts=...) is a non-empty list of host names")
        self.hosts = tuple(host.lower() for host in hosts)
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (CredentialField("webhook_url", self.label),)

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth | None:
        try:
            url = httpx.URL(str(credentials["webhook_url"]).strip())
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme != "https" or url.host not in self.hosts or url.userinfo:
            raise StepError(  # the URL itself is a secret: never repeat it in the message
                f"the connection's webhook_url must be an https URL on {' or '.join(self.hosts)}",
                code="connection_invalid",
            )
        return None

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["hosts"] = list(self.hosts)
        return data


def select_auth(
    declared: Sequence[AuthKind], credentials: Mapping[str, Any] | None, *, connector: str
) -> tuple[AuthKind, httpx.Auth | None]:
    """The declared kind matching ``credentials`` and its ``httpx.Auth``; a clear step error otherwise."""
    if not credentials:
        for kind in declared:
            if isinstance(kind, NoAuth):
                return kind, None
        accepted = ", ".join(kind.kind for kind in declared)
        raise StepError(
            f"{connector} needs a connection (accepted auth: {accepted}); "
            "name one with `connection:` on the step",
            code="connection_required",
        )
    accepted = ", ".join(kind.kind for kind in declared)
    wanted = credentials.get("kind")
    if wanted is not None:
        for kind in declared:
            if kind.kind == wanted:
                if not kind.matches(credentials):
                    missing = [f.name for f in kind.fields if f.required and not credentials.get(f.name)]
                    raise StepError(
                        f"the {wanted} connection for {connector} lacks {', '.join(missing)}",
                        code="connection_invalid",
                    )
                return kind, kind.build(credentials)
        raise StepError(
            f"{connector} does not accept {wanted!r} connections (accepted auth: {accepted})",
            code="connection_invalid",
        )
    for kind in declared:
        if not isinstance(kind, NoAuth) and kind.matches(credentials):
            return kind, kind.build(credentials)
    expected = "; ".join(f"{kind.kind}: {', '.join(f.name for f in kind.fields) or '-'}" for kind in declared)
    raise StepError(
        f"the connection does not fit {connector}: expected the fields of one of ({expected})",
        code="connection_invalid",
    )
