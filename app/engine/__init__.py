"""The pure executor: DAG order, concurrency, retry, timeout, for_each, cancellation. No SQL, no FastAPI.

Entry points (import them from their modules; this package imports nothing, so that
``app.engine.steps`` stays cheap to import for validation)::

    from app.engine.executor import compile_plan, execute   # Plan, RunRequest -> RunResult
    from app.engine.steps import CORE_STEPS                 # the built-in core.* steps
    from app.engine.types import RunRequest, RunResult, OperationCall, ...

See ``app/engine/executor.py`` for the run semantics and ``app/engine/steps/`` for each step.
"""
