"""OAuth2 authorization code with PKCE (S256), through authlib's ``AsyncOAuth2Client``.

The three protocol steps a connection goes through:

* :func:`authorization_url` builds the URL the user opens (``state`` and the PKCE challenge in it);
* :func:`exchange_code` trades the code the callback received (and the PKCE verifier) for tokens;
* :func:`refresh_tokens` trades a refresh token for a new access token (and, when the provider
  rotates them, a new refresh token).

Every request to a token endpoint goes through the platform's outbound client (:class:`ClientTransport`
hands authlib's requests to it): the egress guard checks the destination, connections are pinned to
the checked address, and the response size is capped, exactly as for connector requests.

The OAuth client registration (client id and secret) comes from the connection's credentials
(``client_id``, ``client_secret``, optional ``token_endpoint_auth_method``) or, when they are not given,
from the environment: ``MASHPIPE_OAUTH_<CONNECTOR>_CLIENT_ID`` and
``MASHPIPE_OAUTH_<CONNECTOR>_CLIENT_SECRET`` (``<CONNECTOR>`` is the connector key in upper case,
e.g. ``MASHPIPE_OAUTH_GITHUB_CLIENT_ID``). A client without secret is a public client (PKCE only,
``token_endpoint_auth_method=none``).

Failures: the provider's error answers become :class:`OAuthFailure` (``error`` is the OAuth error code,
``invalid_grant`` when a code or refresh token is refused); transport failures become the step errors
of :mod:`app.sdk.errors` (``EgressDenied``, ``ConnectionFailed``...).
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx

from app.errors import BadRequest, MashpipeError, Unprocessable
from app.sdk.auth import OAuth2

with warnings.catch_warnings():
    # authlib prefers the `httpx2` package and warns when it falls back to `httpx`, which Mashpipe uses
    # on purpose (its transports, egress guard included, are httpx transports). Importing
    # authlib.deprecate first keeps its global "always show" filter inside this block.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

STATE_TTL = timedelta(minutes=10)
"""How long an authorization URL (its ``state`` and PKCE verifier) stays usable."""

AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "none"})
CLIENT_FIELDS = ("client_id", "client_secret", "token_endpoint_auth_method")
"""The credential fields of an ``oauth2`` connection that register the OAuth client."""


class OAuthFailure(MashpipeError):
    """The OAuth2 provider refused a request (``error`` is its OAuth error code) or answered garbage."""

    status = 400
    code = "oauth_failed"

    def __init__(self, error: str, description: str = "", *, transient: bool = False) -> None:
        self.error = error
        self.description = description
        self.transient = transient
        text = f"{error}: {description}" if description else error
        super().__init__(f"the OAuth2 provider answered {text}", details={"error": error})

    @property
    def invalid_grant(self) -> bool:
        """Whether the provider refused the grant (code or refresh token): only a new authorization helps."""
        return self.error == "invalid_grant"


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The OAuth client registration used for a connection."""

    client_id: str
    client_secret: str | None = None
    auth_method: str = "client_secret_basic"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth_method": self.auth_method,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OAuthClient:
        return cls(
            client_id=str(data["client_id"]),
            client_secret=data.get("client_secret") or None,
            auth_method=str(data.get("auth_method") or "client_secret_basic"),
        )


def env_names(connector_key: str) -> tuple[str, str]:
    """The environment variables of a connector's OAuth client id and secret."""
    prefix = f"MASHPIPE_OAUTH_{connector_key.upper()}"
    return f"{prefix}_CLIENT_ID", f"{prefix}_CLIENT_SECRET"


def client_from(
    connector_key: str, credentials: Mapping[str, str], environ: Mapping[str, str]
) -> OAuthClient:
    """The OAuth client of a new connection: from its credentials, else from the environment."""
    id_var, secret_var = env_names(connector_key)
    client_id = credentials.get("client_id") or ""
    client_secret = credentials.get("client_secret") or None
    if not client_id:
        client_id = environ.get(id_var, "").strip()
        client_secret = client_secret or environ.get(secret_var, "").strip() or None
    if not client_id:
        raise Unprocessable(
            f"no OAuth client for {connector_key}: give credentials.client_id (and client_secret), or set "
            f"{id_var} (and {secret_var}) on the server",
            details=[{"path": "credentials.client_id", "message": "required (or set on the server)"}],
        )
    method = credentials.get("token_endpoint_auth_method") or (
        "client_secret_basic" if client_secret else "none"
    )
    if method not in AUTH_METHODS:
        raise Unprocessable(
            f"token_endpoint_auth_method must be one of {', '.join(sorted(AUTH_METHODS))}, "
            f"got {method[:40]!r}",
            details=[{"path": "credentials.token_endpoint_auth_method", "message": "unknown method"}],
        )
    if method != "none" and not client_secret:
        raise Unprocessable(
            f"token_endpoint_auth_method {method} needs a client secret (credentials.client_secret or "
            f"{secret_var})",
            details=[{"path": "credentials.client_secret", "message": "required for this method"}],
        )
    return OAuthClient(client_id=client_id, client_secret=client_secret, auth_method=method)


def new_state() -> str:
    """A fresh, unguessable ``state`` value (256 bits)."""
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A fresh PKCE code verifier (RFC 7636: 43 to 128 unreserved characters; here 86)."""
    return secrets.token_urlsafe(64)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The tokens of a token endpoint answer, with the absolute expiry computed at ``now``."""

    access_token: str
    refresh_token: str | None
    token_type: str
    expires_at: datetime | None
    scope: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenSet:
        expires = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token") or None,
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
            scope=data.get("scope") or None,
        )


def parse_token(token: Mapping[str, Any], now: datetime, *, previous_refresh: str | None = None) -> TokenSet:
    """The :class:`TokenSet` of a token endpoint answer; :class:`OAuthFailure` when it holds no bearer token.

    A refresh answer without ``refresh_token`` keeps ``previous_refresh`` (the provider does not rotate).
    """
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthFailure("invalid_response", "the token answer holds no access_token")
    token_type = str(token.get("token_type") or "Bearer")
    if token_type.lower() != "bearer":
        raise OAuthFailure(
            "unsupported_token_type", f"token_type {token_type[:40]!r} (only Bearer is supported)"
        )
    refresh = token.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else previous_refresh
    expires_at: datetime | None = None
    expires_in = token.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = now + timedelta(seconds=float(expires_in))
    scope = token.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        token_type="Bearer",
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) and scope else None,
    )


class ClientTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending through another client (the platform's guarded outbound client).

    Each request goes to ``client.send`` without following redirects, so the egress guard of that
    client checks it and its connection is pinned to the checked address. Closing this transport
    leaves the shared client open.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.client.send(request, stream=True, follow_redirects=False)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions=response.extensions,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _client(http: httpx.AsyncClient, client: OAuthClient, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        code_challenge_method="S256",
        transport=ClientTransport(http),
        timeout=http.timeout,
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


async def authorization_url(
    http: httpx.AsyncClient,
    declared: OAuth2,
    client: OAuthClient,
    *,
    redirect_uri: str,
    state: str,
    code_verifier: str,
    scopes: list[str],
) -> str:
    """The provider's authorization URL for this flow (no request is sent)."""
    async with _client(http, client, redirect_uri=redirect_uri, scope=" ".join(scopes) or None) as oauth:
        try:
            url, _ = oauth.create_authorization_url(
                declared.authorize_url, state=state, code_verifier=code_verifier
            )
        except OAuthError as exc:  # an insecure authorize URL, for instance
            raise BadRequest(f"cannot build the authorization URL: {exc}") from None
    return str(url)


async def _token_call(call: Any, previous_refresh: str | None, now: datetime) -> TokenSet:
    from app.sdk.http import map_transport_error  # app.sdk imports app.security: import late

    try:
        token = await call
    except OAuthError as exc:
        raise OAuthFailure(str(exc.error or "oauth_error"), str(exc.description or "")) from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise OAuthFailure(
            "server_error" if status >= 500 else "invalid_response",
            f"the token endpoint answered HTTP {status}",
            transient=status >= 500 or status == 429,
        ) from None
    except ValueError as exc:  # a JSON answer that is not an object
        raise OAuthFailure("invalid_response", str(exc)[:200]) from None
    except httpx.HTTPError as exc:
        raise map_transport_error(exc) from None
    return parse_token(dict(token), now, previous_refresh=previous_refresh)


async def exchange_code(
    http: httpx.AsyncClient,
    declared: OAuth2,
    client: OAuthClient,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    now: datetime,
) -> TokenSet:
    """Trade an authorization code (with its PKCE verifier) for tokens at the token endpoint."""
    async with _client(http, client, redirect_uri=redirect_uri) as oauth:
        return await _token_call(
            oauth.fetch_token(
                declared.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            ),
            None,
            now,
        )


async def refresh_tokens(
    http: httpx.AsyncClient,
    declared: OAuth2,
    client: OAuthClient,
    *,
    refresh_token: str,
    now: datetime,
) -> TokenSet:
    """A new access token for ``refresh_token``; a rotated refresh token replaces it when given."""
    async with _client(http, client) as oauth:
        return await _token_call(
            oauth.refresh_token(declared.token_url, refresh_token=refresh_token), refresh_token, now
        )
