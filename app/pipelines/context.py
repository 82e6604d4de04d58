"""What the validation checks share while they walk one loaded pipeline file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.engine.steps.base import CoreStep
from app.pipelines.catalog import OperationCatalog
from app.pipelines.loader import LoadedYaml
from app.pipelines.problems import Path, Problem, format_path


@dataclass(slots=True)
class StepRef:
    """Where a step reads another one: the field and the offset in its string (None: not a string)."""

    path: Path
    offset: int | None = None


@dataclass(slots=True)
class CheckContext:
    """The document, the catalogs to check against, and what the checks learn and report."""

    doc: LoadedYaml
    catalog: OperationCatalog | None
    core_steps: Mapping[str, CoreStep]
    secret_names: set[str] | None
    problems: list[Problem] = field(default_factory=list)
    step_ids: dict[str, int] = field(default_factory=dict)  # id -> index of its first step
    input_names: set[str] = field(default_factory=set)
    # step id -> step ids it reads (with, if, for_each, needs) -> where, the first time
    deps: dict[str, dict[str, StepRef]] = field(default_factory=dict)
    # core step id -> secrets its values read (with, for_each): its output may carry them
    step_secrets: dict[str, set[str]] = field(default_factory=dict)
    # core step id -> step ids whose output its values read (and so may copy into its own)
    carried: dict[str, set[str]] = field(default_factory=dict)

    @property
    def data(self) -> Any:
        return self.doc.data

    def add(self, path: Path, code: str, message: str, *, key: bool = False) -> None:
        """Report a problem at the value at ``path`` (at its key when ``key``)."""
        self.problems.append(self.doc.problem(path, code, message, key=key))

    def add_at(self, path: Path, offset: int, code: str, message: str) -> None:
        """Report a problem at character ``offset`` of the string at ``path``."""
        line, column = self.doc.string_position(path, offset)
        problem = Problem(line=line, column=column, path=format_path(path), code=code, message=message)
        self.problems.append(problem)

    def add_dep(self, step_id: str | None, target: str, ref: StepRef) -> None:
        if step_id is not None:
            self.deps.setdefault(step_id, {}).setdefault(target, ref)


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean `x`?"`` when a choice is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f"; did you mean `{close[0]}`?" if close else ""


def connector_hint(catalog: OperationCatalog, connector: str) -> str:
    """A "did you mean" for an unknown connector, when the catalog can list its keys (``keys()``)."""
    keys = getattr(catalog, "keys", None)
    if not callable(keys):
        return ""
    try:
        known = [str(key) for key in keys()]
    except Exception:  # a catalog without a usable listing: no hint
        return ""
    return did_you_mean(connector, known)
