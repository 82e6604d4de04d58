"""A pipeline compiled for execution: every expression compiled once, dependencies and order known.

:func:`compile_plan` turns a validated :class:`~app.pipelines.spec.PipelineSpec` into an immutable
:class:`Plan` that can be cached per pipeline revision and shared by concurrent runs. It re-checks
what the engine relies on (core step parameters, expression syntax, references, cycles) and
raises :class:`~app.errors.PipelineInvalid` listing every problem, so a plan is runnable.

Step timeouts: the step's ``timeout``, else ``defaults.timeout``, else :data:`DEFAULT_TIMEOUT`
(300 s) — per attempt (per element attempt with ``for_each``), core steps included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.engine.evaluation import Evaluator
from app.engine.steps import CORE_STEPS
from app.engine.steps.base import CoreStep
from app.engine.values import ValueTemplate
from app.errors import PipelineInvalid
from app.pipelines.durations import parse_duration
from app.pipelines.expressions import ExpressionSyntaxError
from app.pipelines.spec import PipelineSpec, RetrySpec, StepSpec

DEFAULT_TIMEOUT = 300.0
"""Seconds an attempt of a step may take when neither the step nor ``defaults`` say."""

ItemField = Evaluator | ValueTemplate


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step, compiled."""

    spec: StepSpec
    position: int  # index in the file's `steps`
    deps: frozenset[str]  # steps referenced in with/if/for_each, plus `needs`
    condition: Evaluator | None
    for_each: ValueTemplate | None
    params: ValueTemplate  # the `with` block, without the per-item fields of a core step
    item_fields: Mapping[str, ItemField]  # core steps: dotted path -> bare expression or per-item value
    core: CoreStep | None
    timeout: float
    retry: RetrySpec | None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def uses(self) -> str:
        return self.spec.uses


@dataclass(frozen=True, slots=True)
class Plan:
    """A runnable pipeline: its steps by id, a topological order (file order among equals), outputs."""

    spec: PipelineSpec
    steps: Mapping[str, PlannedStep]
    order: tuple[str, ...]
    outputs: Mapping[str, ValueTemplate]
    roots: frozenset[str] | None = None  # the variables its expressions read (None: unknown, all)


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, code: str, message: str) -> None:
        problem = {"path": path, "code": code, "message": message}
        if problem not in self.items:
            self.items.append(problem)


def _pop_path(raw: dict[str, Any], dotted: str) -> tuple[dict[str, Any], Any, bool]:
    """``raw`` without the value at ``dotted`` (copied along the path), the value, whether found."""
    head, _, rest = dotted.partition(".")
    if head not in raw:
        return raw, None, False
    if not rest:
        copy = dict(raw)
        return copy, copy.pop(head), True
    inner = raw[head]
    if not isinstance(inner, dict):
        return raw, None, False
    new_inner, value, found = _pop_path(inner, rest)
    if not found:
        return raw, None, False
    copy = dict(raw)
    copy[head] = new_inner
    return copy, value, True


def _bare(problems: _Problems, path: str, source: Any) -> Evaluator | None:
    if not isinstance(source, str):
        problems.add(path, "type", "a bare expression (text) is expected")
        return None
    if "${{" in source:
        problems.add(path, "expression_syntax", "write a bare expression here, without `${{ }}`")
        return None
    try:
        return Evaluator.compile(source)
    except ExpressionSyntaxError as exc:
        problems.add(path, "expression_syntax", exc.message)
        return None


def _value(problems: _Problems, path: str, raw: Any) -> ValueTemplate | None:
    try:
        return ValueTemplate(raw)
    except ExpressionSyntaxError as exc:
        problems.add(path, "expression_syntax", exc.message)
        return None


def _duration(problems: _Problems, path: str, raw: str | int | float | None) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        problems.add(path, "type", str(exc))
        return DEFAULT_TIMEOUT
    if seconds <= 0:
        problems.add(path, "type", "a timeout must be longer than 0")
        return DEFAULT_TIMEOUT
    return seconds


def _core_fields(
    problems: _Problems, where: str, step: StepSpec, core: CoreStep
) -> tuple[dict[str, Any], dict[str, ItemField]]:
    try:
        core.Params.model_validate(step.with_)
    except ValidationError as exc:
        messages: dict[str, list[str]] = {}
        for error in exc.errors():
            # Union members show up in the location (`list[any]`, `constrained-str`): drop them.
            loc = ".".join(str(p) for p in error["loc"] if isinstance(p, int) or str(p).isidentifier())
            messages.setdefault(f"{where}.with{'.' + loc if loc else ''}", []).append(error["msg"])
        for path, texts in messages.items():
            problems.add(path, "invalid_with", "; or ".join(dict.fromkeys(texts)))
        return dict(step.with_), {}
    raw = dict(step.with_)
    fields: dict[str, ItemField] = {}
    for path in core.bare_fields:
        raw, source, found = _pop_path(raw, path)
        if found and source is not None and (evaluator := _bare(problems, f"{where}.with.{path}", source)):
            fields[path] = evaluator
    for path in core.per_item_fields:
        raw, value, found = _pop_path(raw, path)
        if found and (template := _value(problems, f"{where}.with.{path}", value)):
            fields[path] = template
    return raw, fields


def _plan_step(problems: _Problems, spec: PipelineSpec, position: int, step: StepSpec) -> PlannedStep:
    where = f"steps[{position}]"
    core: CoreStep | None = None
    raw_with: dict[str, Any] = dict(step.with_)
    item_fields: dict[str, ItemField] = {}
    connector, _, operation = step.uses.partition(".")
    if connector == "core":
        core = CORE_STEPS.get(operation)
        if core is None:
            known = ", ".join(f"core.{name}" for name in sorted(CORE_STEPS))
            message = f"no built-in step `{step.uses}`; known: {known}"
            problems.add(f"{where}.uses", "unknown_operation", message)
        else:
            raw_with, item_fields = _core_fields(problems, where, step, core)
    condition = _bare(problems, f"{where}.if", step.if_) if step.if_ is not None else None
    for_each = _value(problems, f"{where}.for_each", step.for_each) if step.for_each is not None else None
    if isinstance(step.for_each, str) and for_each is not None and for_each.is_static:
        message = "for_each takes a list or a `${{ }}` expression yielding one"
        problems.add(f"{where}.for_each", "type", message)
    params = _value(problems, f"{where}.with", raw_with) or ValueTemplate({})
    deps: set[str] = set(step.needs)
    for part in (condition, for_each, params, *item_fields.values()):
        if part is not None:
            deps |= part.step_refs()
    if step.timeout is not None:
        timeout = _duration(problems, f"{where}.timeout", step.timeout)
    else:
        timeout = _duration(problems, "defaults.timeout", spec.defaults.timeout)
    return PlannedStep(
        spec=step,
        position=position,
        deps=frozenset(deps),
        condition=condition,
        for_each=for_each,
        params=params,
        item_fields=item_fields,
        core=core,
        timeout=timeout,
        retry=step.retry or spec.defaults.retry,
    )


def _order(problems: _Problems, steps: dict[str, PlannedStep]) -> tuple[str, ...]:
    """Kahn's algorithm, file order among ready steps; a cycle is reported with its path."""
    remaining = {sid: (set(step.deps) & steps.keys()) - {sid} for sid, step in steps.items()}
    order: list[str] = []
    while remaining:
        ready = [sid for sid, deps in remaining.items() if not deps]
        if not ready:
            problems.add("steps", "cycle", f"steps depend on each other in a cycle: {_cycle(remaining)}")
            break
        ready.sort(key=lambda sid: steps[sid].position)
        for sid in ready:
            order.append(sid)
            del remaining[sid]
        for deps in remaining.values():
            deps.difference_update(ready)
    return tuple(order)


def _cycle(remaining: dict[str, set[str]]) -> str:
    start = next(iter(remaining))
    seen: list[str] = []
    node = start
    while node not in seen:
        seen.append(node)
        node = sorted(remaining[node])[0]
    cycle = [*seen[seen.index(node) :], node]
    return " -> ".join(cycle)


def compile_plan(spec: PipelineSpec) -> Plan:
    """Compile ``spec`` once; raises :class:`~app.errors.PipelineInvalid` with all problems in ``details``."""
    problems = _Problems()
    steps: dict[str, PlannedStep] = {}
    for position, step in enumerate(spec.steps):
        if step.id in steps:
            problems.add(f"steps[{position}].id", "duplicate_step", f"step id `{step.id}` is used twice")
            continue
        steps[step.id] = _plan_step(problems, spec, position, step)
    for sid, planned in steps.items():
        where = f"steps[{planned.position}]"
        for dep in sorted(planned.deps):
            if dep == sid:
                problems.add(where, "self_reference", f"step `{sid}` refers to itself")
            elif dep not in steps:
                problems.add(where, "unknown_step", f"step `{sid}` refers to an unknown step `{dep}`")
    outputs: dict[str, ValueTemplate] = {}
    for name, raw in spec.outputs.items():
        template = _value(problems, f"outputs.{name}", raw)
        if template is None:
            continue
        for dep in sorted(template.step_refs() - steps.keys()):
            message = f"output `{name}` refers to an unknown step `{dep}`"
            problems.add(f"outputs.{name}", "unknown_step", message)
        outputs[name] = template
    order = _order(problems, steps)
    if problems.items:
        count = len(problems.items)
        raise PipelineInvalid(
            f"pipeline `{spec.name}` cannot run: {count} problem{'s' if count > 1 else ''}; "
            f"first: {problems.items[0]['path']}: {problems.items[0]['message']}",
            details=problems.items,
        )
    evaluators = [evaluator for template in outputs.values() for evaluator in template.evaluators()]
    for planned in steps.values():
        for part in (planned.condition, planned.for_each, planned.params, *planned.item_fields.values()):
            if isinstance(part, Evaluator):
                evaluators.append(part)
            elif part is not None:
                evaluators.extend(part.evaluators())
    roots = frozenset(root for evaluator in evaluators for root in evaluator.roots)
    return Plan(spec=spec, steps=steps, order=order, outputs=outputs, roots=roots)
