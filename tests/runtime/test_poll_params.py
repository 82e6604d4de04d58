"""A poll's `with` may read `${{ secrets.NAME }}` and `${{ inputs.NAME }}` (the defaults): evaluated at
each poll, secrets masked in recorded failures; `run` and `steps` are refused when the pipeline is saved."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import pytest
import respx

from app.errors import StepError
from app.pipelines.validate import validate_source
from app.runtime.caller import ConnectorCaller
from app.runtime.poll_params import evaluate_poll_params
from app.runtime.poller import Poller

from .h2_support import poll_state, queued_runs, runs_of, save, settings, triggers_of
from .test_h2_poller import API, REGISTRY, clock, http, posts  # noqa: F401 (fixtures)

WATCH = """
version: 1
name: watch
triggers:
  - poll: {uses: feed.new_posts, with: {tag: "${{ secrets.FEED_TAG }}"}, every: 1m}
steps:
  - id: titles
    uses: core.map
    with: {items: "${{ trigger.items }}", to: "${{ item.title }}"}
outputs:
  titles: ${{ steps.titles.output }}
"""


class Secrets:
    """A secrets resolver over a dict, counting the names asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[set[str]] = []

    async def __call__(self, account_id: str, names: Collection[str]) -> dict[str, str]:
        self.asked.append(set(names))
        return {name: self.values[name] for name in names if name in self.values}


def poller_with(db, http, clock, secrets: Secrets) -> Poller:  # noqa: F811 (fixtures given by the test)
    config = settings(trigger_idle_seconds=86_400)
    return Poller(
        db,
        queued_runs(db, config),
        ConnectorCaller(REGISTRY, http, config),
        config,
        clock=clock,
        secrets=secrets,
    )


@respx.mock
async def test_the_with_of_a_poll_reads_the_accounts_secrets_at_each_poll(db, account_id, http, clock):  # noqa: F811
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    secrets = Secrets({"FEED_TAG": "rust"})
    poller = poller_with(db, http, clock, secrets)
    await poller.tick()  # the baseline
    assert route.calls[0].request.url.params["tag"] == "rust"
    secrets.values["FEED_TAG"] = "zig"  # a rotated secret is read at the next poll
    clock.advance(timedelta(minutes=1))
    route.respond(json=posts(2, 1))
    [outcome] = await poller.tick()
    assert route.calls[1].request.url.params["tag"] == "zig"
    assert [item["id"] for item in outcome.items] == [2]
    assert len(await runs_of(db, account_id, "watch")) == 1
    assert secrets.asked == [{"FEED_TAG"}, {"FEED_TAG"}]
    assert (await poll_state(db, trigger.id)).failures == 0


@respx.mock
async def test_a_missing_secret_fails_the_poll_and_calls_nothing(db, account_id, http, clock):  # noqa: F811
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    [outcome] = await poller_with(db, http, clock, Secrets({})).tick()
    assert outcome.error is not None
    state = await poll_state(db, trigger.id)
    assert state.last_error is not None
    assert state.last_error["code"] == "secret_not_found"
    assert "FEED_TAG" in state.last_error["message"]
    assert state.failures == 1
    assert route.call_count == 0


@respx.mock
async def test_a_failure_never_records_the_secret(db, account_id, http, clock):  # noqa: F811
    respx.get(f"{API}/posts").respond(status_code=500, text="tag s3cr3t-tag-value is unknown")
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    await poller_with(db, http, clock, Secrets({"FEED_TAG": "s3cr3t-tag-value"})).tick()
    state = await poll_state(db, trigger.id)
    assert state.last_error is not None
    assert "s3cr3t-tag-value" not in str(state.last_error)


async def test_literal_parameters_are_handed_over_as_they_are() -> None:
    async def never(account_id: str, names: Collection[str]) -> dict[str, str]:
        raise AssertionError("no secret to resolve")

    params = {"tag": "python", "limit": 5, "nested": {"a": [1, "b"]}}
    evaluated = await evaluate_poll_params(params, "acct", never)
    assert evaluated.values == params
    assert not evaluated.masker


async def test_expressions_see_secrets_and_the_trigger_kind() -> None:
    params = {"q": "${{ lower(secrets.TAG) }}-${{ trigger.kind }}", "n": "${{ 1 + 2 }}"}
    evaluated = await evaluate_poll_params(params, "acct", Secrets({"TAG": "RUST"}))
    assert evaluated.values == {"q": "rust-poll", "n": 3}
    assert evaluated.masker.text("the RUST tag") == "the *** tag"


async def test_a_missing_secret_is_a_step_error() -> None:
    with pytest.raises(StepError) as caught:
        await evaluate_poll_params({"q": "${{ secrets.NOPE }}"}, "acct", Secrets({}))
    assert caught.value.code == "secret_not_found"
    assert caught.value.details == {"missing": ["NOPE"]}


@pytest.mark.parametrize("root", ["run.id", "steps.titles.output"])
def test_the_validator_refuses_other_roots_in_a_polls_with(root: str) -> None:
    declared = "version: 1\ninputs: {tag: {type: string, default: x}}"
    source = WATCH.replace("secrets.FEED_TAG", root).replace("version: 1", declared)
    problems = validate_source(source, REGISTRY).problems
    refused = [p for p in problems if p.code == "invalid_reference"]
    assert refused, problems
    assert str(refused[0].path).startswith("triggers[0].poll.with")
    assert refused[0].line == 6
    assert validate_source(WATCH, REGISTRY).problems == []


@respx.mock
async def test_inputs_are_the_pipelines_defaults(db, account_id, http, clock):  # noqa: F811
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    source = WATCH.replace("secrets.FEED_TAG", "inputs.tag").replace(
        "version: 1", "version: 1\ninputs: {tag: {type: string, default: haskell}}"
    )
    assert validate_source(source, REGISTRY).problems == []
    await save(db, account_id, source, clock.now(), REGISTRY)
    await poller_with(db, http, clock, Secrets({})).tick()
    assert route.calls[0].request.url.params["tag"] == "haskell"
