"""The pure parts of connections: token answers, OAuth client resolution, credential checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import Unprocessable
from app.sdk import ApiKey, BasicAuth, BearerToken, Connector, CredentialField, OAuth2
from app.security import oauth
from app.security.connection_fields import check_credentials

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_token_answers_are_parsed_with_an_absolute_expiry() -> None:
    tokens = oauth.parse_token({"access_token": "a", "token_type": "bearer", "expires_in": "120"}, NOW)
    assert tokens.expires_at == NOW + timedelta(seconds=120)
    assert tokens.refresh_token is None
    assert tokens.token_type == "Bearer"
    kept = oauth.parse_token({"access_token": "b", "expires_in": 60}, NOW, previous_refresh="r1")
    assert kept.refresh_token == "r1"  # a provider that does not rotate
    rotated = oauth.parse_token({"access_token": "c", "refresh_token": "r2"}, NOW, previous_refresh="r1")
    assert rotated.refresh_token == "r2"
    assert rotated.expires_at is None  # no expires_in: never refreshed ahead
    assert oauth.TokenSet.from_json(tokens.to_json()) == tokens


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"token_type": "bearer"}, "invalid_response"),
        ({"access_token": ""}, "invalid_response"),
        ({"access_token": "a", "token_type": "mac"}, "unsupported_token_type"),
    ],
)
def test_unusable_token_answers_are_refused(answer: dict[str, object], error: str) -> None:
    with pytest.raises(oauth.OAuthFailure) as caught:
        oauth.parse_token(answer, NOW)
    assert caught.value.error == error
    assert not caught.value.invalid_grant


def test_the_oauth_client_comes_from_the_credentials_then_the_environment() -> None:
    environ = {
        "MASHPIPE_OAUTH_GITHUB_CLIENT_ID": "env-id",
        "MASHPIPE_OAUTH_GITHUB_CLIENT_SECRET": "env-secret",
    }
    given = oauth.client_from("github", {"client_id": "mine", "client_secret": "s"}, environ)
    assert given == oauth.OAuthClient("mine", "s", "client_secret_basic")
    assert oauth.client_from("github", {}, environ) == oauth.OAuthClient("env-id", "env-secret")
    public = oauth.client_from("github", {"client_id": "public"}, {})
    assert public.auth_method == "none"
    posted = oauth.client_from(
        "github",
        {"client_id": "c", "client_secret": "s", "token_endpoint_auth_method": "client_secret_post"},
        {},
    )
    assert posted.auth_method == "client_secret_post"
    assert oauth.env_names("google_sheets") == (
        "MASHPIPE_OAUTH_GOOGLE_SHEETS_CLIENT_ID",
        "MASHPIPE_OAUTH_GOOGLE_SHEETS_CLIENT_SECRET",
    )


@pytest.mark.parametrize(
    ("credentials", "fragment"),
    [
        ({}, "MASHPIPE_OAUTH_GITHUB_CLIENT_ID"),
        ({"client_id": "c", "token_endpoint_auth_method": "magic"}, "must be one of"),
        ({"client_id": "c", "token_endpoint_auth_method": "client_secret_post"}, "needs a client secret"),
    ],
)
def test_unusable_oauth_clients_are_refused(credentials: dict[str, str], fragment: str) -> None:
    with pytest.raises(Unprocessable, match=fragment):
        oauth.client_from("github", credentials, {})


def test_pkce_values_are_fresh_and_long_enough() -> None:
    verifiers = {oauth.new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    assert all(43 <= len(v) <= 128 for v in verifiers)
    assert len({oauth.new_state() for _ in range(20)}) == 20


def _connector() -> Connector:
    return Connector(
        key="zendeskish",
        version="1.0.0",
        title="Per-customer host",
        description="A connector whose base URL depends on the connection.",
        base_url="https://{subdomain}.example.com/api",
        auth=[
            ApiKey(header="X-Key"),
            BasicAuth(),
            BearerToken(extra_fields=[CredentialField("region", "Region", secret=False, required=False)]),
            OAuth2(authorize_url="https://example.com/authorize", token_url="https://example.com/token"),
        ],
        test_request=("GET", "/me"),
    )


def test_credentials_carry_the_base_url_values_and_optional_fields() -> None:
    connector = _connector()
    assert check_credentials(connector, "api_key", {"api_key": " k ", "subdomain": "acme"}) == {
        "api_key": "k",
        "subdomain": "acme",
    }
    assert check_credentials(
        connector, "basic", {"username": "u", "password": " p ", "subdomain": "acme"}
    ) == {
        "username": "u",
        "password": " p ",  # a password is kept exactly
        "subdomain": "acme",
    }
    assert (
        check_credentials(connector, "bearer", {"token": "t", "subdomain": "acme", "region": "eu"})["region"]
        == "eu"
    )
    assert check_credentials(connector, "oauth2", {"subdomain": "acme"}) == {"subdomain": "acme"}


@pytest.mark.parametrize(
    ("kind", "credentials", "fragment"),
    [
        ("api_key", {"api_key": "k"}, "credentials.subdomain: required"),
        ("api_key", {"api_key": "k", "subdomain": "evil.com/x?"}, "letters, digits, dots and hyphens"),
        ("basic", {"username": "u", "subdomain": "acme"}, "credentials.password: required"),
        (
            "oauth2",
            {"subdomain": "acme", "access_token": "stolen"},
            "credentials.access_token: unknown field",
        ),
        ("none", {}, "does not accept 'none' connections"),
    ],
)
def test_credentials_that_do_not_fit_are_refused(
    kind: str, credentials: dict[str, str], fragment: str
) -> None:
    with pytest.raises(Unprocessable, match=fragment.replace("?", r"\?")):
        check_credentials(_connector(), kind, credentials)


def test_a_connector_without_auth_takes_no_connection() -> None:
    public = Connector(key="public", version="1.0.0", title="Public", description="No auth.")
    with pytest.raises(Unprocessable, match="needs no connection"):
        check_credentials(public, "bearer", {"token": "t"})
