"""A small OperationCatalog for the pipeline-language tests: connectors `http` and `demo`.

The tests of `app.pipelines` do not depend on the real connector registry.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasPath, BaseModel, ConfigDict, Field, model_validator


class RequestParams(BaseModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    timeout: float | None = Field(default=None, gt=0)


class GetJsonParams(BaseModel):
    url: str
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)


class EchoParams(BaseModel):
    message: str
    times: int = Field(default=1, ge=1, le=10)


class ListThingsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=10, ge=1, le=100)
    tag: str | None = None


class AnythingParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class WindowParams(BaseModel):
    """Checks across fields, and reads a nested key."""

    start: int
    end: int
    owner: str | None = Field(default=None, validation_alias=AliasPath("meta", "owner"))

    @model_validator(mode="after")
    def _ordered(self) -> WindowParams:
        if self.start >= self.end:
            raise ValueError("`start` must come before `end`")
        return self


class NewThingParams(BaseModel):
    folder: str
    include_drafts: bool = False


OPERATIONS: dict[str, dict[str, type[BaseModel]]] = {
    "http": {"request": RequestParams, "get_json": GetJsonParams},
    "demo": {
        "echo": EchoParams,
        "list_things": ListThingsParams,
        "anything": AnythingParams,
        "window": WindowParams,
    },
}
POLLS: dict[str, dict[str, type[BaseModel]]] = {"http": {}, "demo": {"new_thing": NewThingParams}}


class FakeCatalog:
    """Implements ``app.pipelines.catalog.OperationCatalog`` (and the optional ``keys()``)."""

    def keys(self) -> list[str]:
        return sorted(OPERATIONS)

    def has_connector(self, key: str) -> bool:
        return key in OPERATIONS

    def operation_names(self, key: str) -> list[str]:
        return sorted(OPERATIONS.get(key, {}))

    def input_model(self, uses: str) -> type[BaseModel] | None:
        key, _, name = uses.partition(".")
        return OPERATIONS.get(key, {}).get(name)

    def poll_names(self, key: str) -> list[str]:
        return sorted(POLLS.get(key, {}))

    def poll_input_model(self, uses: str) -> type[BaseModel] | None:
        key, _, name = uses.partition(".")
        return POLLS.get(key, {}).get(name)
