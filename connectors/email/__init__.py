"""``email``: send email through an SMTP server (aiosmtplib), with STARTTLS or implicit TLS.

The connection describes the server (kind ``smtp``):

==================  ===========================================================================
field               meaning
==================  ===========================================================================
``host``            the SMTP server's name or address (required)
``port``            default 587 with ``starttls``, 465 with ``tls``, 25 with ``none``
``security``        ``starttls`` (default: upgrade after connecting, required), ``tls`` (TLS from
                    the first byte, "SMTPS"), or ``none`` (plain text: only for a local relay)
``username``        login for AUTH (with ``password``); no login when absent
``password``        the password or app password
``from_address``    the default sender when a step gives no ``from``
==================  ===========================================================================

The platform's egress guard applies to the SMTP server as to any HTTP destination: the host is
resolved once, every address is checked (private and loopback addresses are refused unless
``MASHPIPE_EGRESS_ALLOW`` allows them) and the connection is made to a checked address, while TLS
still verifies the certificate against the host name.

* ``email.send``: one message (text, optional HTML alternative) to ``to``/``cc``/``bcc``.
* ``email.check_connection``: connect, greet, upgrade to TLS and log in, then quit: the way to
  verify an SMTP connection (no HTTP ``test_request`` applies).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any, ClassVar, Literal

import aiosmtplib
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.errors import StepError, StepTimeout
from app.sdk import AuthFailed, AuthKind, ConnectionFailed, Connector, Context, CredentialField, UpstreamError

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
ADDRESS = r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+$"
MAX_RECIPIENTS = 100


class SmtpServer(AuthKind):
    """An SMTP server and its login: ``host`` (required), ``port``, ``security``, ``username``..."""

    kind = "smtp"
    verified_by_request: ClassVar[bool] = False

    def __init__(self, *, label: str = "SMTP server") -> None:
        self.label = label

    @property
    def fields(self) -> tuple[CredentialField, ...]:
        return (
            CredentialField("host", "SMTP server host name", secret=False),
            CredentialField(
                "port", "Port (587 for STARTTLS, 465 for TLS, 25 for none)", secret=False, required=False
            ),
            CredentialField("security", "starttls (default), tls or none", secret=False, required=False),
            CredentialField("username", "User name", secret=False, required=False),
            CredentialField("password", "Password", required=False),
            CredentialField("from_address", "Default sender address", secret=False, required=False),
        )

    def build(self, credentials: Mapping[str, Any]) -> httpx.Auth | None:
        return None  # not HTTP: the operations read the fields themselves


connector = Connector(
    key="email",
    version="1.0.0",
    title="Email (SMTP)",
    description="Send email through your SMTP server (STARTTLS or TLS, with login).",
    auth=[SmtpServer()],
    docs_url="https://aiosmtplib.readthedocs.io/",
)


class Server(BaseModel):
    """The connection's server settings, checked."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(ge=1, le=65535)
    security: Security
    username: str | None = None
    password: str | None = None
    from_address: str | None = Field(default=None, pattern=ADDRESS)

    @classmethod
    def of(cls, credentials: Mapping[str, Any]) -> Server:
        """The settings of a connection; ``connection_invalid`` when a field is malformed."""
        security = str(credentials.get("security") or "starttls").strip().lower()
        if security not in DEFAULT_PORTS:
            raise StepError(
                f"email: the connection's security must be starttls, tls or none, not {security!r}",
                code="connection_invalid",
            )
        raw_port = str(credentials.get("port") or DEFAULT_PORTS[security]).strip()
        if not raw_port.isdigit():
            raise StepError("email: the connection's port must be a number", code="connection_invalid")
        try:
            server = cls(
                host=str(credentials.get("host", "")).strip().strip("[]"),
                port=int(raw_port),
                security=security,
                username=credentials.get("username") or None,
                password=credentials.get("password") or None,
                from_address=credentials.get("from_address") or None,
            )
        except ValidationError as exc:
            fields = sorted({str(error["loc"][0]) for error in exc.errors()})
            raise StepError(
                f"email: the connection's {', '.join(fields)} is malformed", code="connection_invalid"
            ) from None
        if server.security == "none" and server.password:
            raise StepError(
                "email: refusing to send a password over an unencrypted connection; "
                "use security starttls or tls",
                code="connection_invalid",
            )
        return server


def _one_line(value: str | None) -> str | None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError("must be a single line")
    return value


class SendParams(BaseModel):
    """A message to send."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: list[str] = Field(min_length=1, description="Recipient addresses")
    cc: list[str] = Field(default_factory=list, description="Copy recipients")
    bcc: list[str] = Field(default_factory=list, description="Hidden recipients (not written in the headers)")
    subject: str = Field(min_length=1, max_length=998, description="Subject line")
    text: str = Field(max_length=5_000_000, description="The plain-text body")
    html: str | None = Field(
        default=None, max_length=5_000_000, description="An HTML version of the body, shown by most mail apps"
    )
    from_: str | None = Field(
        default=None,
        alias="from",
        pattern=ADDRESS,
        description="Sender address; default: the connection's from_address, else its username",
    )
    from_name: str | None = Field(default=None, max_length=200, description="Sender display name")
    reply_to: str | None = Field(default=None, pattern=ADDRESS, description="Where replies should go")

    _single_lines = field_validator("subject", "from_name")(_one_line)

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        bad = [value for value in values if not re.match(ADDRESS, value)]
        if bad:
            raise ValueError(f"not email addresses: {', '.join(repr(v) for v in bad[:3])}")
        return values

    @model_validator(mode="after")
    def _bounded(self) -> SendParams:
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in all")
        return self


class CheckParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid")


class Sent(BaseModel):
    """What the server said."""

    message_id: str = Field(description="The Message-ID header given to the message")
    sender: str = Field(description="The envelope and From address")
    accepted: list[str] = Field(description="Recipients the server accepted")
    refused: dict[str, str] = Field(description="Recipients the server refused, with its reply")
    response: str = Field(description="The server's final reply")


class ServerCheck(BaseModel):
    """The outcome of a connection check."""

    host: str = Field(description="The server")
    port: int = Field(description="The port")
    security: str = Field(description="starttls, tls or none")
    encrypted: bool = Field(description="Whether the session ended up encrypted")
    logged_in: bool = Field(description="Whether a login was made (and accepted)")
    extensions: list[str] = Field(description="ESMTP extensions the server announced")


async def _connect_socket(addresses: list[str], port: int, seconds: float) -> socket.socket:
    """A connected socket to the first reachable checked address."""
    loop = asyncio.get_running_loop()
    failure: Exception | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(seconds):
                await loop.sock_connect(sock, (address, port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            failure = exc
            continue
        return sock
    if isinstance(failure, TimeoutError):
        raise StepTimeout(
            f"email: connecting to port {port} timed out after {seconds:g}s", retry_kind="timeout"
        )
    raise ConnectionFailed(f"email: cannot connect to port {port}: {failure}")


def _mapped(exc: Exception, server: Server) -> StepError:
    """The step error for an aiosmtplib failure."""
    where = f"SMTP {server.host}:{server.port}"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthFailed(f"{where} refused the login: {exc.code} {exc.message}", status_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPConnectTimeoutError):
        return StepTimeout(f"{where}: {exc}", retry_kind="timeout")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return ConnectionFailed(f"{where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        transient = 400 <= exc.code < 500
        return UpstreamError(
            f"{where} answered {exc.code} {exc.message}",
            status_code=exc.code,
            retry_kind="connection" if transient else None,
            details={"smtp_code": exc.code},
        )
    if isinstance(exc, aiosmtplib.SMTPException):
        return UpstreamError(f"{where}: {exc}")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ConnectionFailed(f"{where}: TLS failed: {exc}")
    if isinstance(exc, OSError):
        return ConnectionFailed(f"{where}: {exc}")
    raise exc


@asynccontextmanager
async def smtp_session(ctx: Context, server: Server, seconds: float = 30.0) -> AsyncIterator[aiosmtplib.SMTP]:
    """A connected, greeted, encrypted (unless ``none``) and logged-in SMTP session, closed on exit."""
    addresses = await ctx.http.egress_addresses(server.host, server.port)
    sock = await _connect_socket(addresses, server.port, seconds)
    client = aiosmtplib.SMTP(
        hostname=server.host,
        sock=sock,
        use_tls=server.security == "tls",
        start_tls=server.security == "starttls",
        timeout=seconds,
        local_hostname=socket.gethostname() or "localhost",
    )
    try:
        try:
            await client.connect()
            if server.username and server.password:
                await client.login(server.username, server.password)
        except Exception as exc:
            raise _mapped(exc, server) from None
        yield client
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
        else:
            sock.close()


def build_message(params: SendParams, sender: str, server: Server) -> EmailMessage:
    """The MIME message: text, and an HTML alternative when given."""
    message = EmailMessage()
    message["From"] = formataddr((params.from_name, sender)) if params.from_name else sender
    message["To"] = ", ".join(params.to)
    if params.cc:
        message["Cc"] = ", ".join(params.cc)
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Subject"] = params.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1])
    message.set_content(params.text)
    if params.html is not None:
        message.add_alternative(params.html, subtype="html")
    return message


@connector.action(title="Send email")
async def send(ctx: Context, params: SendParams) -> Sent:
    """Send one message (plain text, optionally with an HTML version) through the connection's SMTP server."""
    server = Server.of(ctx.credentials)
    sender = params.from_ or server.from_address or server.username
    if not sender or "@" not in sender:
        raise StepError(
            "email: give `from`, or set from_address (or an address as username) on the connection",
            code="invalid_params",
        )
    message = build_message(params, sender, server)
    recipients = [*params.to, *params.cc, *params.bcc]
    async with smtp_session(ctx, server) as client:
        try:
            refused, reply = await client.send_message(message, sender=sender, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            details = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
            raise UpstreamError(
                f"SMTP {server.host}:{server.port} refused every recipient", details={"refused": details}
            ) from None
        except Exception as exc:
            raise _mapped(exc, server) from None
    refused_text = {address: f"{code} {text}" for address, (code, text) in refused.items()}
    ctx.log.info("sent %s to %s recipients", message["Message-ID"], len(recipients) - len(refused_text))
    return Sent(
        message_id=str(message["Message-ID"]),
        sender=sender,
        accepted=[address for address in recipients if address not in refused_text],
        refused=refused_text,
        response=reply,
    )


@connector.action(title="Check connection")
async def check_connection(ctx: Context, params: CheckParams) -> ServerCheck:
    """Connect to the SMTP server, greet it, upgrade to TLS and log in as configured, then quit."""
    server = Server.of(ctx.credentials)
    async with smtp_session(ctx, server) as client:
        if client.last_ehlo_response is None:  # no STARTTLS or login made the client greet yet
            try:
                await client.ehlo()
            except Exception as exc:
                raise _mapped(exc, server) from None
        extensions = sorted(client.esmtp_extensions)
        encrypted = client.get_transport_info("sslcontext") is not None
    return ServerCheck(
        host=server.host,
        port=server.port,
        security=server.security,
        encrypted=encrypted,
        logged_in=bool(server.username and server.password),
        extensions=extensions,
    )
