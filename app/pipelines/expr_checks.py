"""Checks of every expression in the file: syntax, and what each one reads.

Where expressions are, and how they are read:

* ``steps[*].with`` — values with ``${{ }}``; for a ``core.*`` step, the fields of its
  ``bare_fields`` (``where``, ``by``...) are bare CEL instead, evaluated per item;
* ``steps[*].if`` — bare CEL (``${{ }}`` there is an error), evaluated once, before any
  ``for_each``; ``steps[*].for_each`` — a value with ``${{ }}``;
* ``outputs`` — values with ``${{ }}``; ``triggers`` — values with ``${{ }}`` that may read
  ``secrets``, ``inputs``, ``trigger`` and ``run`` but no step (a poll's ``with``: not ``run`` either,
  it is evaluated when the poll runs).

``item`` and ``index`` exist only per element: in the ``with`` of a ``for_each`` step, and in a core
step's ``bare_fields`` and ``per_item_fields``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from app.engine.steps.base import CoreStep
from app.pipelines.cel_lexer import UnclosedTemplate, split_template
from app.pipelines.context import CheckContext, StepRef, did_you_mean
from app.pipelines.expressions import ROOTS, Expression, ExpressionSyntaxError
from app.pipelines.problems import Path
from app.pipelines.references import Reference, find_references

Mode = Literal["template", "bare"]
Section = Literal["step", "outputs", "trigger"]
STEP_FIELDS = ("output", "status")
PER_ITEM = frozenset({"item", "index"})


@dataclass(slots=True)
class Site:
    """One string holding expressions: where it is, how it is read, and what it may see."""

    path: Path
    text: str
    mode: Mode
    section: Section
    step_id: str | None = None
    per_item: bool = False
    carries: bool = False  # the value becomes (part of) the step's output: secrets read here flow on


def _matches(dotted: str, fields: tuple[str, ...], subtree: bool) -> bool:
    return any(dotted == f or (subtree and dotted.startswith(f + ".")) for f in fields)


def walk_strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Every string inside ``value`` with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, (*path, i))


def step_sites(index: int, step: dict[str, Any], core: CoreStep | None) -> Iterator[Site]:
    """The expression sites of one step (``core`` gives its bare and per-item fields)."""
    step_id = step.get("id") if isinstance(step.get("id"), str) else None
    looped = step.get("for_each") is not None
    bare = core.bare_fields if core else ()
    per_item = core.per_item_fields if core else ()
    values = step.get("with")
    if isinstance(values, dict):
        for path, text in walk_strings(values, ("steps", index, "with")):
            dotted = ".".join(str(p) for p in path[3:] if isinstance(p, str))
            if _matches(dotted, bare, subtree=False):
                yield Site(path, text, "bare", "step", step_id, per_item=True, carries=True)
            elif "${{" in text:
                item = looped or _matches(dotted, per_item, subtree=True)
                yield Site(path, text, "template", "step", step_id, per_item=item, carries=True)
    condition = step.get("if")
    if isinstance(condition, str):
        yield Site(("steps", index, "if"), condition, "bare", "step", step_id)
    for path, text in walk_strings(step.get("for_each"), ("steps", index, "for_each")):
        if "${{" in text:
            yield Site(path, text, "template", "step", step_id, carries=True)


def document_sites(data: dict[str, Any]) -> Iterator[Site]:
    """The expression sites of ``outputs`` and ``triggers``."""
    for path, text in walk_strings(data.get("outputs"), ("outputs",)):
        if "${{" in text:
            yield Site(path, text, "template", "outputs")
    triggers = data.get("triggers")
    if isinstance(triggers, list):
        for path, text in walk_strings(triggers, ("triggers",)):
            if "${{" in text:
                yield Site(path, text, "template", "trigger")


def _expressions(ctx: CheckContext, site: Site) -> Iterator[tuple[int, int]]:
    """(start, end) of every expression of a site that compiles; reports those that do not."""
    if site.mode == "bare":
        if "${{" in site.text:
            message = "this field takes a bare expression: write it without `${{ }}`"
            ctx.add_at(site.path, site.text.index("${{"), "template_in_bare", message)
            return
        spans = [(0, len(site.text))]
    else:
        try:
            segments = split_template(site.text)
        except UnclosedTemplate as exc:
            ctx.add_at(site.path, exc.offset, "expression_syntax", str(exc))
            return
        spans = [
            (s.expression_start, s.expression_start + len(s.expression))
            for s in segments
            if s.expression is not None
        ]
    for start, end in spans:
        try:
            Expression(site.text[start:end])
        except ExpressionSyntaxError as exc:
            ctx.add_at(site.path, start + exc.offset, "expression_syntax", f"expression: {exc.message}")
            continue
        yield start, end


def _check_step_ref(ctx: CheckContext, site: Site, ref: Reference) -> None:
    if site.section == "trigger":
        message = "a trigger runs before any step: it cannot read `steps`"
        ctx.add_at(site.path, ref.offset, "invalid_reference", message)
        return
    if ref.dynamic or ref.name is None:
        message = "refer to a step by its id, like `steps.fetch.output`: the order of steps depends on it"
        ctx.add_at(site.path, ref.offset, "dynamic_reference", message)
        return
    name = ref.name
    if name not in ctx.step_ids:
        message = f"unknown step `{name}`{did_you_mean(name, ctx.step_ids)}"
        ctx.add_at(site.path, ref.name_offset, "unknown_step", message)
        return
    if name == site.step_id:
        message = f"step `{name}` cannot read its own output"
        ctx.add_at(site.path, ref.name_offset, "self_reference", message)
        return
    if ref.field is not None and ref.field not in STEP_FIELDS:
        message = f"a step has `output` and `status`, not `{ref.field}`{did_you_mean(ref.field, STEP_FIELDS)}"
        ctx.add_at(site.path, ref.field_offset, "unknown_step_field", message)
    ctx.add_dep(site.step_id, name, StepRef(site.path, ref.name_offset))


@dataclass(slots=True)
class SiteReads:
    """What a site reads: secret names and known step ids, each with its first offset."""

    secrets: dict[str, int]
    steps: dict[str, int]


POLL_ROOTS = frozenset({"secrets", "inputs", "trigger"})
"""What a poll's ``with`` may read: it is evaluated when the poll runs, before any run exists."""


def _in_poll_with(path: Path) -> bool:
    return len(path) > 3 and path[0] == "triggers" and path[2] == "poll" and path[3] == "with"


def _check_ref(ctx: CheckContext, site: Site, ref: Reference, reads: SiteReads) -> None:
    root = ref.root
    if root in ROOTS and root not in POLL_ROOTS and site.section == "trigger" and _in_poll_with(site.path):
        message = (
            "a poll's `with` is evaluated when it polls, before any run: it reads `secrets`, `inputs` "
            f"(their defaults) and `trigger`, not `{root}`"
        )
        ctx.add_at(site.path, ref.offset, "invalid_reference", message)
        return
    if root == "steps":
        _check_step_ref(ctx, site, ref)
        if ref.name is not None and ref.name in ctx.step_ids:
            reads.steps.setdefault(ref.name, ref.name_offset)
    elif root == "inputs":
        if ref.name is not None and ref.name not in ctx.input_names:
            hint = did_you_mean(ref.name, ctx.input_names) or (
                "; this pipeline declares no inputs" if not ctx.input_names else ""
            )
            ctx.add_at(site.path, ref.name_offset, "unknown_input", f"unknown input `{ref.name}`{hint}")
    elif root == "secrets":
        if ref.name is not None:
            reads.secrets.setdefault(ref.name, ref.name_offset)
            if ctx.secret_names is not None and ref.name not in ctx.secret_names:
                message = f"unknown secret `{ref.name}`{did_you_mean(ref.name, ctx.secret_names)}"
                ctx.add_at(site.path, ref.name_offset, "unknown_secret", message)
    elif root in PER_ITEM:
        if not site.per_item:
            message = f"`{root}` exists only per element: in a `for_each` step's `with`, or per-item fields"
            ctx.add_at(site.path, ref.offset, "item_out_of_scope", message)
    elif root not in ROOTS:
        hint = did_you_mean(root, sorted(ROOTS)) or "; expressions read inputs, steps, trigger, secrets, run"
        message = f"unknown variable `{root}`{hint}"
        ctx.add_at(site.path, ref.offset, "unknown_variable", message)


def check_site(ctx: CheckContext, site: Site) -> SiteReads:
    """Check one site; returns what it reads."""
    reads = SiteReads({}, {})
    for start, end in _expressions(ctx, site):
        for ref in find_references(site.text, start, end):
            _check_ref(ctx, site, ref, reads)
    return reads


def check_expressions(
    ctx: CheckContext, steps: list[tuple[int, dict[str, Any]]], cores: dict[int, CoreStep]
) -> dict[Path, SiteReads]:
    """Check every expression of the file; returns what each output value reads.

    Records in ``ctx.step_secrets`` the secrets that ``core.*`` steps copy into their output
    (a connector step uses a secret, its output is the API's answer).
    """
    for index, step in steps:
        is_core = str(step.get("uses", "")).startswith("core.")
        for site in step_sites(index, step, cores.get(index)):
            reads = check_site(ctx, site)
            if is_core and site.carries and site.step_id is not None:
                if reads.secrets:
                    ctx.step_secrets.setdefault(site.step_id, set()).update(reads.secrets)
                if reads.steps:
                    ctx.carried.setdefault(site.step_id, set()).update(reads.steps)
    outputs: dict[Path, SiteReads] = {}
    if isinstance(ctx.data, dict):
        for site in document_sites(ctx.data):
            reads = check_site(ctx, site)
            if site.section == "outputs":
                outputs[site.path] = reads
    return outputs
