"""A problem found in a pipeline file, with where it is: ``{line, column, path, code, message}``.

Problems are data, never exceptions: the loader and the validator collect every one of them so a
user sees all that is wrong at once. ``code`` is stable (tests, editors and the API rely on it);
``message`` is for people. ``path`` reads like ``steps[3].with.url`` (``""`` for the whole file).

>>> format_path(("steps", 3, "with", "Content-Type"))
'steps[3].with["Content-Type"]'
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PathKey = str | int
Path = tuple[PathKey, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(path: Path) -> str:
    """``("steps", 3, "with", "url")`` as ``steps[3].with.url``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


class Problem(BaseModel):
    """One problem, 1-based ``line``/``column`` of the offending node (or the nearest existing one)."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=1, description="1-based line of the offending node")
    column: int = Field(ge=1, description="1-based column of the offending node")
    path: str = Field(description='Where in the document, like `steps[3].with.url` ("" for the whole file)')
    code: str = Field(description="Stable problem code, e.g. unknown_key, expression_syntax")
    message: str = Field(description="What is wrong, for people")

    def sort_key(self) -> tuple[int, int, str, str]:
        return (self.line, self.column, self.code, self.message)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message} [{self.code}]"


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in file order, each reported once."""
    seen: set[tuple[Any, ...]] = set()
    unique: list[Problem] = []
    for problem in sorted(problems, key=Problem.sort_key):
        key = (problem.line, problem.column, problem.code, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
