"""The one base class of every API model, the page envelope and the error envelope."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class APIModel(BaseModel):
    """Base of every request and response model: unknown fields in a request are refused."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


T = TypeVar("T")


class Page(APIModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` back as ``cursor`` to get the next page."""

    items: list[T]
    total: int = Field(
        description=(
            "How many items match the filters, across all pages (at least this many when not `total_exact`)"
        )
    )
    next_cursor: str | None = Field(default=None, description="Cursor of the next page; null on the last")
    total_exact: bool = Field(
        default=True,
        description=(
            "True when `total` is the exact count. False when the count stopped at a cap (runs only, "
            "`MASHPIPE_RUNS_TOTAL_MAX`): at least `total` items match"
        ),
    )

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        """``Page[RunSummary]`` is named ``RunSummaryPage`` in the OpenAPI document."""
        return f"{getattr(params[0], '__name__', 'Item')}Page"


class ErrorBody(APIModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`, `pipeline_invalid`")
    message: str = Field(description="Human-readable explanation")
    details: Any = Field(default=None, description="Structured details (validation problems, ...)")


class ErrorResponse(APIModel):
    """The shape of every 4xx/5xx answer of the API."""

    error: ErrorBody
