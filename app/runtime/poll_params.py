"""The ``with`` of a polling trigger, with its ``${{ }}`` evaluated when the poll runs.

A poll runs before any run exists, so its parameters see ``secrets`` (the account's secrets, resolved
at the edge of the call, as a run's are), ``inputs`` (the pipeline's defaults: what the runs the poll
starts get) and ``trigger`` (``{kind: "poll"}``); the pipeline validator refuses ``steps`` and ``run``
there. A literal ``with`` is handed over as it is, without compiling
anything. A secret the account does not have fails the poll with ``secret_not_found`` (the poll backs off
like any failed poll); the values of the secrets read are masked in what a failure records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import StepError
from app.pipelines.cel_lexer import has_template
from app.pipelines.expressions import Scope, compile_value, iter_expressions
from app.runtime.masking import Masker
from app.runtime.trigger_secrets import SecretsResolver, read_secrets

InputsProvider = Callable[[], Awaitable[dict[str, Any]]]
"""The pipeline's inputs as a run started by the poll gets them (called only when ``inputs`` is read)."""


@dataclass(frozen=True, slots=True)
class PollParams:
    """The evaluated parameters of one poll, and a masker of the secret values they read."""

    values: dict[str, Any]
    masker: Masker = field(default_factory=Masker)


async def evaluate_poll_params(
    params: Mapping[str, Any],
    account_id: str,
    secrets: SecretsResolver | None,
    inputs: InputsProvider | None = None,
) -> PollParams:
    """``params`` with every ``${{ }}`` evaluated (``StepError`` when a secret is missing or an expression
    fails)."""
    values = dict(params)
    if not has_template(values):
        return PollParams(values)
    compiled = compile_value(values)
    resolved, missing = await read_secrets(compiled, account_id, secrets)
    if missing:
        raise StepError(
            f"the poll's `with` reads secrets the account does not have: {', '.join(missing)}",
            code="secret_not_found",
            details={"missing": missing},
        )
    masker = Masker(resolved.values())
    reads_inputs = any("inputs" in expression.roots() for expression in iter_expressions([compiled]))
    given = await inputs() if reads_inputs and inputs is not None else {}
    scope = Scope({"secrets": resolved, "inputs": given, "trigger": {"kind": "poll"}})
    evaluated = compiled.evaluate(scope)
    if not isinstance(evaluated, dict):
        raise StepError("the poll's `with` must give an object", code="invalid_params")
    return PollParams(evaluated, masker)


__all__ = ["InputsProvider", "PollParams", "evaluate_poll_params"]
