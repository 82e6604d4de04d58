"""An account's connections: credentials encrypted on the way in, the OAuth2 flow, tokens stored.

:class:`ConnectionStore` joins the repositories (:mod:`app.storage.repositories.connections`), the
:class:`~app.security.crypto.Encryptor` (kind ``"connection"``, bound to the account and the
connection's name) and the OAuth2 protocol (:mod:`app.security.oauth`).

What a connection's ciphertext holds (JSON)::

    {"kind": "bearer", "fields": {"token": "..."}}                      # api_key, bearer, basic...
    {"kind": "oauth2", "fields": {...base URL values...},
     "client": {"client_id", "client_secret", "auth_method"} | null,   # null: from the server's env
     "scopes": ["repo"],
     "token": {"access_token", "refresh_token", "token_type", "expires_at", "scope"} | null}

A connector's operations see only ``{"kind", <fields>}`` (and ``access_token`` for oauth2): never
the refresh token or the client secret.

OAuth2 flow: :meth:`ConnectionStore.create` (or :meth:`ConnectionStore.authorize` for an existing
connection) stores a pending authorization (the SHA-256 of a random ``state``, the encrypted PKCE
verifier, the redirect URI; 10 minutes) and returns the provider's authorize URL;
:meth:`ConnectionStore.complete` (the callback) takes that authorization once, exchanges the code and
stores the tokens: the connection becomes ``active``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, MashpipeError, NotFound, Unprocessable
from app.registry import Registry
from app.sdk.auth import OAuth2
from app.sdk.connector import Connector
from app.security import oauth
from app.security.connection_fields import check_credentials, oauth2_of
from app.security.crypto import Encryptor
from app.storage.models_connections import ConnectionRow, ConnectionStatus
from app.storage.repositories.connections import ConnectionRepo, OAuthStateRepo, check_connection_name

logger = logging.getLogger("mashpipe.security")

KIND = "connection"
"""The encryption kind of connection credentials (see :class:`~app.security.crypto.Encryptor`)."""
STATE_KIND = "oauth_state"
"""The encryption kind of a pending authorization's PKCE verifier (bound to the state's hash)."""
MAX_SCOPES = 50


def state_hash(state: str) -> str:
    """The key a ``state`` is stored under: its SHA-256 (a leaked table does not give usable states)."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Authorization:
    """A started OAuth2 authorization: the URL to open and until when it can be completed."""

    url: str
    expires_at: datetime


class ConnectionStore:
    """Stores connections (encrypted) and runs the OAuth2 authorization of ``oauth2`` ones."""

    def __init__(
        self,
        encryptor: Encryptor,
        registry: Registry,
        http: httpx.AsyncClient,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.encryptor = encryptor
        self.registry = registry
        self.http = http
        self.environ = environ if environ is not None else os.environ
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- credentials -----------------------------------------------------------------------------

    def encrypt(self, account_id: str, name: str, payload: Mapping[str, Any]) -> str:
        """The ciphertext of a connection's payload, bound to the account and name."""
        return self.encryptor.encrypt(dict(payload), account_id=account_id, name=name, kind=KIND)

    def decrypt(self, account_id: str, name: str, ciphertext: str) -> dict[str, Any]:
        """A connection's payload (raises ``DecryptionFailed`` for a foreign or altered ciphertext)."""
        payload = self.encryptor.decrypt(ciphertext, account_id=account_id, name=name, kind=KIND)
        if not isinstance(payload, dict) or not isinstance(payload.get("fields"), dict):
            raise MashpipeError(f"the stored connection {name!r} does not hold credentials")
        return payload

    @staticmethod
    def runtime_credentials(payload: Mapping[str, Any]) -> dict[str, Any]:
        """What a connector sees: the kind and fields (plus the access token of an oauth2 connection)."""
        credentials: dict[str, Any] = {"kind": payload["kind"], **payload["fields"]}
        token = payload.get("token")
        if payload["kind"] == "oauth2" and isinstance(token, dict):
            credentials["access_token"] = token["access_token"]
        return credentials

    def connector(self, key: str) -> Connector:
        """The installed connector ``key``; 422 when it is not installed."""
        if not self.registry.has_connector(key):
            raise Unprocessable(
                f"no connector {key[:60]!r} is installed",
                details=[{"path": "connector", "message": "unknown"}],
            )
        return self.registry.get(key)

    def oauth2(self, connector: Connector) -> OAuth2:
        """The connector's OAuth2 declaration; 422 when it has none."""
        declared = oauth2_of(connector)
        if declared is None:
            raise Unprocessable(f"connector {connector.key} does not accept oauth2 connections")
        return declared

    def oauth_client(self, connector_key: str, payload: Mapping[str, Any]) -> oauth.OAuthClient:
        """The OAuth client of an oauth2 connection: its own, else the server's for the connector."""
        stored = payload.get("client")
        if isinstance(stored, dict):
            return oauth.OAuthClient.from_json(stored)
        return oauth.client_from(connector_key, {}, self.environ)

    # -- creating --------------------------------------------------------------------------------

    async def create(
        self,
        session: AsyncSession,
        account_id: str,
        *,
        name: str,
        connector_key: str,
        kind: str,
        credentials: Mapping[str, Any],
        scopes: list[str] | None,
        redirect_uri: str,
    ) -> tuple[ConnectionRow, Authorization | None]:
        """Create a connection. Static credentials are stored and active; an oauth2 connection is
        ``pending`` and comes back with the authorization to open. Does not commit."""
        check_connection_name(name)
        connector = self.connector(connector_key)
        values = check_credentials(connector, kind, credentials)
        repo = ConnectionRepo(session)
        if kind != "oauth2":
            if scopes:
                raise Unprocessable("scopes apply to oauth2 connections only")
            static: dict[str, Any] = {"kind": kind, "fields": values}
            row = await repo.add(
                account_id,
                name,
                connector=connector.key,
                kind=kind,
                status=ConnectionStatus.ACTIVE,
                ciphertext=self.encrypt(account_id, name, static),
                now=self.clock(),
            )
            return row, None
        declared = self.oauth2(connector)
        given_client = {k: values.pop(k) for k in oauth.CLIENT_FIELDS if k in values}
        client = oauth.client_from(connector.key, given_client, self.environ)
        chosen = _check_scopes(scopes if scopes is not None else list(declared.scopes))
        payload: dict[str, Any] = {
            "kind": kind,
            "fields": values,
            "client": client.to_json() if given_client else None,
            "scopes": chosen,
            "token": None,
        }
        row = await repo.add(
            account_id,
            name,
            connector=connector.key,
            kind=kind,
            status=ConnectionStatus.PENDING,
            ciphertext=self.encrypt(account_id, name, payload),
            now=self.clock(),
        )
        authorization = await self._start(session, row, declared, client, chosen, redirect_uri)
        return row, authorization

    async def authorize(
        self, session: AsyncSession, account_id: str, name: str, *, redirect_uri: str
    ) -> tuple[ConnectionRow, Authorization]:
        """Start a new authorization of an existing oauth2 connection (after ``needs_reauth``, or to
        replace its tokens); the connection keeps working with its current tokens until the callback."""
        row = await ConnectionRepo(session).get(account_id, name)
        if row is None:
            raise NotFound(f"no connection named {name!r}")
        if row.kind != "oauth2":
            raise Unprocessable(
                f"connection {name!r} is a {row.kind} connection: only oauth2 ones are authorized"
            )
        connector = self.connector(row.connector)
        payload = self.decrypt(account_id, name, row.ciphertext)
        client = self.oauth_client(connector.key, payload)
        scopes = [str(s) for s in payload.get("scopes") or []]
        return row, await self._start(session, row, self.oauth2(connector), client, scopes, redirect_uri)

    async def _start(
        self,
        session: AsyncSession,
        row: ConnectionRow,
        declared: OAuth2,
        client: oauth.OAuthClient,
        scopes: list[str],
        redirect_uri: str,
    ) -> Authorization:
        now = self.clock()
        state, verifier = oauth.new_state(), oauth.new_code_verifier()
        key = state_hash(state)
        states = OAuthStateRepo(session)
        await states.purge_expired(now)
        expires_at = now + oauth.STATE_TTL
        await states.add(
            key,
            account_id=row.account_id,
            connection_id=row.id,
            verifier_ciphertext=self.encryptor.encrypt(
                verifier, account_id=row.account_id, name=key, kind=STATE_KIND
            ),
            redirect_uri=redirect_uri,
            expires_at=expires_at,
            now=now,
        )
        url = await oauth.authorization_url(
            self.http,
            declared,
            client,
            redirect_uri=redirect_uri,
            state=state,
            code_verifier=verifier,
            scopes=scopes,
        )
        return Authorization(url=url, expires_at=expires_at)

    # -- the callback ----------------------------------------------------------------------------

    async def complete(
        self,
        session: AsyncSession,
        *,
        state: str,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> ConnectionRow:
        """Finish an authorization: take the ``state`` (once), exchange ``code``, store the tokens.

        400 for an unknown, used or expired state, for a provider's refusal (``error``) and for a
        refused code exchange. The state is consumed in every case: it is committed before the token
        endpoint is called; the caller commits the rest (also on error, to keep the failure's message).
        """
        now = self.clock()
        taken = await OAuthStateRepo(session).take(state_hash(state))
        if taken is None or taken.expires_at <= now:
            raise BadRequest(
                "unknown, already used or expired OAuth state: start the authorization again "
                "(POST /v1/connections/{name}/authorize)",
                details={"reason": "state"},
            )
        row = await ConnectionRepo(session).get_by_id(taken.account_id, taken.connection_id)
        if row is None:
            raise BadRequest("the connection of this authorization was deleted")
        if error:
            description = f" ({error_description[:200]})" if error_description else ""
            message = f"the provider refused the authorization: {error[:60]}{description}"
            await self._note(session, row.account_id, row.id, message, now)
            raise BadRequest(message, details={"error": error[:60]})
        if not code:
            raise BadRequest("the callback has no code")
        key = state_hash(state)
        verifier = self.encryptor.decrypt_text(
            taken.verifier_ciphertext, account_id=row.account_id, name=key, kind=STATE_KIND
        )
        connector = self.connector(row.connector)
        client = self.oauth_client(connector.key, self.decrypt(row.account_id, row.name, row.ciphertext))
        account_id, connection_id = row.account_id, row.id
        await session.commit()  # the state is used up now, and no transaction stays open during the exchange
        try:
            tokens = await oauth.exchange_code(
                self.http,
                self.oauth2(connector),
                client,
                code=code,
                code_verifier=verifier,
                redirect_uri=taken.redirect_uri,
                now=now,
            )
        except oauth.OAuthFailure as exc:
            message = f"the code exchange failed: {exc.message}"
            await self._note(session, account_id, connection_id, message, now)
            raise BadRequest(message, details=exc.details) from None
        except MashpipeError as exc:  # egress refused, provider unreachable...
            message = f"the token endpoint could not be reached: {exc.message}"
            await self._note(session, account_id, connection_id, message, now)
            raise BadRequest(message) from None
        repo = ConnectionRepo(session)
        current = await repo.get_by_id(account_id, connection_id)
        if current is None:
            raise BadRequest("the connection was deleted during its authorization")
        payload = self.decrypt(account_id, current.name, current.ciphertext)
        payload["token"] = tokens.to_json()
        saved = await repo.save_credentials(
            current.id,
            current.version,
            ciphertext=self.encrypt(account_id, current.name, payload),
            token_expires_at=tokens.expires_at,
            status=ConnectionStatus.ACTIVE,
            now=now,
        )
        if not saved:
            raise BadRequest("the connection changed during its authorization; authorize it again")
        await session.refresh(current)
        logger.info("connection %s of account %s authorized", current.name, account_id)
        return current

    async def _note(
        self, session: AsyncSession, account_id: str, connection_id: str, message: str, now: datetime
    ) -> None:
        """Record why an authorization failed on a connection that is still pending (else leave it)."""
        row = await ConnectionRepo(session).get_by_id(account_id, connection_id)
        if row is not None and row.status == ConnectionStatus.PENDING:
            await ConnectionRepo(session).set_status(
                row.id, row.version, ConnectionStatus.PENDING, message, now
            )

    # -- refreshing ------------------------------------------------------------------------------

    async def refresh(self, connector_key: str, payload: Mapping[str, Any]) -> oauth.TokenSet:
        """New tokens for an oauth2 connection's payload (network call; raises ``OAuthFailure``)."""
        token = payload.get("token")
        refresh_token = token.get("refresh_token") if isinstance(token, dict) else None
        if not refresh_token:
            raise oauth.OAuthFailure(
                "invalid_grant", "the access token expired and the provider gave no refresh token"
            )
        connector = self.registry.get(connector_key)
        declared = oauth2_of(connector)
        if declared is None:
            raise oauth.OAuthFailure("unsupported", f"connector {connector_key} no longer declares OAuth2")
        client = self.oauth_client(connector_key, payload)
        return await oauth.refresh_tokens(
            self.http, declared, client, refresh_token=str(refresh_token), now=self.clock()
        )


def _check_scopes(scopes: list[str]) -> list[str]:
    if len(scopes) > MAX_SCOPES or any(not s or len(s) > 200 or any(c.isspace() for c in s) for s in scopes):
        raise Unprocessable(
            f"scopes must be at most {MAX_SCOPES} names without spaces",
            details=[{"path": "scopes", "message": "invalid scope list"}],
        )
    return list(dict.fromkeys(scopes))
