"""The committed OpenAPI document is the generated one (run `mashpipe openapi` after API changes)."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app(make_settings):
    generated = create_app(make_settings()).openapi()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == generated, "openapi/openapi.json is out of date: run `mashpipe openapi`"


def test_every_operation_has_a_stable_id_tags_and_documented_errors(make_settings):
    document = create_app(make_settings()).openapi()
    ids = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            ids.append(operation["operationId"])
            assert operation.get("tags"), (method, path)
            assert "_" not in operation["operationId"], operation["operationId"]
            public = path in (
                "/v1/health",
                "/v1/schemas/pipeline.json",
                "/v1/hooks/{hook_id}",
                "/v1/oauth/callback",
            )
            if not public:
                assert "401" in operation["responses"], (method, path)
                assert operation.get("security") == [{"ApiKey": []}], (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    assert len(ids) == len(set(ids))
    assert "HTTPValidationError" not in document["components"]["schemas"]
