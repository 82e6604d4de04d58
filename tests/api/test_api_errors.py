"""One error shape for every failure: routing, validation, body limits, media types, crashes."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from .helpers import HELLO, client_for, error_of


async def test_unknown_route_is_404_in_the_error_shape(api):
    response = await api.get("/v1/nope")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    assert "/v1/nope" in error["message"]


async def test_wrong_method_is_405(api):
    response = await api.patch("/v1/pipelines")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "allow" in response.headers


async def test_malformed_json_is_400_never_500(api):
    for path in ("/v1/pipelines/hello/runs", "/v1/pipelines", "/v1/validate"):
        response = await api.post(path, content=b'{"inputs": ', headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        assert error_of(response)["code"] == "bad_request"


async def test_unknown_fields_are_422_with_details(api):
    await api.post("/v1/pipelines", content=HELLO, headers={"Content-Type": "application/yaml"})
    response = await api.post("/v1/pipelines/hello/runs", json={"inputs": {}, "wiat": True})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert any(detail["loc"][-1] == "wiat" for detail in error["details"])

    response = await api.post("/v1/pipelines", json={"source": HELLO, "extra": 1})
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"


async def test_wrong_types_in_query_and_body_are_422(api):
    response = await api.get("/v1/runs", params={"limit": "many"})
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", "limit"]
    response = await api.get("/v1/runs", params={"status": "sleeping"})
    assert response.status_code == 422
    response = await api.post("/v1/pipelines/hello/runs", json={"inputs": [1, 2]})
    assert response.status_code == 422
    response = await api.post("/v1/pipelines/hello/runs", json=[1])
    assert response.status_code == 422


async def test_unsupported_media_type_is_415(api):
    response = await api.post("/v1/pipelines", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    response = await api.post("/v1/validate", content=b"version: 1")
    assert response.status_code == 415


async def test_non_utf8_yaml_is_400(api):
    response = await api.post(
        "/v1/pipelines", content=b"name: \xff\xfe", headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 400
    assert "UTF-8" in error_of(response)["message"]


async def test_oversized_body_by_content_length_is_413(make_settings, app_runner, api_key):
    async with app_runner(make_settings(max_body_bytes=1000)) as (app, _):
        async with client_for(app, api_key) as client:
            response = await client.post(
                "/v1/pipelines", content=b"x" * 5000, headers={"Content-Type": "application/yaml"}
            )
            assert response.status_code == 413
            error = error_of(response)
            assert error["code"] == "payload_too_large"
            assert "1000" in error["message"]


async def test_oversized_streamed_body_is_413(make_settings, app_runner, api_key):
    async def chunks():
        for _ in range(10):
            yield b"y" * 400

    async with app_runner(make_settings(max_body_bytes=1000)) as (app, _):
        async with client_for(app, api_key) as client:
            # a generator body is sent chunked, without Content-Length
            for path, content_type in (
                ("/v1/pipelines", "application/yaml"),
                ("/v1/pipelines/hello/runs", "application/json"),
            ):
                response = await client.post(path, content=chunks(), headers={"Content-Type": content_type})
                assert response.status_code == 413, (path, response.text)
                assert error_of(response)["code"] == "payload_too_large"


async def test_unexpected_exceptions_are_500_without_traceback(app_state, api_key, caplog):
    app: FastAPI = app_state[0]

    @app.get("/v1/boom-for-test")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with client_for(app, api_key, raise_app_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="mashpipe.api"):
            response = await client.get("/v1/boom-for-test")
    assert response.status_code == 500
    error = error_of(response)
    assert error == {"code": "internal_error", "message": "internal server error", "details": None}
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert any("boom-for-test" in record.getMessage() for record in caplog.records)


async def test_access_log_never_contains_the_authorization_header(api, api_key, caplog):
    with caplog.at_level(logging.DEBUG):
        await api.get("/v1/pipelines", params={"limit": 5})
        await api.get("/v1/nope")
    access = [r for r in caplog.records if r.name == "mashpipe.access"]
    assert len(access) == 2
    assert "GET /v1/pipelines" in access[0].getMessage()
    assert " 200 " in access[0].getMessage()
    for record in caplog.records:
        text = record.getMessage() + str(record.args)
        assert api_key not in text
        assert "Bearer" not in text
