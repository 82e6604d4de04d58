"""Masking: a canary secret echoed back by a real local upstream never shows in any API answer or log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from app.engine.types import StepError, StepResult, StepStatus
from app.runtime.masking import Masker, MaskingObserver, install_log_masking, masking_scope
from tests.api.helpers import save, wait_finished

CANARY = "canary-Zx81Qv7Lm2pW"

ECHO = """\
version: 1
name: echo
inputs:
  base: {type: string}
steps:
  - id: call
    uses: http.request
    with:
      method: POST
      url: "${{ inputs.base }}/echo?token=${{ secrets.CANARY }}"
      headers: {X-Token: "${{ secrets.CANARY }}"}
      json: {secret: "${{ secrets.CANARY }}", note: plain}
  - id: shout
    uses: core.template
    with: {text: "upstream said ${{ steps.call.output.body.header }}"}
  - id: items
    uses: core.map
    with:
      items: ${{ [steps.call.output.body] }}
      to: {seen: "${{ item.body.secret }}"}
outputs:
  echoed: ${{ steps.call.output }}
  shouted: ${{ steps.shout.output }}
  items: ${{ steps.items.output }}
"""

FAILS = """\
version: 1
name: fails
inputs:
  base: {type: string}
steps:
  - id: call
    uses: http.request
    with:
      url: "${{ inputs.base }}/fail"
      headers: {X-Token: "${{ secrets.CANARY }}"}
      raise_for_status: true
"""

BAD_EXPRESSION = """\
version: 1
name: bad-expression
steps:
  - id: parse
    uses: core.template
    with: {text: "${{ int(secrets.CANARY) }}"}
"""


@pytest.fixture
async def echo_server(local_server):
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Token", ""))
        return web.json_response(
            {
                "header": request.headers.get("X-Token"),
                "query": dict(request.query),
                "body": await request.json(),
                "url": str(request.url),
            },
            headers={"X-Echo": request.headers.get("X-Token", "")},
        )

    async def fail(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Token", ""))
        token = request.headers.get("X-Token")
        return web.json_response({"message": f"token {token} is not welcome here"}, status=400)

    base = await local_server({"POST /echo": echo, "GET /fail": fail})
    return base, seen


async def test_a_canary_secret_is_masked_in_every_answer_and_log_line(api, echo_server, caplog):
    base, seen = echo_server
    caplog.set_level(logging.DEBUG)
    assert (await api.put("/v1/secrets/CANARY", json={"value": CANARY})).status_code == 201
    for source in (ECHO, FAILS, BAD_EXPRESSION):
        await save(api, source)

    answers: list[str] = []
    run_ids = []
    for name, inputs in (("echo", {"base": base}), ("fails", {"base": base}), ("bad-expression", {})):
        started = await api.post(f"/v1/pipelines/{name}/runs", json={"inputs": inputs, "wait": True})
        answers.append(started.text)
        run_ids.append(started.json()["id"])
    finished = [await wait_finished(api, run_id) for run_id in run_ids]
    assert [run["status"] for run in finished] == ["succeeded", "failed", "failed"]
    assert seen == [CANARY, CANARY]  # the upstream really received the secret

    for run_id in run_ids:
        answers.append((await api.get(f"/v1/runs/{run_id}")).text)
    answers.append((await api.get("/v1/runs")).text)
    for name in ("echo", "fails", "bad-expression"):
        answers.append((await api.get("/v1/runs", params={"pipeline": name})).text)
        answers.append((await api.get(f"/v1/pipelines/{name}")).text)
        answers.append((await api.get(f"/v1/pipelines/{name}/revisions/1")).text)
    answers.append((await api.get("/v1/secrets")).text)
    await asyncio.sleep(0)  # let background writers log what they log

    for text in answers:
        assert CANARY not in text
    assert caplog.records, "the run logged nothing: the log check would prove nothing"
    log_text = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    assert CANARY not in log_text

    # where the canary came back, *** stands
    echo, failing, bad = finished
    assert echo["outputs"]["echoed"]["body"]["header"] == "***"
    assert echo["outputs"]["echoed"]["body"]["body"] == {"secret": "***", "note": "plain"}
    assert echo["outputs"]["echoed"]["body"]["query"] == {"token": "***"}
    assert echo["outputs"]["echoed"]["headers"]["x-echo"] == "***"
    assert echo["outputs"]["shouted"] == "upstream said ***"
    assert echo["outputs"]["items"] == [{"seen": "***"}]
    steps = {step["id"]: step for step in echo["steps"]}
    assert steps["call"]["output"]["body"]["header"] == "***"
    failed_step = failing["steps"][0]
    assert failed_step["status"] == "failed"
    assert "token *** is not welcome here" in failed_step["error"]["message"]
    assert "token *** is not welcome here" in failing["error"]["message"]
    assert bad["steps"][0]["error"]["code"] == "expression_error"
    assert any("token=***" in record.getMessage() for record in caplog.records)  # httpx's request line


async def test_a_run_without_secret_reads_no_secret(api, app_state, echo_server):
    _, state = app_state
    await api.put("/v1/secrets/CANARY", json={"value": CANARY})
    plain = """\
version: 1
name: plain
steps:
  - id: hello
    uses: core.template
    with: {text: "hello"}
outputs:
  said: ${{ steps.hello.output }}
"""
    await save(api, plain)
    calls = []
    original = state.secrets.resolve

    async def counting(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)

    state.secrets.resolve = counting
    run = (await api.post("/v1/pipelines/plain/runs", json={"wait": True})).json()
    assert (await wait_finished(api, run["id"]))["outputs"] == {"said": "hello"}
    assert calls == []


def test_the_masker_hides_values_keys_and_url_encoded_forms():
    masker = Masker(["p@ss w/rd+1", "abc", "sekrit-value"])
    assert masker.text("a p@ss w/rd+1 b") == "a *** b"
    assert masker.text("q=p%40ss%20w%2Frd%2B1") == "q=***"
    assert masker.text("q=p%40ss+w%2Frd%2B1") == "q=***"
    assert masker.text("abc is too short to mask") == "abc is too short to mask"
    value = {"sekrit-value": ["x sekrit-value y", 3, None, {"k": "sekrit-value"}], "n": 1.5}
    assert masker.value(value) == {"***": ["x *** y", 3, None, {"k": "***"}], "n": 1.5}
    assert not Masker([])
    assert Masker([]).value(value) is value


def test_the_longest_secret_wins_over_its_prefix():
    assert Masker(["secret", "secret-longer"]).text("secret-longer!") == "***!"


async def test_the_masking_observer_masks_what_it_hands_on():
    recorded: list[StepResult] = []

    class Inner:
        async def step_started(self, run_id, result):
            recorded.append(result)

        async def step_finished(self, run_id, result):
            recorded.append(result)

    masker = Masker(["hunter2-secret"])
    result = StepResult(
        step_id="s",
        status=StepStatus.FAILED,
        output={"echo": "hunter2-secret"},
        error=StepError(
            code="upstream_error", message="bad hunter2-secret", details={"body": "hunter2-secret"}
        ),
        logs=["INFO sent hunter2-secret"],
    )
    observer = MaskingObserver(Inner(), masker)
    await observer.step_started("r", result)
    await observer.step_finished("r", result)
    assert all(r.output == {"echo": "***"} for r in recorded)
    assert recorded[1].error == StepError(code="upstream_error", message="bad ***", details={"body": "***"})
    assert recorded[1].logs == ["INFO sent ***"]
    assert result.output == {"echo": "hunter2-secret"}  # the engine's own state keeps the value


def test_log_records_made_in_a_masking_scope_are_masked(caplog):
    install_log_masking()
    install_log_masking()  # idempotent
    logger = logging.getLogger("mashpipe.tests.masking")
    caplog.set_level(logging.INFO)
    with masking_scope(Masker(["hunter2-secret"])):
        logger.info("token is %s", "hunter2-secret")
        try:
            raise ValueError("failed with hunter2-secret")
        except ValueError:
            logger.exception("it broke")
        with masking_scope(Masker(["second-secret"])):
            logger.warning("hunter2-secret and second-secret")
    logger.info("outside: hunter2-secret")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "token is ***"
    assert messages[2] == "*** and ***"
    assert messages[3] == "outside: hunter2-secret"  # no scope, no masking
    assert "ValueError: failed with ***" in caplog.text
    assert caplog.text.count("hunter2-secret") == 1


def test_values_without_a_secret_are_returned_as_they_are_and_escaped_secrets_are_found():
    masker = Masker(['quo"te\\back', "ünïcode-secret", "tab\tsecret"])
    clean = {"items": [{"title": "nothing here", "n": 1}], 2: ["x"]}
    assert masker.value(clean) is clean  # the quick check over the whole value: no copy
    dirty = {'quo"te\\back': ['say quo"te\\back'], "u": "x ünïcode-secret", "t": ["tab\tsecret"]}
    assert masker.value(dirty) == {"***": ["say ***"], "u": "x ***", "t": ["***"]}
