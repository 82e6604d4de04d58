"""Looking at CEL text: tokens, template splitting, references and the default() rewrite."""

from __future__ import annotations

import pytest

from app.pipelines.cel_lexer import (
    UnclosedTemplate,
    has_template,
    split_template,
    string_literal_value,
    tokenize,
)
from app.pipelines.cel_rewrite import rewrite_defaults
from app.pipelines.references import find_references


def test_tokenize_strings_numbers_and_punctuation() -> None:
    tokens = tokenize("a.b['x y'] >= 1.5e3 && r\"raw\\\\\" || '''t\"''' // note\n != -0x1Fu")
    assert [(t.kind, t.text) for t in tokens] == [
        ("ident", "a"),
        ("punct", "."),
        ("ident", "b"),
        ("punct", "["),
        ("string", "'x y'"),
        ("punct", "]"),
        ("punct", ">="),
        ("number", "1.5e3"),
        ("punct", "&&"),
        ("string", 'r"raw\\\\"'),
        ("punct", "||"),
        ("string", "'''t\"'''"),
        ("punct", "!="),
        ("punct", "-"),
        ("number", "0x1Fu"),
    ]


def test_tokenize_never_raises() -> None:
    tokens = tokenize("'open # é")
    assert [t.kind for t in tokens] == ["error"]
    assert [t.kind for t in tokenize("a ; b")] == ["ident", "error", "ident"]
    assert [t.kind for t in tokenize("true in null")] == ["keyword", "keyword", "keyword"]


def test_string_literal_value() -> None:
    assert string_literal_value(tokenize('"abc"')[0]) == "abc"
    assert string_literal_value(tokenize("'''abc'''")[0]) == "abc"
    assert string_literal_value(tokenize('"a\\nb"')[0]) is None
    assert string_literal_value(tokenize('r"abc"')[0]) is None
    assert string_literal_value(tokenize("abc")[0]) is None


def test_split_template_cuts_text_and_expressions() -> None:
    segments = split_template("Hi ${{ name }}, ${{ n + 1 }}!")
    assert [(s.text, s.expression) for s in segments] == [("Hi ", " name "), (", ", " n + 1 "), ("!", None)]
    assert segments[1].expression_start == len("Hi ${{ name }}, ${{")


@pytest.mark.parametrize(
    ("raw", "expression"),
    [
        ('${{ x == "}}" }}', ' x == "}}" '),
        ("${{ {'a': {'b': 1}} }}", " {'a': {'b': 1}} "),
        ("${{ {'a': 1}}}", " {'a': 1}"),
        ("${{ 'it\\'s }}' }}", " 'it\\'s }}' "),
    ],
)
def test_split_template_ignores_closing_braces_inside_the_expression(raw: str, expression: str) -> None:
    assert split_template(raw)[0].expression == expression


def test_split_template_reports_an_unclosed_template() -> None:
    with pytest.raises(UnclosedTemplate) as caught:
        split_template("ok ${{ a }} then ${{ b")
    assert caught.value.offset == len("ok ${{ a }} then ")
    # an unclosed quote falls back to the first `}}`, and CEL reports the quote
    assert split_template("${{ 'a }}")[0].expression == " 'a "


def test_has_template_looks_inside_lists_and_maps() -> None:
    assert has_template({"a": [1, {"b": "x ${{ y }}"}]})
    assert not has_template({"a": [1, {"b": "x { y }"}], "c": None})


def test_find_references_with_members_and_offsets() -> None:
    source = 'steps.hn.output[0].title + inputs["min points"] + secrets.TOKEN + item.x + index'
    refs = find_references(source)
    assert [(r.root, r.name, r.field) for r in refs] == [
        ("steps", "hn", "output"),
        ("inputs", "min points", None),
        ("secrets", "TOKEN", None),
        ("item", "x", None),
        ("index", None, None),
    ]
    assert source[refs[0].name_offset :].startswith("hn")
    assert source[refs[0].field_offset :].startswith("output")
    assert source[refs[1].name_offset :].startswith("min points")


def test_find_references_skips_members_functions_strings_and_macro_variables() -> None:
    source = 'size(x.steps) > 0 && "steps.y" != z.exists(s, s.steps.q) && [1].map(n, n * k).size() > 0'
    assert [r.root for r in find_references(source)] == ["x", "z", "k"]


def test_find_references_marks_computed_members_dynamic() -> None:
    (ref,) = find_references("steps[inputs.which].output")[:1]
    assert ref.dynamic
    assert ref.name is None
    assert [r.root for r in find_references("steps[inputs.which].output")] == ["steps", "inputs"]


def test_find_references_in_a_slice_keeps_offsets_into_the_whole_text() -> None:
    text = "Hello ${{ inputs.who }}!"
    (ref,) = find_references(text, 9, 21)
    assert text[ref.name_offset : ref.name_offset + 3] == "who"


@pytest.mark.parametrize(
    "source",
    [
        "1 + 2",
        "default(lower(a), 'x')",
        "x.default(1, 2)",
        "default(a)",
        "default(true, 1)",
    ],
)
def test_rewrite_leaves_other_expressions_alone(source: str) -> None:
    assert rewrite_defaults(source) == source


def test_rewrite_guards_each_step_of_the_path() -> None:
    rewritten = rewrite_defaults('default(a.b["c"][0], 1)')
    assert rewritten.startswith("((")
    assert '"b" in a' in rewritten
    assert '("c") in a.b' in rewritten
    assert 'size(a.b["c"])' in rewritten
    assert rewritten.endswith(": (1))")
