"""Every core step documents itself with a runnable example; run each one and check its output."""

from __future__ import annotations

import importlib
import json
import re
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from app.engine.steps import CORE_STEPS
from app.engine.types import StepStatus
from tests.engine.fakes import pipeline, run


def _block(doc: str, title: str) -> str:
    match = re.search(rf"^{title}::\n\n((?:    .*\n|\n)+)", doc, re.MULTILINE)
    assert match, f"the docstring has no `{title}::` block"
    return textwrap.dedent(match.group(1))


@pytest.mark.parametrize("name", sorted(CORE_STEPS))
async def test_docstring_example_runs(name):
    module = importlib.import_module(f"app.engine.steps.{name}")
    doc = module.__doc__ or ""
    assert doc.startswith(f"``core.{name}``"), "the docstring starts with the step's name"
    steps = YAML(typ="safe", pure=True).load(_block(doc, "Example"))
    expected = json.loads(_block(doc, "Output"))
    assert [step["uses"] for step in steps][-1] == f"core.{name}"
    result = await run(pipeline(steps))
    last = result.steps[steps[-1]["id"]]
    assert last.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED), last.error
    assert last.output == expected


def test_every_core_step_is_in_the_run_semantics_doc():
    doc = (Path(__file__).parents[2] / "docs" / "run-semantics.md").read_text(encoding="utf-8")
    missing = [name for name in CORE_STEPS if f"`core.{name}`" not in doc]
    assert missing == [], f"docs/run-semantics.md does not describe: {missing}"
