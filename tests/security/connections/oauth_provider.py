"""A local OAuth2 provider over HTTPS on 127.0.0.1, and a connector using it (task S2 tests).

:class:`Provider` is an aiohttp app with a throwaway certificate authority:

* ``GET /authorize``: auto-approves, redirects to ``redirect_uri`` with ``code`` and ``state`` (or
  ``error=access_denied`` when ``deny`` is set);
* ``POST /token``: ``authorization_code`` (client authentication, redirect URI and the PKCE S256
  challenge checked; codes are single-use) and ``refresh_token`` (rotation: each refresh token works
  once; ``revoke_all()`` makes every one fail with ``invalid_grant``). ``refresh_gate``, when set,
  holds refreshes until it is set (``refresh_entered`` tells one is waiting);
* ``GET /api/me``: the protected API (``Authorization: Bearer <access token>``).

``demo_connector(base)`` declares ``OAuth2(authorize_url=..., token_url=...)`` and ``BearerToken()``
against it, with an action ``demo.me`` and ``test_request=("GET", "/me")``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import BaseModel

from app.sdk import BearerToken, Connector, Context, OAuth2
from app.sdk.errors import raise_for_response

CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-client-secret-0123456789"
PUBLIC_CLIENT_ID = "demo-public-client"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh CA and a certificate for 127.0.0.1: (server context, client context trusting the CA).

    The CA is also written to ``directory / "ca.pem"``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("mashpipe test CA"))
        .issuer_name(_name("mashpipe test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))  # for subprocesses
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


@dataclass
class Provider:
    """The provider's state; tests read and change it directly (same process, same loop)."""

    expires_in: int = 3600
    deny: bool = False
    rotate: bool = True
    fail_refresh_with: int | None = None  # answer refreshes with this HTTP status (a provider outage)
    codes: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> client id
    access_tokens: set[str] = field(default_factory=set)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refresh_count: int = 0
    refresh_gate: asyncio.Event | None = None
    refresh_entered: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""

    def revoke_all(self) -> None:
        """The user revoked the app: every refresh and access token stops working."""
        self.refresh_tokens.clear()
        self.access_tokens.clear()

    def _issue(self, client_id: str) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        refresh = "rt-" + secrets.token_urlsafe(16)
        self.access_tokens.add(access)
        self.refresh_tokens[refresh] = client_id
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": "read",
        }

    # -- routes ----------------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        redirect = query["redirect_uri"]
        if (
            query.get("client_id") not in (CLIENT_ID, PUBLIC_CLIENT_ID)
            or query.get("response_type") != "code"
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        if self.deny:
            raise web.HTTPFound(
                f"{redirect}?error=access_denied&error_description=nope&state={query['state']}"
            )
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.json_response(
                {"error": "invalid_request", "error_description": "PKCE required"}, status=400
            )
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = Grant(
            query["client_id"], redirect, query["code_challenge"], query.get("scope", "")
        )
        raise web.HTTPFound(f"{redirect}?code={code}&state={query['state']}")

    def _client(self, request: web.Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user if (user, password) == (CLIENT_ID, CLIENT_SECRET) else None
        if form.get("client_secret"):
            ok = (form.get("client_id"), form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
            return CLIENT_ID if ok else None
        return PUBLIC_CLIENT_ID if form.get("client_id") == PUBLIC_CLIENT_ID else None

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form | {"auth": request.headers.get("Authorization", "")[:5]})
        client = self._client(request, form)
        if client is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if code is None or code.client_id != client or code.redirect_uri != form.get("redirect_uri"):
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "bad code"}, status=400
                )
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "PKCE verification failed"}, status=400
                )
            return web.json_response(self._issue(client))
        if grant == "refresh_token":
            self.refresh_count += 1
            self.refresh_entered.set()
            if self.refresh_gate is not None:
                await self.refresh_gate.wait()
            if self.fail_refresh_with is not None:
                return web.Response(status=self.fail_refresh_with, text="down for maintenance")
            token = form.get("refresh_token", "")
            if self.refresh_tokens.get(token) != client:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "refresh token revoked"}, status=400
                )
            issued = self._issue(client)
            if self.rotate:
                del self.refresh_tokens[token]
            else:
                del self.refresh_tokens[issued.pop("refresh_token")]
            return web.json_response(issued)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def me(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.access_tokens:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"login": "octo", "id": 7})


async def start_provider(provider: Provider, server_tls: ssl.SSLContext) -> web.AppRunner:
    """Serve ``provider`` over HTTPS on 127.0.0.1 (a free port); sets ``provider.base_url``."""
    app = web.Application()
    app.router.add_get("/authorize", provider.authorize)
    app.router.add_post("/token", provider.token)
    app.router.add_get("/api/me", provider.me)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    provider.base_url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    return runner


class MeParams(BaseModel):
    """No parameters."""


class Me(BaseModel):
    login: str
    id: int


def demo_connector(base: str) -> Connector:
    """A connector whose API and OAuth2 endpoints are the local provider's."""
    connector = Connector(
        key="demo",
        version="1.0.0",
        title="Demo",
        description="The local OAuth2 provider of the tests.",
        base_url=f"{base}/api",
        auth=[
            OAuth2(authorize_url=f"{base}/authorize", token_url=f"{base}/token", scopes=["read"]),
            BearerToken(),
        ],
        test_request=("GET", "/me"),
    )

    @connector.action(title="Who am I")
    async def me(ctx: Context, params: MeParams) -> Me:
        """The user the token belongs to."""
        response = await ctx.http.get("/me")
        raise_for_response(response)
        return Me.model_validate(response.json())

    return connector
