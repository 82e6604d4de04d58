"""The ``openai`` connector against respx mocks of the OpenAI API (and of a compatible local server)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.errors import EgressDenied, StepError
from app.sdk import AuthFailed, InvalidResponse, RateLimited, UpstreamError
from app.sdk.testing import check_connector, run_action, settings_for_tests
from connectors.openai import connector as openai
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://api.openai.com/v1"
KEY = {"kind": "bearer", "token": "sk-test-0123456789"}

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1_741_569_952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21},
    "system_fingerprint": "fp_1",
}


def embedding_body(vectors: list[list[float]], *, reverse: bool = False) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return {
        "object": "list",
        "data": list(reversed(data)) if reverse else data,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }


def test_standard_checks() -> None:
    assert check_connector(openai) == []
    assert openai.base_url == API
    assert openai.auth_kinds() == ["bearer"]
    assert openai.test_request == ("GET", "/models")
    fields = openai.describe()["auth"][0]["fields"]
    assert fields[1] == {"name": "base_url", "label": fields[1]["label"], "secret": False, "required": False}
    assert [op.name for op in openai.actions()] == ["chat", "embeddings", "list_models", "request"]


async def test_chat_from_prompt_sends_the_documented_request() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/chat/completions").respond(json=COMPLETION)
        out = await run_action(
            openai,
            "chat",
            {
                "model": "gpt-4o-mini",
                "prompt": "Capital of France?",
                "system": "Answer in one word.",
                "temperature": 0,
                "max_completion_tokens": 5,
                "stop": ["\n"],
            },
            credentials=KEY,
        )
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer sk-test-0123456789"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "temperature": 0,
        "max_completion_tokens": 5,
        "stop": ["\n"],
    }
    assert out["content"] == "Paris."
    assert out["finish_reason"] == "stop"
    assert out["model"] == "gpt-4o-mini-2024-07-18"
    assert out["created"] == "2025-03-10T01:25:52Z"
    assert out["usage"] == {"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21}
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "finish_reason": "stop",
        }
    ]
    assert out["data"] is None


async def test_chat_with_messages_and_json_reply() -> None:
    message = {"role": "assistant", "content": '{"city": "Paris", "ok": true}'}
    reply = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "message": message}]}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/chat/completions").respond(json=reply)
        out = await run_action(
            openai,
            "chat",
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "developer", "content": "Reply in JSON."},
                    {"role": "user", "content": "Capital of France?", "name": "ada"},
                ],
                "response_format": "json_object",
                "seed": 7,
            },
            credentials=KEY,
        )
    body = json.loads(route.calls.last.request.content)
    assert body["messages"][1] == {"role": "user", "content": "Capital of France?", "name": "ada"}
    assert body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 7
    assert out["data"] == {"city": "Paris", "ok": True}


async def test_chat_json_reply_that_is_not_json_is_a_clear_error() -> None:
    choice = {"index": 0, "message": {"content": "Paris"}, "finish_reason": "stop"}
    reply = {**COMPLETION, "choices": [choice]}
    with respx.mock() as mock:
        mock.post(f"{API}/chat/completions").respond(json=reply)
        with pytest.raises(InvalidResponse, match="not the JSON asked for"):
            await run_action(
                openai,
                "chat",
                {"model": "m", "prompt": "x", "response_format": "json_object"},
                credentials=KEY,
            )


async def test_chat_without_choices_is_invalid() -> None:
    with respx.mock() as mock:
        mock.post(f"{API}/chat/completions").respond(json={**COMPLETION, "choices": []})
        with pytest.raises(InvalidResponse, match="no choices"):
            await run_action(openai, "chat", {"model": "m", "prompt": "x"}, credentials=KEY)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "m"}, "either messages or prompt"),
        ({"model": "m", "prompt": "x", "messages": [{"role": "user", "content": "y"}]}, "either messages"),
        ({"model": "m", "prompt": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "messages": [{"role": "robot", "content": "y"}]}, "role"),
        ({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
async def test_chat_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError, match=message) as raised:
        await run_action(openai, "chat", params, credentials=KEY)
    assert raised.value.code == "invalid_params"


async def test_api_error_body_is_in_the_step_error() -> None:
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    with respx.mock() as mock:
        mock.post(f"{API}/chat/completions").respond(429, json=body, headers={"Retry-After": "20"})
        with pytest.raises(RateLimited) as raised:
            await run_action(openai, "chat", {"model": "m", "prompt": "x"}, credentials=KEY)
    assert raised.value.retry_after == 20.0
    assert raised.value.message == (
        "POST https://api.openai.com/v1/chat/completions answered 429 Too Many Requests: Rate limit "
        "reached for gpt-4o-mini on requests per min (RPM): Limit 3. "
        "(type: requests, code: rate_limit_exceeded)"
    )


async def test_bad_key_names_the_error_code_and_masks_the_key() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-test-0123456789.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    with respx.mock() as mock:
        mock.get(f"{API}/models").respond(401, json=body)
        with pytest.raises(AuthFailed) as raised:
            await run_action(openai, "list_models", {}, credentials=KEY)
    assert "Incorrect API key provided: ***." in raised.value.message
    assert "code: invalid_api_key" in raised.value.message
    assert "sk-test-0123456789" not in json.dumps(raised.value.details)


async def test_embeddings_in_input_order() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/embeddings").respond(
            json=embedding_body([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], reverse=True)
        )
        out = await run_action(
            openai,
            "embeddings",
            {"input": ["first", "second"], "dimensions": 3},
            credentials=KEY,
        )
    assert json.loads(route.calls.last.request.content) == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert out == {
        "model": "text-embedding-3-small",
        "embeddings": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        "dimensions": 3,
        "usage": {"prompt_tokens": 8, "completion_tokens": 0, "total_tokens": 8},
    }


async def test_embeddings_of_one_text_and_a_short_answer() -> None:
    with respx.mock() as mock:
        mock.post(f"{API}/embeddings").respond(json=embedding_body([[1.0, 0.0]]))
        out = await run_action(openai, "embeddings", {"input": "hello"}, credentials=KEY)
        assert out["embeddings"] == [[1.0, 0.0]]
        mock.post(f"{API}/embeddings").respond(json=embedding_body([[1.0]]))
        with pytest.raises(InvalidResponse, match="expected 2 embeddings"):
            await run_action(openai, "embeddings", {"input": ["a", "b"]}, credentials=KEY)
    with pytest.raises(StepError, match="1 to 2048 texts"):
        await run_action(openai, "embeddings", {"input": []}, credentials=KEY)


async def test_list_models_sorted() -> None:
    body = {
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
            {"id": "dall-e-3", "object": "model", "created": 1_698_785_189, "owned_by": "system"},
        ],
    }
    with respx.mock() as mock:
        mock.get(f"{API}/models").respond(json=body)
        out = await run_action(openai, "list_models", {}, credentials=KEY)
    assert [m["id"] for m in out] == ["dall-e-3", "gpt-4o-mini"]
    assert out[1] == {"id": "gpt-4o-mini", "owned_by": "system", "created": "2024-07-16T23:32:21Z"}


async def test_compatible_server_base_url_gets_the_key_and_the_egress_guard() -> None:
    local = {**KEY, "base_url": "http://127.0.0.1:8080/v1/"}
    allowed = settings_for_tests(egress_allow="127.0.0.1")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("http://127.0.0.1:8080/v1/chat/completions").respond(json=COMPLETION)
        out = await run_action(
            openai, "chat", {"model": "llama3", "prompt": "hi"}, credentials=local, settings=allowed
        )
        raw = mock.get("http://127.0.0.1:8080/v1/models").respond(json={"data": []})
        listed = await run_action(openai, "request", {"path": "/models"}, credentials=local, settings=allowed)
    assert out["content"] == "Paris."
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test-0123456789"
    assert raw.call_count == 1
    assert listed["status"] == 200
    with respx.mock(assert_all_called=False) as mock:
        refused = mock.post("http://127.0.0.1:8080/v1/chat/completions").respond(json=COMPLETION)
        with pytest.raises(EgressDenied, match="loopback"):
            await run_action(openai, "chat", {"model": "llama3", "prompt": "hi"}, credentials=local)
    assert refused.call_count == 0


async def test_compatible_server_error_strings_are_shown() -> None:
    local = {**KEY, "base_url": "https://llm.example.com/openai/v1"}
    with respx.mock() as mock:
        mock.post("https://llm.example.com/openai/v1/chat/completions").respond(
            400, json={"error": "model 'llama9' not found"}
        )
        with pytest.raises(UpstreamError, match="model 'llama9' not found"):
            await run_action(openai, "chat", {"model": "llama9", "prompt": "hi"}, credentials=local)


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://llm.example.com/v1",
        "https://user:pw@llm.example.com/v1",
        "https://llm.example.com/v1?x=1",
        "/v1",
    ],
)
async def test_bad_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(StepError, match="must be an absolute http") as raised:
        await run_action(
            openai, "chat", {"model": "m", "prompt": "x"}, credentials={**KEY, "base_url": base_url}
        )
    assert raised.value.code == "connection_invalid"


async def test_a_connection_is_required() -> None:
    with pytest.raises(StepError) as raised:
        await run_action(openai, "chat", {"model": "m", "prompt": "x"})
    assert raised.value.code == "connection_required"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_chat_errors(case: Any) -> None:
    params = {"model": "m", "prompt": "x"}
    await check_error_case(case, openai, "chat", params, "POST", f"{API}/chat/completions", credentials=KEY)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_list_models_errors(case: Any) -> None:
    await check_error_case(case, openai, "list_models", {}, "GET", f"{API}/models", credentials=KEY)


async def test_timeout_is_passed_to_the_request() -> None:
    seen: dict[str, Any] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.update(request.extensions["timeout"])
        return httpx.Response(200, json=COMPLETION)

    with respx.mock() as mock:
        mock.post(f"{API}/chat/completions").mock(side_effect=answer)
        await run_action(openai, "chat", {"model": "m", "prompt": "x", "timeout": 300}, credentials=KEY)
    assert seen["read"] == 300.0
    assert seen["connect"] == 10.0
