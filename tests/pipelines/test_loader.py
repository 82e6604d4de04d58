"""The YAML loader: plain data, YAML 1.2 core scalars, positions, and refusals as problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.pipelines.loader import load_yaml
from app.pipelines.problems import Problem, format_path, sorted_problems

GOLDEN = sorted((Path(__file__).resolve().parent.parent / "golden").glob("*/*.yaml"))


def codes(source: str, **kwargs: Any) -> list[tuple[int, int, str]]:
    return [(p.line, p.column, p.code) for p in load_yaml(source, **kwargs).problems]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"),
        ("yes", "yes"),
        ("No", "No"),
        ("off", "off"),
        ("y", "y"),
        ("2024-01-01", "2024-01-01"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("12:30", "12:30"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("null", None),
        ("~", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("1_000", "1_000"),
        ('"42"', "42"),
        ("'true'", "true"),
        ("!!str 12", "12"),
        ('!!int "7"', 7),
        ("!!bool true", True),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, value: Any) -> None:
    doc = load_yaml(f"key: {text}\n")
    assert doc.problems == []
    assert doc.data == {"key": value}
    assert type(doc.data["key"]) is type(value)


@pytest.mark.parametrize("pure", [False, True])
def test_positions_of_values_and_keys_are_one_based(pure: bool) -> None:
    source = "version: 1\nsteps:\n  - id: a\n    with:\n      url: https://x\n"
    doc = load_yaml(source, pure=pure)
    assert doc.data == {"version": 1, "steps": [{"id": "a", "with": {"url": "https://x"}}]}
    assert doc.position(("version",)) == (1, 10)
    assert doc.key_position(("version",)) == (1, 1)
    assert doc.position(("steps", 0)) == (3, 5)
    assert doc.position(("steps", 0, "with", "url")) == (5, 12)
    assert doc.key_position(("steps", 0, "with", "url")) == (5, 7)
    # a path that does not exist: its nearest existing ancestor
    assert doc.position(("steps", 0, "with", "method")) == (4, 7) or doc.position(
        ("steps", 0, "with", "method")
    ) == doc.position(("steps", 0, "with"))
    assert doc.position(("nothing", "here")) == (1, 1)


def test_problem_helper_locates_at_the_key_or_the_value() -> None:
    doc = load_yaml("a:\n  b: 1\n")
    expected = Problem(line=2, column=3, path="a.b", code="x", message="m")
    assert doc.problem(("a", "b"), "x", "m", key=True) == expected
    assert doc.problem(("a", "b"), "x", "m").column == 6


@pytest.mark.parametrize(
    "source",
    [
        'v: "a ${{ x.y }}"',
        'v: "a\\tb ${{ x.y }}"',
        'v: "\\u00e9 ${{ x.y }}"',
        "v: 'it''s ${{ x.y }}'",
        "v: a ${{ x.y }}",
        "v: |\n  first\n  a ${{ x.y }}",
        "v: >\n  folded\n  a ${{ x.y }}",
        "v: plain\n  a ${{ x.y }}",
        'v: "a \\\n   b ${{ x.y }}"',
        "v: >-\n    deeper\n\n    a ${{ x.y }}",
    ],
)
def test_string_position_finds_a_character_inside_the_scalar(source: str) -> None:
    doc = load_yaml(source + "\n")
    value = doc.data["v"]
    index = source.index("x.y")
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    assert doc.string_position(("v",), value.index("x.y")) == (line, column)


def test_string_position_past_the_end_points_after_the_text() -> None:
    doc = load_yaml('v: "abc"\n')
    assert doc.string_position(("v",), 3) == (1, 8)
    assert doc.string_position(("missing",), 0) == (1, 1)


def test_duplicate_keys_are_reported_and_the_first_value_kept() -> None:
    doc = load_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert doc.data == {"a": 1, "b": {"c": 1}}
    assert [(p.line, p.column, p.code, p.path) for p in doc.problems] == [
        (4, 3, "duplicate_key", "b.c"),
        (5, 1, "duplicate_key", "a"),
    ]
    assert "first at line 1" in doc.problems[1].message
    assert doc.position(("a",)) == (1, 4)


def test_anchors_aliases_and_tags_are_refused() -> None:
    source = "base: &b {x: 1}\ncopy: *b\nt: !custom v\nu: !!binary aGk=\n"
    expected = [(1, 7, "yaml_alias"), (2, 7, "yaml_alias"), (3, 4, "yaml_tag"), (4, 4, "yaml_tag")]
    assert codes(source) == expected
    assert load_yaml(source).data == {"base": {"x": 1}, "copy": None, "t": "v", "u": "aGk="}


def test_keys_must_be_text() -> None:
    source = "1: a\ntrue: b\n~: c\n? [x]\n: d\n'2': e\nok: f\n"
    assert codes(source) == [
        (1, 1, "non_string_key"),
        (2, 1, "non_string_key"),
        (3, 1, "non_string_key"),
        (4, 3, "non_string_key"),
    ]
    assert load_yaml(source).data == {"2": "e", "ok": "f"}


def test_a_second_document_is_refused() -> None:
    doc = load_yaml("a: 1\n---\nb: 2\n")
    assert doc.data == {"a": 1}
    assert [(p.line, p.code) for p in doc.problems] == [(2, "multiple_documents")]


def test_one_explicit_document_is_fine() -> None:
    doc = load_yaml("%YAML 1.2\n---\na: on\n...\n")
    assert doc.problems == []
    assert doc.data == {"a": "on"}


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    doc = load_yaml("a: [[[[1]]]]\n", max_depth=3)
    assert [(p.line, p.column, p.code) for p in doc.problems] == [(1, 6, "too_deep")]
    assert doc.data == {"a": [[None]]}
    assert load_yaml("a: " + "[" * 63 + "]" * 63 + "\n").problems == []  # 64 levels with the mapping
    assert [p.code for p in load_yaml("a: " + "[" * 64 + "]" * 64 + "\n").problems] == ["too_deep"]


def test_sources_over_the_limit_are_refused_before_parsing() -> None:
    doc = load_yaml("a: [\n" + "x" * 100, max_bytes=50)
    assert [(p.line, p.column, p.code) for p in doc.problems] == [(1, 1, "too_large")]
    assert doc.data is None
    assert load_yaml("a: é\n", max_bytes=6).problems == []
    assert load_yaml("a: é\n", max_bytes=5).problems[0].code == "too_large"


def test_infinite_and_nan_numbers_are_refused() -> None:
    assert codes("a: .inf\nb: -.Inf\nc: .nan\nd: 1e999\n") == [
        (1, 4, "unsupported_value"),
        (2, 4, "unsupported_value"),
        (3, 4, "unsupported_value"),
        (4, 4, "unsupported_value"),
    ]


@pytest.mark.parametrize("pure", [False, True])
@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("a: b: c\n", (1, 5)),
        ("a: 'open\n", None),
        ("a:\n\t- x\n", (2, 1)),
        ("- a\nb: c\n", (2, 1)),
        ("a: \x00\n", (1, 4)),
        ("a: [1, 2\n", None),
    ],
)
def test_syntax_errors_are_problems_with_a_position(
    source: str, where: tuple[int, int] | None, pure: bool
) -> None:
    doc = load_yaml(source, pure=pure)
    assert doc.data is None
    assert [p.code for p in doc.problems] == ["yaml_syntax"]
    assert doc.problems[0].message.startswith("YAML syntax: ")
    if where is not None:
        assert (doc.problems[0].line, doc.problems[0].column) == where


def test_problems_found_before_a_syntax_error_are_kept() -> None:
    doc = load_yaml("a: 1\na: 2\nb: [\n")
    assert [p.code for p in doc.problems] == ["duplicate_key", "yaml_syntax"]


def test_empty_and_comment_only_sources_give_no_data_and_no_problem() -> None:
    for source in ("", "\n\n", "# just a comment\n"):
        doc = load_yaml(source)
        assert (doc.data, doc.problems) == (None, [])


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_c_and_pure_parsers_agree_on_the_golden_files(path: Path) -> None:
    source = path.read_text()
    fast, pure = load_yaml(source), load_yaml(source, pure=True)
    assert fast.data == pure.data
    assert _plain(fast.data)
    assert fast.positions == pure.positions
    assert fast.key_positions == pure.key_positions
    assert [(p.line, p.column, p.code) for p in fast.problems] == [
        (p.line, p.column, p.code) for p in pure.problems
    ]


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("steps", 3, "with", "url")) == "steps[3].with.url"
    assert format_path(("with", "Content-Type")) == 'with["Content-Type"]'
    assert format_path((0, "a")) == "[0].a"


def test_sorted_problems_orders_by_position_and_drops_repeats() -> None:
    a = Problem(line=2, column=1, path="b", code="x", message="m")
    b = Problem(line=1, column=5, path="a", code="y", message="n")
    assert sorted_problems([a, b, a]) == [b, a]
    assert str(b) == "1:5: n [y]"
