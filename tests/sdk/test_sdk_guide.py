"""The connector guide (docs/writing-connectors.md) covers the whole SDK and only names real things."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import app.sdk
import app.sdk.testing
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "writing-connectors.md").read_text(encoding="utf-8")


def test_every_public_name_of_the_sdk_is_in_the_guide() -> None:
    missing = [name for name in app.sdk.__all__ if name not in GUIDE]
    assert missing == [], "document these in docs/writing-connectors.md"
    for name in ("run_action", "run_poll", "run_webhook", "PollHarness", "check_connector"):
        assert name in GUIDE
        assert hasattr(app.sdk.testing, name)


def test_python_examples_parse() -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        ast.parse(block)


def test_settings_named_in_the_guide_exist() -> None:
    named = set(re.findall(r"MASHPIPE_([A-Z_]+)", GUIDE))
    assert {"HTTP_RETRIES", "HTTP_RETRY_MAX_WAIT", "HTTP_CACHE_MAX_BYTES", "CONNECTORS"} <= named
    for name in named:
        assert name.lower() in Settings.model_fields, name


def test_the_readme_links_the_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/writing-connectors.md)" in readme
    assert "(docs/connectors/index.md)" in readme
