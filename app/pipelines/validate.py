"""Validate a pipeline file: every problem at once, each with its line and column.

>>> result = validate_source("version: 1\\nname: demo\\nsteps: [{id: a, uses: core.set, with: {value: 1}}]")
>>> result.ok, result.spec.name
(True, 'demo')

The checks, in the order of ``shared/docs/pipeline-format.md`` ("Validation"):

1. YAML (:mod:`app.pipelines.loader`): syntax, duplicate keys, anchors/aliases, tags, size, depth;
2. shape (:mod:`app.pipelines.structure`): unknown keys, types, missing keys, values;
3. steps (:mod:`app.pipelines.step_checks`): unique ids, known connector/operation, ``with``
   against the operation's input model (literal values only), ``for_each``, ``needs``;
4. inputs and triggers (:mod:`app.pipelines.trigger_checks`): defaults, cron, timezones, polls;
5. expressions (:mod:`app.pipelines.expr_checks`): syntax, unknown steps/inputs/secrets/variables,
   ``item`` outside a per-element field, ``${{ }}`` in bare fields;
6. graph (:mod:`app.pipelines.graph`): cycles, secrets flowing into ``outputs``.

Checks 3-6 read the raw document, so a problem in one place does not hide those elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.engine.steps.base import CoreStep
from app.errors import PipelineInvalid
from app.pipelines.catalog import OperationCatalog
from app.pipelines.context import CheckContext
from app.pipelines.expr_checks import check_expressions
from app.pipelines.graph import check_cycles, check_secret_outputs, dependencies
from app.pipelines.loader import load_yaml
from app.pipelines.problems import Problem, sorted_problems
from app.pipelines.spec import PipelineSpec
from app.pipelines.step_checks import check_steps, collect_step_ids
from app.pipelines.structure import structure_problems
from app.pipelines.trigger_checks import check_inputs, check_triggers

__all__ = ["ValidationResult", "dependencies", "installed_core_steps", "validate_source"]

MAX_BYTES = 262144


@dataclass(slots=True)
class ValidationResult:
    """``spec`` is the validated pipeline, None as soon as there is any problem."""

    spec: PipelineSpec | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def error(self) -> PipelineInvalid:
        """The problems as the API error (``422 pipeline_invalid``, details: the problem list)."""
        count = len(self.problems)
        first = self.problems[0] if self.problems else None
        summary = f"{first.line}:{first.column}: {first.message}" if first else "no problem"
        message = summary if count == 1 else f"{count} problems; the first: {summary}"
        return PipelineInvalid(
            f"the pipeline is invalid: {message}", details=[p.model_dump() for p in self.problems]
        )

    def require_spec(self) -> PipelineSpec:
        """The spec, or raises :class:`PipelineInvalid` with every problem."""
        if self.spec is None:
            raise self.error()
        return self.spec


def installed_core_steps() -> Mapping[str, CoreStep]:
    """The built-in ``core.*`` steps (``app.engine.steps.CORE_STEPS``), empty when not available."""
    try:
        module = importlib.import_module("app.engine.steps")
    except ImportError:
        return {}
    steps = getattr(module, "CORE_STEPS", {})
    return steps if isinstance(steps, Mapping) else {}


def validate_source(
    source: str,
    catalog: OperationCatalog | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    secret_names: set[str] | None = None,
    core_steps: Mapping[str, CoreStep] | None = None,
) -> ValidationResult:
    """Validate pipeline YAML text; never raises for bad input.

    ``catalog`` checks connectors and operations (skipped when None); ``secret_names`` makes a
    reference to a missing secret an error (skipped when None); ``core_steps`` defaults to the
    installed built-in steps.
    """
    doc = load_yaml(source, max_bytes=max_bytes)
    problems = list(doc.problems)
    if doc.data is None and problems:
        return ValidationResult(None, sorted_problems(problems))
    spec, structural = structure_problems(doc)
    problems.extend(structural)
    if isinstance(doc.data, dict):
        ctx = CheckContext(
            doc=doc,
            catalog=catalog,
            core_steps=installed_core_steps() if core_steps is None else core_steps,
            secret_names=secret_names,
        )
        steps = collect_step_ids(ctx)
        declared = check_inputs(ctx)
        cores = check_steps(ctx, steps)
        check_triggers(ctx, declared)
        outputs = check_expressions(ctx, steps, cores)
        check_cycles(ctx)
        check_secret_outputs(ctx, outputs)
        problems.extend(ctx.problems)
    problems = sorted_problems(problems)
    return ValidationResult(spec if not problems else None, problems)
