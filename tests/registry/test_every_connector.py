"""The standard suite every registered connector passes (built-ins and any installed plugin).

Parametrized over ``Registry.load(Settings())``: metadata and semver, the SDK's standard checks,
JSON-serializable and valid JSON Schemas, polls declaring ``dedupe``, docs, and for the connectors
shipped with Mashpipe a reference page in ``docs/connectors`` and a test of every declared operation.
The built-in ``request`` operation of every connector with a base URL is run here against respx.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx

from app.registry import Registry
from app.sdk import Connector, NoAuth
from app.sdk.connector import KEY_RE, SEMVER_RE
from app.sdk.testing import check_connector, run_action
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = Registry.load(Settings())
CONNECTORS = REGISTRY.connectors()
BUILTIN = {c.key for c in CONNECTORS if REGISTRY.source(c.key).startswith("distribution mashpipe ")}


def by_key(param: Connector) -> str:
    return param.key


every_connector = pytest.mark.parametrize("connector", CONNECTORS, ids=by_key)


def test_the_registry_holds_the_builtins() -> None:
    allowlist = Settings().connector_allowlist
    if allowlist is None:
        assert len(BUILTIN) >= 19


@every_connector
def test_metadata(connector: Connector) -> None:
    assert KEY_RE.match(connector.key)
    assert SEMVER_RE.match(connector.version), connector.version
    assert connector.title.strip()
    assert connector.description.strip().endswith((".", ")")), "describe the connector in a sentence"
    assert connector.auth, "declare the accepted auth kinds (NoAuth() when none)"


@every_connector
def test_standard_checks(connector: Connector) -> None:
    assert check_connector(connector) == []


@every_connector
def test_schemas_are_json_and_valid(connector: Connector) -> None:
    described = connector.describe()
    assert json.loads(json.dumps(described)) == described
    for op in connector.operations.values():
        for schema in (op.input_schema, op.output_schema, op.cursor_schema):
            if schema is not None:
                jsonschema.Draft202012Validator.check_schema(schema)
        assert op.input_schema.get("type") == "object", f"{op.uses}: parameters must be an object"


@every_connector
def test_polls_declare_dedupe_and_a_cursor(connector: Connector) -> None:
    for op in connector.polls():
        assert callable(op.dedupe), op.uses
        assert op.cursor_schema is not None, op.uses
        assert op.output_schema.get("type") == "array", op.uses


@every_connector
def test_operations_are_documented(connector: Connector) -> None:
    for op in connector.operations.values():
        assert op.title.strip(), op.uses
        assert len(op.description.strip()) >= 10, f"{op.uses}: say what it does in its docstring"
    if connector.key in BUILTIN:
        page = ROOT / "docs" / "connectors" / f"{connector.key}.md"
        assert page.is_file(), f"no {page.relative_to(ROOT)}: run `mashpipe connectors docs`"


@every_connector
def test_every_declared_operation_has_a_test(connector: Connector) -> None:
    if connector.key not in BUILTIN:
        pytest.skip("a plugin's tests live in its own package")
    files = sorted((ROOT / "tests" / "connectors").glob(f"test_{connector.key}*.py"))
    assert files, f"no tests/connectors/test_{connector.key}*.py"
    text = "\n".join(path.read_text(encoding="utf-8") for path in files)
    untested = [
        op.uses
        for op in connector.operations.values()
        if not op.builtin and not any(f"{q}{op.name}{q}" in text for q in "\"'") and op.uses not in text
    ]
    assert untested == [], f"operations never named in {[f.name for f in files]}"


def fake_credentials(connector: Connector) -> dict[str, Any] | None:
    """Credentials of the connector's first auth kind, with made-up values."""
    kind = connector.auth[0]
    if isinstance(kind, NoAuth):
        return None
    values: dict[str, Any] = {"kind": kind.kind}
    for field in kind.fields:
        if field.name != connector.base_url_field:  # the default base URL is used
            values[field.name] = f"test-{field.name}-value"
    if connector.base_url:
        for _, name, _, _ in string.Formatter().parse(connector.base_url):
            if name:
                values[name] = "tenant"
    return values


WITH_BASE_URL = [c for c in CONNECTORS if c.base_url and c.auth[0].verified_by_request]


@pytest.mark.parametrize("connector", WITH_BASE_URL, ids=by_key)
@respx.mock
async def test_builtin_request_operation(connector: Connector) -> None:
    credentials = fake_credentials(connector)
    base = connector.base_url_for(credentials)
    assert base is not None
    route = respx.route(url__startswith=base.rstrip("/") + "/").respond(json={"ok": True})
    out = await run_action(
        connector,
        "request",
        {"path": "mashpipe-check", "query": {"a": "1"}},
        credentials=credentials,
    )
    assert out["status"] == 200
    assert out["body"] == {"ok": True}
    sent = route.calls.last.request
    assert sent.url.host == httpx.URL(base).host
    assert sent.url.path.endswith("/mashpipe-check")  # under the base URL (after a path token, if any)
    assert sent.url.params["a"] == "1"
