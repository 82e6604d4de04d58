"""The executor: DAG order, concurrency, scope, if, outputs, prior reuse, errors, observer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pydantic import BaseModel

from app.engine.types import RunStatus, StepResult, StepStatus
from app.errors import NotFound, UpstreamError
from tests.engine.fakes import FakeCaller, RecordingObserver, load, pipeline, run

GUARD = 5  # seconds: a deadlock guard only, never a timing assertion


async def test_independent_steps_overlap():
    a_started, b_started = asyncio.Event(), asyncio.Event()

    async def a(call):
        a_started.set()
        await b_started.wait()  # only returns if b runs at the same time
        return "a"

    async def b(call):
        b_started.set()
        await a_started.wait()
        return "b"

    caller = FakeCaller({"demo.a": a, "demo.b": b})
    spec = pipeline([{"id": "a", "uses": "demo.a"}, {"id": "b", "uses": "demo.b"}])
    result = await asyncio.wait_for(run(spec, caller=caller), GUARD)
    assert result.status == RunStatus.SUCCEEDED
    assert {sid: s.output for sid, s in result.steps.items()} == {"a": "a", "b": "b"}


async def test_a_step_starts_as_soon_as_its_dependencies_finish():
    downstream_ran = asyncio.Event()

    async def slow(call):
        await downstream_ran.wait()  # finishes only after `after_fast` ran
        return "slow"

    async def after_fast(call):
        downstream_ran.set()
        return call.params["x"] + 1

    caller = FakeCaller({"demo.slow": slow, "demo.fast": 1, "demo.after": after_fast})
    spec = pipeline(
        [
            {"id": "slow", "uses": "demo.slow"},
            {"id": "fast", "uses": "demo.fast"},
            {"id": "after_fast", "uses": "demo.after", "with": {"x": "${{ steps.fast.output }}"}},
        ]
    )
    result = await asyncio.wait_for(run(spec, caller=caller), GUARD)
    assert result.steps["after_fast"].output == 2
    assert result.steps["slow"].output == "slow"


async def test_references_and_needs_order_steps():
    order: list[str] = []

    def record(call):
        order.append(call.step_id)
        return call.step_id

    caller = FakeCaller({"demo.rec": record})
    spec = pipeline(
        [
            {"id": "last", "uses": "demo.rec", "needs": ["middle"]},
            {"id": "middle", "uses": "demo.rec", "with": {"x": "${{ steps.first.output }}"}},
            {"id": "first", "uses": "demo.rec"},
        ]
    )
    result = await run(spec, caller=caller)
    assert order == ["first", "middle", "last"]
    assert list(result.steps) == ["first", "middle", "last"]
    assert caller.calls_to("demo.rec")[1].params == {"x": "first"}


async def test_if_false_skips_and_references_give_null():
    spec = load(
        """
        version: 1
        name: t
        steps:
          - id: off
            uses: demo.never
            if: inputs.on
          - id: use
            uses: core.set
            with:
              value:
                out: ${{ steps.off.output }}
                deep: ${{ steps.off.output.a.b }}
                status: ${{ steps.off.status }}
        """
    )
    caller = FakeCaller()
    observer = RecordingObserver()
    result = await run(spec, {"on": False}, caller=caller, observer=observer)
    assert caller.calls == []
    assert result.steps["off"].status == StepStatus.SKIPPED
    assert result.steps["off"].output is None
    assert result.steps["use"].output == {"out": None, "deep": None, "status": "skipped"}
    assert ("started", "off", StepStatus.RUNNING) in observer.events
    assert ("finished", "off", StepStatus.SKIPPED) in observer.events


async def test_if_must_be_boolean():
    spec = pipeline([{"id": "s", "uses": "core.set", "if": "inputs.flag", "with": {"value": 1}}])
    result = await run(spec, {"flag": "yes"})
    assert result.status == RunStatus.FAILED
    step = result.steps["s"]
    assert step.error is not None
    assert step.error.code == "expression_error"
    assert step.error.message == "`if` must yield a boolean, got string"


async def test_scope_variables():
    started = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    spec = pipeline(
        [
            {
                "id": "s",
                "uses": "core.set",
                "with": {
                    "value": {
                        "kind": "${{ trigger.kind }}",
                        "body": "${{ trigger.body.x }}",
                        "fired": "${{ trigger.fired_at }}",
                        "secret": "${{ secrets.TOKEN }}",
                        "run": "${{ run.id }}",
                        "started": "${{ run.started_at }}",
                        "year": "${{ timestamp(run.started_at).getFullYear() }}",
                        "input": "${{ inputs.q }}",
                    }
                },
            }
        ]
    )
    from app.engine.executor import compile_plan, execute
    from app.engine.types import RunRequest

    request = RunRequest(
        run_id="r-9",
        inputs={"q": "rust"},
        trigger={"kind": "webhook", "body": {"x": [1]}, "fired_at": started},
        secrets={"TOKEN": "s3cret"},
        started_at=started,
    )
    result = await execute(compile_plan(spec), request, caller=FakeCaller(), observer=RecordingObserver())
    assert result.steps["s"].output == {
        "kind": "webhook",
        "body": [1],
        "fired": "2024-05-06T07:08:09Z",
        "secret": "s3cret",
        "run": "r-9",
        "started": "2024-05-06T07:08:09Z",
        "year": 2024,
        "input": "rust",
    }
    assert result.started_at == started


async def test_outputs_are_evaluated_at_the_end():
    spec = pipeline(
        [{"id": "a", "uses": "demo.a"}],
        outputs={"n": "${{ size(steps.a.output) }}", "first": "${{ steps.a.output[0] }}", "lit": [1, "x"]},
    )
    result = await run(spec, caller=FakeCaller({"demo.a": ["x", "y"]}))
    assert result.status == RunStatus.SUCCEEDED
    assert result.outputs == {"n": 2, "first": "x", "lit": [1, "x"]}
    assert result.error is None
    assert result.finished_at is not None


async def test_an_output_error_fails_the_run():
    spec = pipeline([{"id": "a", "uses": "demo.a"}], outputs={"bad": "${{ steps.a.output.nope }}"})
    result = await run(spec, caller=FakeCaller({"demo.a": {"x": 1}}))
    assert result.status == RunStatus.FAILED
    assert result.outputs is None
    assert result.error is not None
    assert result.error.code == "expression_error"
    assert result.error.message.startswith("outputs.bad: ")
    assert "no such key 'nope'" in result.error.message
    assert result.steps["a"].status == StepStatus.SUCCEEDED


async def test_on_error_continue_keeps_the_run_going():
    spec = pipeline(
        [
            {"id": "dead", "uses": "demo.dead", "on_error": "continue", "on_error_output": {"entries": []}},
            {"id": "quiet", "uses": "demo.dead", "on_error": "continue"},
            {
                "id": "next",
                "uses": "core.set",
                "with": {
                    "value": [
                        "${{ steps.dead.output }}",
                        "${{ steps.quiet.output }}",
                        "${{ steps.dead.status }}",
                    ]
                },
            },
        ]
    )
    caller = FakeCaller({"demo.dead": lambda call: (_ for _ in ()).throw(NotFound("gone"))})
    result = await run(spec, caller=caller)
    assert result.status == RunStatus.SUCCEEDED
    dead = result.steps["dead"]
    assert dead.status == StepStatus.FAILED
    assert dead.error is not None
    assert (dead.error.code, dead.error.message) == ("not_found", "gone")
    assert dead.output == {"entries": []}
    assert result.steps["quiet"].output is None
    assert result.steps["next"].output == [{"entries": []}, None, "failed"]


async def test_on_error_fail_cancels_running_and_pending_steps():
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(call):
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def boom(call):
        await running.wait()
        raise UpstreamError("400 bad request")

    observer = RecordingObserver()
    caller = FakeCaller({"demo.slow": slow, "demo.boom": boom})
    spec = pipeline(
        [
            {"id": "slow", "uses": "demo.slow"},
            {"id": "boom", "uses": "demo.boom"},
            {"id": "later", "uses": "demo.slow", "needs": ["boom"]},
        ]
    )
    result = await asyncio.wait_for(run(spec, caller=caller, observer=observer), GUARD)
    assert cancelled.is_set()
    assert result.status == RunStatus.FAILED
    assert result.error is not None
    assert result.error.code == "upstream_error"
    assert result.error.message == "step `boom` failed: 400 bad request"
    assert result.error.details == {"step_id": "boom", "details": None}
    slow_result, later = result.steps["slow"], result.steps["later"]
    assert slow_result.status == StepStatus.CANCELLED
    assert slow_result.error is not None
    assert slow_result.error.message == "cancelled: step `boom` failed"
    assert slow_result.started_at is not None
    assert later.status == StepStatus.CANCELLED
    assert later.error is not None
    assert later.error.message == "not started: step `boom` failed"
    assert later.started_at is None
    assert [e for e in observer.events if e[1] == "later"] == [("finished", "later", StepStatus.CANCELLED)]
    assert len(caller.calls_to("demo.slow")) == 1


async def test_unexpected_exceptions_become_internal_errors():
    def broken(call):
        raise ValueError("boom")

    result = await run(
        pipeline([{"id": "s", "uses": "demo.broken"}]), caller=FakeCaller({"demo.broken": broken})
    )
    assert result.status == RunStatus.FAILED
    step = result.steps["s"]
    assert step.error is not None
    assert step.error.code == "internal_error"
    assert step.error.message == "demo.broken raised ValueError: boom"


async def test_outputs_of_callers_become_json():
    class Issue(BaseModel):
        title: str
        at: datetime

    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    caller = FakeCaller(
        {
            "demo.model": Issue(title="x", at=when),
            "demo.models": [Issue(title="y", at=when)],
            "demo.raw": {"at": when, "pair": (1, 2), 3: "three"},
        }
    )
    spec = pipeline(
        [
            {"id": "model", "uses": "demo.model"},
            {"id": "models", "uses": "demo.models"},
            {"id": "raw", "uses": "demo.raw"},
        ]
    )
    result = await run(spec, caller=caller)
    assert result.steps["model"].output == {"title": "x", "at": "2024-01-02T03:04:05Z"}
    assert result.steps["models"].output == [{"title": "y", "at": "2024-01-02T03:04:05Z"}]
    assert result.steps["raw"].output == {"at": "2024-01-02T03:04:05Z", "pair": [1, 2], "3": "three"}


async def test_operation_call_carries_the_step_context():
    spec = pipeline(
        [
            {
                "id": "post",
                "uses": "slack.post",
                "connection": "team-slack",
                "timeout": "7s",
                "with": {"text": "Hi ${{ inputs.who }}", "n": 3},
            }
        ]
    )
    caller = FakeCaller({"slack.post": {"ok": True}})
    await run(spec, {"who": "Ann"}, caller=caller, run_id="r-42")
    (call,) = caller.calls
    assert call.uses == "slack.post"
    assert call.params == {"text": "Hi Ann", "n": 3}
    assert call.connection == "team-slack"
    assert (call.run_id, call.step_id, call.attempt, call.index, call.timeout) == (
        "r-42",
        "post",
        1,
        None,
        7.0,
    )
    assert call.log is not None


async def test_operation_logs_land_in_the_step():
    def chatty(call):
        call.log.append("fetched 3 pages")
        return 1

    result = await run(
        pipeline([{"id": "s", "uses": "demo.chatty"}]), caller=FakeCaller({"demo.chatty": chatty})
    )
    assert result.steps["s"].logs == ["fetched 3 pages"]


async def test_observer_sees_every_step_once_in_order():
    observer = RecordingObserver()
    spec = pipeline(
        [
            {"id": "a", "uses": "core.set", "with": {"value": 1}},
            {"id": "b", "uses": "core.set", "with": {"value": "${{ steps.a.output }}"}},
            {"id": "c", "uses": "core.set", "if": "false", "with": {"value": 1}},
        ]
    )
    await run(spec, observer=observer)
    for sid in ("a", "b", "c"):
        events = [e[0] for e in observer.events if e[1] == sid]
        assert events == ["started", "finished"], sid
    assert observer.events.index(("finished", "a", StepStatus.SUCCEEDED)) < observer.events.index(
        ("started", "b", StepStatus.RUNNING)
    )
    (b_finished,) = observer.finished("b")
    assert b_finished.output == 1
    assert b_finished.started_at is not None
    assert b_finished.finished_at is not None
    assert b_finished.duration_ms is not None


async def test_a_failing_observer_does_not_break_the_run():
    class Broken(RecordingObserver):
        async def step_finished(self, run_id, result):
            raise RuntimeError("database is down")

    result = await run(pipeline([{"id": "a", "uses": "core.set", "with": {"value": 1}}]), observer=Broken())
    assert result.status == RunStatus.SUCCEEDED


async def test_prior_results_are_reused():
    spec = pipeline(
        [
            {"id": "fetch", "uses": "demo.fetch"},
            {"id": "post", "uses": "demo.post", "with": {"n": "${{ size(steps.fetch.output) }}"}},
        ]
    )
    prior = {
        "fetch": StepResult("fetch", status=StepStatus.SUCCEEDED, attempts=1, output=[1, 2, 3]),
        "post": StepResult("post", status=StepStatus.FAILED, attempts=3),
    }
    caller = FakeCaller({"demo.post": lambda call: call.params["n"]})
    observer = RecordingObserver()
    result = await run(spec, caller=caller, observer=observer, prior=prior)
    assert result.status == RunStatus.SUCCEEDED
    assert [c.uses for c in caller.calls] == ["demo.post"]
    assert result.steps["post"].output == 3
    assert result.steps["fetch"].output == [1, 2, 3]
    assert result.steps["fetch"].logs[-1] == "reused from an earlier attempt"
    assert [e for e in observer.events if e[1] == "fetch"] == [("finished", "fetch", StepStatus.SUCCEEDED)]
    assert prior["fetch"].logs == []


async def test_prior_results_downstream_of_a_rerun_step_run_again():
    spec = pipeline(
        [
            {"id": "a", "uses": "demo.a"},
            {"id": "b", "uses": "demo.b", "with": {"x": "${{ steps.a.output }}"}},
        ]
    )
    prior = {
        "a": StepResult("a", status=StepStatus.FAILED),
        "b": StepResult("b", status=StepStatus.SUCCEEDED, output="stale"),
    }
    caller = FakeCaller({"demo.a": "fresh", "demo.b": lambda call: call.params["x"]})
    result = await run(spec, caller=caller, prior=prior)
    assert result.steps["b"].output == "fresh"
    assert len(caller.calls) == 2


async def test_the_same_plan_runs_concurrently():
    from app.engine.executor import compile_plan, execute
    from app.engine.types import RunRequest

    spec = pipeline(
        [
            {"id": "src", "uses": "demo.src"},
            {
                "id": "f",
                "uses": "core.filter",
                "with": {"items": "${{ steps.src.output }}", "where": "item > inputs.min"},
            },
        ],
        outputs={"kept": "${{ steps.f.output }}"},
    )
    plan = compile_plan(spec)
    caller = FakeCaller({"demo.src": list(range(10))})
    results = await asyncio.gather(
        *(
            execute(plan, RunRequest(f"r{i}", {"min": i}), caller=caller, observer=RecordingObserver())
            for i in range(5)
        )
    )
    assert [r.outputs for r in results] == [{"kept": list(range(i + 1, 10))} for i in range(5)]


async def test_tuples_from_a_caller_work_as_lists():
    caller = FakeCaller({"demo.pairs": ((1, 2), (3,)), "demo.one": lambda call: call.params["x"]})
    spec = pipeline(
        [
            {"id": "pairs", "uses": "demo.pairs"},
            {"id": "flat", "uses": "core.flatten", "with": {"items": "${{ steps.pairs.output }}"}},
            {
                "id": "each",
                "uses": "demo.one",
                "for_each": "${{ steps.pairs.output }}",
                "with": {"x": "${{ item }}"},
            },
            {"id": "all", "uses": "core.merge", "with": {"sources": "${{ steps.pairs.output }}"}},
        ]
    )
    result = await run(spec, caller=caller)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.steps["flat"].output == [1, 2, 3]
    assert result.steps["all"].output == [1, 2, 3]
    assert len(result.steps["each"].output) == 2
