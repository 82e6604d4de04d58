"""EndpointService.inputs remembers the coerced inputs of recent query strings (scalars only)."""

from __future__ import annotations

import pytest

from app.errors import Unprocessable
from app.pipelines.loader import load_yaml
from app.pipelines.spec import PipelineSpec
from app.runtime import endpoints as endpoints_module
from app.runtime.endpoints import EndpointService, Published
from app.runtime.plans import PlanCache
from app.settings import Settings

SOURCE = """\
version: 1
name: memo
inputs:
  min_score: {type: integer, default: 20}
  tags: {type: array, default: []}
triggers:
  - endpoint: {public: true}
steps:
  - id: one
    uses: core.set
    with: {value: 1}
"""


def published(revision: int = 1, *, lists: bool = False) -> Published:
    source = SOURCE if lists else SOURCE.replace("  tags: {type: array, default: []}\n", "")
    spec = PipelineSpec.model_validate(load_yaml(source).data)
    endpoint = next(t.endpoint for t in spec.triggers if t.endpoint is not None)
    return Published("acct", "pipe", "memo", revision, spec, endpoint)


@pytest.fixture
def service() -> EndpointService:
    return EndpointService(None, None, PlanCache(), Settings())  # type: ignore[arg-type]


def test_the_same_query_gives_equal_fresh_inputs(service: EndpointService) -> None:
    first = service.inputs(published(), [("min_score", "7")])
    first["min_score"] = 99  # a caller changing its inputs changes nothing remembered
    second = service.inputs(published(), [("min_score", "7")])
    assert second == {"min_score": 7}
    assert second is not first
    assert len(service._known_inputs) == 1  # remembered once


def test_inputs_with_a_list_are_not_remembered(service: EndpointService) -> None:
    query = [("tags", "a"), ("tags", "b")]
    first = service.inputs(published(lists=True), query)
    assert first["tags"] == ["a", "b"]
    first["tags"].append("c")
    assert service.inputs(published(lists=True), query)["tags"] == ["a", "b"]
    assert service.inputs(published(lists=True), [])["tags"] == []  # a list default: not remembered either
    assert not service._known_inputs


def test_a_bad_query_is_refused_every_time(service: EndpointService) -> None:
    for _ in range(2):
        with pytest.raises(Unprocessable):
            service.inputs(published(), [("min_score", "many")])


def test_each_revision_coerces_its_own_inputs(service: EndpointService) -> None:
    assert service.inputs(published(1), [("min_score", "3")])["min_score"] == 3
    assert service.inputs(published(2), [("min_score", "4")])["min_score"] == 4


def test_the_memory_is_bounded(service: EndpointService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoints_module, "REMEMBERED_INPUTS", 3)
    for score in range(10):
        assert service.inputs(published(), [("min_score", str(score))])["min_score"] == score
    assert len(service._known_inputs) == 3
    assert service.inputs(published(), [("min_score", "1")])["min_score"] == 1
