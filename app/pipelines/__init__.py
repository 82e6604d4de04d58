"""The pipeline language: YAML loading with positions, spec models, validation, CEL expressions.

Public surface (import from the modules; this package re-exports nothing, to stay free of
import cycles with the engine):

* :mod:`app.pipelines.validate` — ``validate_source(source, catalog=None, *, max_bytes,
  secret_names, core_steps) -> ValidationResult`` (``.spec``, ``.problems``, ``.ok``, ``.error()``),
  ``dependencies(spec)``;
* :mod:`app.pipelines.inputs` — ``coerce_inputs(spec, given, *, from_strings=False)``;
* :mod:`app.pipelines.schema` — ``pipeline_json_schema()``, ``write_schema(path)``;
* :mod:`app.pipelines.loader` — ``load_yaml(source, *, max_bytes, max_depth)`` with positions;
* :mod:`app.pipelines.problems` — ``Problem``, ``PROBLEM_CODES``;
* :mod:`app.pipelines.spec` — the models; :mod:`app.pipelines.expressions` — CEL;
  :mod:`app.pipelines.catalog` — what validation asks of the connector registry.

Internals: ``structure`` (shape errors), ``step_checks``, ``trigger_checks``, ``expr_checks``,
``graph`` (the checks), ``context`` (their shared state), ``cel_lexer``, ``references`` and
``cel_rewrite`` (reading CEL text). See ``docs/pipeline-validation.md``.
"""
