"""Checks of the steps: unique ids, known ``uses``, ``with`` against the operation, ``for_each``, ``needs``.

They read the raw document (so that one bad field does not hide the problems of the others) and
skip what has the wrong shape: :mod:`app.pipelines.structure` reports that.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError

from app.engine.steps.base import CoreStep
from app.pipelines.cel_lexer import UnclosedTemplate, has_template, split_template
from app.pipelines.context import CheckContext, StepRef, connector_hint, did_you_mean
from app.pipelines.problems import Path
from app.pipelines.spec import USES_PATTERN
from app.pipelines.structure import errors_to_problems

_USES = re.compile(USES_PATTERN)


def model_keys(model: type[BaseModel]) -> set[str]:
    """Every key a model accepts: field names, aliases and validation aliases."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(name)
        if info.alias:
            keys.add(info.alias)
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for choice in choices:
            if isinstance(choice, str):
                keys.add(choice)
            elif isinstance(choice, AliasPath) and choice.path and isinstance(choice.path[0], str):
                keys.add(choice.path[0])
    return keys


def check_params(
    ctx: CheckContext, path: Path, values: Any, model: type[BaseModel], uses: str, *, as_written: bool = False
) -> None:
    """``values`` (a ``with`` block at ``path``) against ``model``.

    A connector's input model types the values computed at run time, so only literal fields are
    checked against it (``${{ }}`` fields are left out). A core step's ``Params`` describes the
    block ``as_written``, expressions included, so all of it is checked.
    """
    if not isinstance(values, dict):
        return
    keys = model_keys(model)
    if model.model_config.get("extra") != "allow":
        for key in values:
            if key not in keys:
                hint = did_you_mean(key, sorted(keys)) or (
                    f"; it takes: {', '.join(sorted(keys))}" if keys else "; it takes no parameters"
                )
                ctx.add((*path, key), "invalid_with", f"unknown parameter `{key}` for {uses}{hint}", key=True)
    literal = {k: v for k, v in values.items() if k in keys and (as_written or not has_template(v))}
    try:
        model.model_validate(literal)
    except ValidationError as exc:
        computed = frozenset(k for k in values if k not in literal)
        errors = exc.errors(include_url=False)
        if computed:
            # a check across fields cannot be judged while some of them are computed at run time
            errors = [error for error in errors if error["loc"]]
        ctx.problems.extend(
            errors_to_problems(
                ctx.doc, literal, errors, base=path, code="invalid_with", ignore_missing=computed
            )
        )


def _check_uses(ctx: CheckContext, index: int, step: dict[str, Any]) -> tuple[CoreStep | None, str | None]:
    """The core step or the ``CONNECTOR.OPERATION`` a step uses, after reporting unknown ones."""
    uses = step.get("uses")
    if not isinstance(uses, str) or not _USES.match(uses):
        return None, None
    path: Path = ("steps", index, "uses")
    connector, operation = uses.split(".", 1)
    if connector == "core":
        if not ctx.core_steps:
            return None, None  # the built-in steps are not installed: nothing to check against
        core = ctx.core_steps.get(operation)
        if core is None:
            hint = did_you_mean(operation, ctx.core_steps).replace("`", "`core.", 1)
            hint = hint or f"; the core steps are: {', '.join(ctx.core_steps)}"
            ctx.add(path, "unknown_operation", f"unknown core step `{uses}`{hint}")
        return core, None
    catalog = ctx.catalog
    if catalog is None:
        return None, None
    if not catalog.has_connector(connector):
        hint = connector_hint(catalog, connector)
        ctx.add(path, "unknown_connector", f"unknown connector `{connector}`{hint}")
        return None, None
    names = catalog.operation_names(connector)
    if operation not in names:
        hint = did_you_mean(operation, names) or (f"; it has: {', '.join(names)}" if names else "")
        ctx.add(path, "unknown_operation", f"connector `{connector}` has no operation `{operation}`{hint}")
        return None, None
    return None, uses


def _check_for_each(ctx: CheckContext, index: int, value: Any) -> None:
    if not isinstance(value, str):
        return
    path: Path = ("steps", index, "for_each")
    message = "`for_each` takes one `${{ expression }}` yielding a list, or a literal list"
    try:
        segments = split_template(value)
    except UnclosedTemplate:
        return  # reported with the expressions
    if len(segments) != 2 or segments[0].text.strip() or segments[1].text.strip():
        ctx.add(path, "invalid_for_each", message)


def _check_needs(ctx: CheckContext, index: int, step_id: str | None, needs: Any) -> None:
    if not isinstance(needs, list):
        return
    for j, name in enumerate(needs):
        path: Path = ("steps", index, "needs", j)
        if not isinstance(name, str):
            continue
        if name == step_id:
            ctx.add(path, "self_reference", f"step `{name}` cannot need itself")
        elif name not in ctx.step_ids:
            message = f"unknown step `{name}` in `needs`{did_you_mean(name, ctx.step_ids)}"
            ctx.add(path, "unknown_step", message)
        else:
            ctx.add_dep(step_id, name, StepRef(path))


def collect_step_ids(ctx: CheckContext) -> list[tuple[int, dict[str, Any]]]:
    """The steps that are mappings, with their index; records ids and reports duplicates."""
    steps = ctx.data.get("steps") if isinstance(ctx.data, dict) else None
    if not isinstance(steps, list):
        return []
    found: list[tuple[int, dict[str, Any]]] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        found.append((index, step))
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        if step_id in ctx.step_ids:
            first = ctx.step_ids[step_id]
            message = f"step id `{step_id}` is already used by steps[{first}]"
            ctx.add(("steps", index, "id"), "duplicate_step", message)
        else:
            ctx.step_ids[step_id] = index
    return found


def check_steps(ctx: CheckContext, steps: list[tuple[int, dict[str, Any]]]) -> dict[int, CoreStep]:
    """Check every step; returns the core step of each ``core.*`` step (by index) for the expressions."""
    cores: dict[int, CoreStep] = {}
    for index, step in steps:
        step_id = step.get("id") if isinstance(step.get("id"), str) else None
        core, uses = _check_uses(ctx, index, step)
        with_path: Path = ("steps", index, "with")
        values = step.get("with", {})
        if core is not None:
            cores[index] = core
            check_params(ctx, with_path, values, core.Params, f"core.{core.name}", as_written=True)
            if step.get("connection") is not None:
                ctx.add(("steps", index, "connection"), "invalid_value", "core steps take no `connection`")
        elif uses is not None and ctx.catalog is not None:
            model = ctx.catalog.input_model(uses)
            if model is not None:
                check_params(ctx, with_path, values, model, uses)
        _check_for_each(ctx, index, step.get("for_each"))
        _check_needs(ctx, index, step_id, step.get("needs"))
    return cores
