"""SDK pieces for connectors beyond plain HTTP: optional connection fields, a connection's own base URL,
API-specific error explanations, and egress checks for other protocols (SMTP)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.errors import EgressDenied, StepError
from app.sdk import (
    BearerToken,
    ConnectionFailed,
    Connector,
    ConnectorDefinitionError,
    CredentialField,
    UpstreamError,
    build_http_client,
    raise_for_response,
)
from app.sdk.auth import select_auth
from app.sdk.http import ConnectorHTTP, egress_policy_of
from app.sdk.testing import settings_for_tests

OPTIONAL_URL = CredentialField("base_url", "Base URL", secret=False, required=False)


def make(**kwargs: Any) -> Connector:
    defaults: dict[str, Any] = {
        "key": "demo",
        "version": "1.0.0",
        "title": "Demo",
        "description": "A demo.",
        "base_url": "https://api.example.com/v1",
    }
    return Connector(**{**defaults, **kwargs})


def test_optional_fields_do_not_have_to_be_present() -> None:
    kind = BearerToken(extra_fields=[OPTIONAL_URL])
    assert [f.name for f in kind.fields] == ["token", "base_url"]
    assert kind.matches({"token": "t0k3n"})
    assert not kind.matches({"base_url": "https://x.example"})
    chosen, auth = select_auth([kind], {"kind": "bearer", "token": "t0k3n"}, connector="demo")
    assert chosen is kind
    assert auth is not None
    with pytest.raises(StepError, match=r"lacks token$"):
        select_auth([kind], {"kind": "bearer", "base_url": "https://x.example"}, connector="demo")
    assert kind.describe()["fields"][1] == {
        "name": "base_url",
        "label": "Base URL",
        "secret": False,
        "required": False,
    }


def test_extra_fields_are_checked() -> None:
    with pytest.raises(ConnectorDefinitionError, match="other than `token`"):
        BearerToken(extra_fields=[CredentialField("token", "again")])
    with pytest.raises(ConnectorDefinitionError, match="CredentialField"):
        BearerToken(extra_fields=["base_url"])  # type: ignore[list-item]


def test_base_url_field_replaces_the_whole_base_url() -> None:
    demo = make(base_url_field="base_url")
    assert demo.base_url_for({"token": "t"}) == "https://api.example.com/v1"
    assert demo.base_url_for({"token": "t", "base_url": ""}) == "https://api.example.com/v1"
    assert demo.base_url_for({"base_url": "http://127.0.0.1:8080/v1/"}) == "http://127.0.0.1:8080/v1"
    assert demo.base_url_for({"base_url": " https://gw.example.org "}) == "https://gw.example.org"
    assert demo.describe()["base_url_field"] == "base_url"


@pytest.mark.parametrize(
    "value",
    [
        "ftp://x.example/v1",
        "https://u:p@x.example/v1",
        "https://x.example/v1?key=1",
        "https://x.example/v1#top",
        "x.example/v1",
        "http://[bad",
        42,
    ],
)
def test_bad_base_url_overrides_are_connection_errors(value: Any) -> None:
    demo = make(base_url_field="base_url")
    with pytest.raises(StepError, match="`base_url` must be an absolute http") as raised:
        demo.base_url_for({"base_url": value})
    assert raised.value.code == "connection_invalid"


@pytest.mark.parametrize(
    "kwargs", [{"base_url_field": "base url"}, {"base_url_field": "base_url", "base_url": None}]
)
def test_base_url_field_declaration_is_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConnectorDefinitionError, match="base_url_field"):
        make(**kwargs)


def response(status: int, content: bytes) -> httpx.Response:
    return httpx.Response(
        status,
        content=content,
        headers={"Content-Type": "application/json"},
        request=httpx.Request("POST", "https://api.example.com/v1/things?key=secret"),
    )


def test_explain_reads_the_api_error_format() -> None:
    def explain(body: Any) -> str | None:
        return f"{body['error']['message']} [{body['error']['code']}]"

    body = b'{"error": {"message": "bad  thing", "code": "e1"}}'
    with pytest.raises(UpstreamError) as raised:
        raise_for_response(response(400, body), explain=explain)
    assert raised.value.message == (
        "POST https://api.example.com/v1/things answered 400 Bad Request: bad thing [e1]"
    )


@pytest.mark.parametrize(
    "content", [b'{"message": "plain"}', b"plain", b'{"error": "plain"}', b'{"error": {"message": "plain"}}']
)
def test_explain_falls_back_to_the_generic_message(content: bytes) -> None:
    with pytest.raises(UpstreamError) as raised:
        raise_for_response(response(409, content), explain=lambda body: body["error"]["code"])
    assert raised.value.message.endswith(": plain")


def test_explain_is_not_called_on_success() -> None:
    def explode(body: Any) -> str:
        raise AssertionError("called")

    raise_for_response(response(200, b"{}"), explain=explode)


async def fixed(host: str, port: int) -> list[str]:
    return {"smtp.example.com": ["93.184.215.14"], "intranet.example.com": ["10.1.2.3"]}[host]


async def failing(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


async def test_egress_addresses_apply_the_client_policy() -> None:
    settings = settings_for_tests(egress_allow="127.0.0.1,intranet.example.com:2525")
    async with build_http_client(settings, resolver=fixed) as client:
        http = ConnectorHTTP(client)
        assert await http.egress_addresses("smtp.example.com", 587) == ["93.184.215.14"]
        assert await http.egress_addresses("127.0.0.1", 25) == ["127.0.0.1"]
        assert await http.egress_addresses("intranet.example.com", 2525) == ["10.1.2.3"]
        with pytest.raises(EgressDenied, match=r"intranet.example.com \(10.1.2.3, private\)"):
            await http.egress_addresses("intranet.example.com", 25)
        with pytest.raises(EgressDenied, match="loopback"):
            await http.egress_addresses("::1", 25)


async def test_egress_addresses_without_a_built_client_refuse_private_hosts() -> None:
    async with httpx.AsyncClient() as client:
        assert egress_policy_of(client).networks == []
        with pytest.raises(EgressDenied):
            await ConnectorHTTP(client).egress_addresses("127.0.0.1", 25)


async def test_egress_addresses_of_an_unknown_host() -> None:
    async with build_http_client(settings_for_tests(), resolver=failing) as client:
        with pytest.raises(ConnectionFailed, match=r"cannot resolve host nowhere\.example"):
            await ConnectorHTTP(client).egress_addresses("nowhere.example", 25)


class OtherProtocol(BearerToken):
    """Credentials that no HTTP request can check."""

    kind = "other"
    verified_by_request = False


def test_check_connector_exempts_auth_kinds_not_verified_by_request() -> None:
    from app.sdk.testing import check_connector

    assert check_connector(make(auth=[OtherProtocol()])) == []
    assert check_connector(make(auth=[BearerToken()])) == [
        "demo: declares auth but no test_request to verify a connection"
    ]
