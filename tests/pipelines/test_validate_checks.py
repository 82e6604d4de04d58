"""validate_source: checks not covered by the golden files, options, and robustness."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from app.engine.steps.base import CoreStep
from app.errors import PipelineInvalid
from app.pipelines.validate import ValidationResult, validate_source

from .fakes import FakeCatalog

GOLDEN = sorted((Path(__file__).resolve().parent.parent / "golden").glob("*/*.yaml"))


class PickOn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    left: str
    right: str


class PickParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] | str
    where: str
    on: PickOn | None = None
    to: Any = None


FAKE_CORE = {
    "pick": CoreStep(
        name="pick", Params=PickParams, bare_fields=("where", "on.left"), per_item_fields=("to",)
    )
}


def problems(source: str, **kwargs: Any) -> list[tuple[int, int, str]]:
    kwargs.setdefault("catalog", FakeCatalog())
    return [(p.line, p.column, p.code) for p in validate_source(source, **kwargs).problems]


def text_at(source: str, line: int, column: int) -> str:
    """The source text from a problem's position to the end of its line."""
    return source.splitlines()[line - 1][column - 1 :]


def pipeline(steps: str, extra: str = "") -> str:
    return f"version: 1\nname: t\n{extra}steps:\n{steps}"


def test_bare_and_per_item_fields_come_from_the_core_step() -> None:
    source = pipeline(
        "  - id: a\n"
        "    uses: core.pick\n"
        "    with:\n"
        "      items: [1, 2]\n"
        "      where: item > index\n"
        "      on: {left: item.k, right: '${{ item }}'}\n"
        "      to: {v: '${{ item }}', i: '${{ index }}'}\n"
    )
    # `where` and `on.left` are bare and per item, `to` is per item; `on.right` is neither
    assert problems(source, core_steps=FAKE_CORE) == [(9, 38, "item_out_of_scope")]
    assert text_at(source, 9, 38).startswith("item }}")


def test_template_in_a_bare_core_field_is_an_error() -> None:
    source = pipeline("  - id: a\n    uses: core.pick\n    with: {items: [], where: '${{ true }}'}\n")
    assert problems(source, core_steps=FAKE_CORE) == [(6, 31, "template_in_bare")]
    assert text_at(source, 6, 31).startswith("${{ true }}")


def test_without_core_steps_core_uses_are_not_checked() -> None:
    source = pipeline("  - id: a\n    uses: core.whatever\n    with: {anything: 1}\n")
    assert problems(source, core_steps={}) == []
    assert problems(source, core_steps=FAKE_CORE) == [(5, 11, "unknown_operation")]


def test_without_a_catalog_connectors_are_not_checked() -> None:
    source = pipeline("  - id: a\n    uses: nothing.like_this\n    with: {x: 1}\n")
    assert problems(source, catalog=None) == []
    assert problems(source) == [(5, 11, "unknown_connector")]


def test_secrets_are_checked_only_against_known_names() -> None:
    source = pipeline("  - id: a\n    uses: http.request\n    with: {url: 'https://x/${{ secrets.KEY }}'}\n")
    assert problems(source) == []
    assert problems(source, secret_names={"KEY"}) == []
    assert problems(source, secret_names=set()) == [(6, 40, "unknown_secret")]
    assert text_at(source, 6, 40).startswith("KEY }}")


def test_expression_column_inside_a_block_scalar() -> None:
    source = pipeline(
        "  - id: a\n    uses: core.template\n    with:\n"
        "      text: |\n        Hello\n        ${{ inputs.who +}}\n"
    )
    assert problems(source) == [(9, 25, "expression_syntax")]
    assert text_at(source, 9, 24) == "+}}"


def test_for_each_binds_item_in_with_but_not_in_if_or_outputs() -> None:
    source = (
        pipeline(
            "  - id: a\n"
            "    uses: demo.echo\n"
            "    for_each: ${{ trigger.items }}\n"
            "    if: size(trigger.items) > 0\n"
            "    with: {message: '${{ index }}: ${{ item.name }}'}\n",
            extra="",
        )
        + "outputs:\n  last: ${{ item }}\n"
    )
    assert problems(source) == [(10, 13, "item_out_of_scope")]
    assert text_at(source, 10, 13) == "item }}"


def test_triggers_may_read_inputs_and_secrets() -> None:
    source = pipeline(
        "  - id: a\n    uses: core.set\n    with: {value: 1}\n",
        extra=(
            "inputs:\n  folder: {type: string, default: inbox}\n"
            "triggers:\n"
            "  - poll: {uses: demo.new_thing, with: {folder: '${{ inputs.folder }}'}}\n"
            "  - webhook: {verify: {hmac_sha256: {header: X-Sig, secret: '${{ secrets.HOOK }}'}}}\n"
        ),
    )
    assert problems(source, secret_names={"HOOK"}) == []
    assert problems(source, secret_names=set()) == [(7, 74, "unknown_secret")]
    assert text_at(source, 7, 74).startswith("HOOK }}")


def test_missing_required_keys_point_at_the_enclosing_node() -> None:
    result = validate_source("version: 1\nname: t\n")
    assert [(p.line, p.column, p.code, p.path, p.message) for p in result.problems] == [
        (1, 1, "missing", "steps", "`steps` is required")
    ]
    result = validate_source(pipeline("  - id: a\n    with: {}\n"))
    assert [(p.line, p.column, p.path) for p in result.problems] == [(4, 5, "steps[0].uses")]


def test_computed_parameters_are_left_to_run_time() -> None:
    source = pipeline(
        "  - id: a\n    uses: demo.echo\n    with: {message: '${{ inputs.m }}', times: '${{ inputs.t }}'}\n",
        extra="inputs:\n  m: {type: string}\n  t: {type: integer}\n",
    )
    assert problems(source) == []


def test_checks_across_fields_wait_for_computed_values() -> None:
    window = "  - id: a\n    uses: demo.window\n    with: {start: %s, end: 2, meta: {owner: me}}\n"
    assert problems(pipeline(window % "1")) == []
    assert problems(pipeline(window % "5")) == [(6, 11, "invalid_with")]
    (problem,) = validate_source(pipeline(window % "5"), FakeCatalog()).problems
    assert problem.message == "`start` must come before `end`"
    assert problems(pipeline(window % "'${{ 5 }}'")) == []


def test_an_operation_model_that_allows_extra_keys() -> None:
    source = pipeline("  - id: a\n    uses: demo.anything\n    with: {whatever: 1, nested: {a: [1]}}\n")
    assert problems(source) == []


def test_a_self_referencing_for_each_and_a_needs_cycle() -> None:
    source = pipeline(
        "  - id: a\n    uses: core.set\n    for_each: ${{ steps.a.output }}\n    with: {value: 1}\n"
        "  - id: b\n    uses: core.set\n    needs: [c]\n    with: {value: 1}\n"
        "  - id: c\n    uses: core.set\n    if: steps.b.status == 'succeeded'\n    with: {value: 1}\n"
    )
    assert problems(source) == [(6, 25, "self_reference"), (10, 13, "cycle")]
    assert text_at(source, 6, 25).startswith("a.output")
    assert text_at(source, 10, 13) == "c]"
    result = validate_source(source, FakeCatalog())
    assert result.problems[1].message == "steps form a cycle: b -> c -> b"


def test_the_result_and_its_error() -> None:
    good = validate_source(pipeline("  - id: a\n    uses: core.set\n    with: {value: 1}\n"))
    assert good.ok
    assert good.require_spec().steps[0].id == "a"
    bad = validate_source("version: 2\nname: t\nsteps: []\n")
    assert not bad.ok
    assert bad.spec is None
    error = bad.error()
    assert isinstance(error, PipelineInvalid)
    assert error.status == 422
    assert error.code == "pipeline_invalid"
    assert error.message.startswith("the pipeline is invalid: 2 problems; the first: 1:10: ")
    assert error.details == [p.model_dump() for p in bad.problems]
    assert set(error.details[0]) == {"line", "column", "path", "code", "message"}
    with pytest.raises(PipelineInvalid):
        bad.require_spec()
    assert ValidationResult(None, []).ok


def test_semantic_problems_do_not_leave_a_spec() -> None:
    source = pipeline("  - id: a\n    uses: core.set\n    with: {value: '${{ steps.zz.output }}'}\n")
    result = validate_source(source)
    assert [p.code for p in result.problems] == ["unknown_step"]
    assert result.spec is None


def test_a_source_over_the_size_limit() -> None:
    source = pipeline("  - id: a\n    uses: core.set\n    with: {value: 1}\n")
    assert problems(source, max_bytes=20) == [(1, 1, "too_large")]
    assert problems(source, max_bytes=len(source)) == []


@pytest.mark.parametrize(
    "source",
    [
        "42",
        "[]",
        "version: 1\nname: x\nsteps: 5\n",
        "version: 1\nname: x\nsteps: [null, 3, [], {}]\n",
        "version: 1\nname: x\nsteps: [{id: 5, uses: [], with: 'x', if: [1], for_each: {a: 1}, needs: [1]}]\n",
        "version: 1\nname: x\ninputs: []\ntriggers: {}\noutputs: 'x'\ndefaults: 3\nsteps: [{id: a}]\n",
        "version: 1\nname: x\ninputs: {a: 3, b: {type: [1]}}\ntriggers: [1, {schedule: 3}, {poll: []}]\n",
        "version: 1\nname: x\ntriggers: [{schedule: {cron: 1, timezone: [], inputs: 3}}, {poll: {uses: 1}}]",
        "steps:\n  - id: a\n    uses: core.join\n    with: {on: 5, left: [], right: []}\n",
        "steps:\n  - {id: a, uses: core.sort, with: {items: [], by: 3}}\n  - {id: b, uses: core.map, with: 7",
        "outputs: {a: '${{', b: ['${{ 1 + }}'], c: {d: '${{ steps }}'}}\n",
    ],
)
def test_malformed_documents_give_problems_never_exceptions(source: str) -> None:
    result = validate_source(source, FakeCatalog(), secret_names=set())
    assert result.problems
    assert all(p.line >= 1 and p.column >= 1 and p.code and p.message for p in result.problems)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_random_damage_to_golden_files_never_raises(path: Path) -> None:
    source = path.read_text()
    rng = random.Random(path.name)
    for _ in range(30):
        chars = list(source)
        for _ in range(rng.randint(1, 4)):
            if not chars:
                break
            position = rng.randrange(len(chars))
            action = rng.choice(("delete", "insert", "swap"))
            if action == "delete":
                del chars[position]
            elif action == "insert":
                chars.insert(position, rng.choice(":-[]{}'\"$ \n\t#&*!|>.,?%@`0"))
            else:
                other = rng.randrange(len(chars))
                chars[position], chars[other] = chars[other], chars[position]
        result = validate_source("".join(chars), FakeCatalog(), secret_names={"SLACK_TOKEN"})
        assert isinstance(result, ValidationResult)
        assert result.ok == (result.spec is not None)


def test_the_real_registry_is_a_catalog() -> None:
    from app.registry import Registry
    from connectors.http import connector

    registry = Registry.from_connectors([connector])
    source = pipeline(
        "  - id: a\n    uses: http.get_json\n    with: {url: 'https://example.org', headrs: {}}\n"
        "  - id: b\n    uses: htp.get_json\n"
    )
    result = validate_source(source, registry)
    assert [(p.code, p.message) for p in result.problems] == [
        ("invalid_with", "unknown parameter `headrs` for http.get_json; did you mean `headers`?"),
        ("unknown_connector", "unknown connector `htp`; did you mean `http`?"),
    ]
