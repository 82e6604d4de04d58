"""Engine tests run the generated per-item functions from a value's first bind.

In production a value's function is generated at its second bind (``GENERATE_AT_BIND``: a plan run
once is not worth compiling for); here every differential test then compares the generated code
with the general path and CEL. ``test_compiled_gen`` checks the production setting itself.
"""

from __future__ import annotations

import pytest

from app.engine import evaluation


@pytest.fixture(autouse=True)
def generate_at_first_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "GENERATE_AT_BIND", 1)
