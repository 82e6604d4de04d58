"""The size limit of a run's outputs (``run_outputs_max_bytes``).

A step's output over ``step_output_max_bytes`` is stored as a preview (``output_truncated``): the run
goes on, later steps still see the whole value. A run's *outputs* are its result (what the API, a
published endpoint or a caller receives), so instead of being cut they fail the run with a clear error
naming the size and the setting.
"""

from __future__ import annotations

from typing import Any

from app.storage.types import dumps_json_bytes

OUTPUTS_TOO_LARGE = "outputs_too_large"


def outputs_error(outputs: dict[str, Any] | None, max_bytes: int) -> dict[str, Any] | None:
    """The run error when ``outputs`` (as JSON) are larger than ``max_bytes``, else None."""
    if outputs is None:
        return None
    size = len(dumps_json_bytes(outputs))
    if size <= max_bytes:
        return None
    largest = max(outputs, key=lambda name: len(dumps_json_bytes(outputs[name])), default=None)
    return {
        "code": OUTPUTS_TOO_LARGE,
        "message": (
            f"the run's outputs are {size} bytes as JSON; the limit is {max_bytes} "
            f"(MASHPIPE_RUN_OUTPUTS_MAX_BYTES); the largest is `{largest}`: select less of it"
        ),
        "details": {"size": size, "limit": max_bytes, "largest": largest},
    }
