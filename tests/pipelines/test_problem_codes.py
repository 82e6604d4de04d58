"""Problem codes are stable and documented: every code is in the table and in the docs."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from app.pipelines.problems import PROBLEM_CODES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "pipeline-validation.md"
SOURCES = sorted((ROOT / "app" / "pipelines").glob("*.py"))
EXPECTED = sorted((ROOT / "tests" / "golden" / "invalid").glob("*.expected.json"))


def test_every_code_is_documented() -> None:
    table = DOC.read_text().split("## Problem codes", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == set(PROBLEM_CODES)


def _reported_codes(path: Path) -> set[str]:
    """Codes given as literals to ``add``, ``add_at``, ``problem``, ``_problem`` and ``code=``."""
    codes: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("add", "add_at", "problem", "_problem"):
            literals = [a.value for a in node.args if isinstance(a, ast.Constant) and type(a.value) is str]
            codes.update(literals[:1])
        codes.update(
            k.value.value
            for k in node.keywords
            if k.arg == "code" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
        )
    return codes


def test_every_code_reported_by_the_checks_is_known() -> None:
    reported = set().union(*(_reported_codes(path) for path in SOURCES))
    assert len(reported) > 30
    assert reported <= set(PROBLEM_CODES)


def test_the_golden_files_exercise_every_code() -> None:
    exercised = {p["code"] for path in EXPECTED for p in json.loads(path.read_text())["problems"]}
    assert exercised <= set(PROBLEM_CODES)
    # too_large needs a file over 256 KiB: tests/pipelines/test_loader.py covers it with a small limit
    assert set(PROBLEM_CODES) - exercised == {"too_large"}
