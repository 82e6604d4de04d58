"""A bounded cache of parsed specs and compiled plans, keyed by pipeline revision.

A revision is immutable, so its spec and plan never go stale: compiling every expression of a pipeline
happens once per revision and process, not once per run. The key is ``(pipeline id, revision
number)`` (:func:`revision_key`), which a run row carries, so a cached revision is not even read
from the database again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.engine.plan import Plan, compile_plan
from app.pipelines.spec import PipelineSpec


def revision_key(pipeline_id: str, number: int) -> str:
    """The cache key of revision ``number`` of a pipeline."""
    return f"{pipeline_id}/{number}"


@dataclass(frozen=True, slots=True)
class CompiledRevision:
    """The spec of a revision and its compiled plan."""

    spec: PipelineSpec
    plan: Plan


SpecSource = dict[str, Any] | Callable[[], dict[str, Any]]
"""The stored spec document, or a function giving it (called only on a cache miss)."""


class PlanCache:
    """Least-recently-used cache of specs and :class:`CompiledRevision` by revision key."""

    def __init__(self, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._specs: OrderedDict[str, PipelineSpec] = OrderedDict()
        self._plans: OrderedDict[str, CompiledRevision] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def cached_spec(self, key: str) -> PipelineSpec | None:
        """The spec of a revision when it is cached, else None."""
        with self._lock:
            compiled = self._plans.get(key)
            if compiled is not None:
                return compiled.spec
            spec = self._specs.get(key)
            if spec is not None:
                self._specs.move_to_end(key)
            return spec

    def cached(self, key: str) -> CompiledRevision | None:
        """The compiled revision when it is cached, else None."""
        with self._lock:
            compiled = self._plans.get(key)
            if compiled is not None:
                self._plans.move_to_end(key)
            return compiled

    def spec(self, key: str, document: SpecSource) -> PipelineSpec:
        """The parsed spec of a revision (parsed from ``document`` on a miss)."""
        spec = self.cached_spec(key)
        if spec is not None:
            return spec
        spec = PipelineSpec.model_validate(document() if callable(document) else document)
        with self._lock:
            self._specs[key] = spec
            _trim(self._specs, self._max)
        return spec

    def get(self, key: str, document: SpecSource) -> CompiledRevision:
        """The spec and compiled plan of a revision, compiled on a miss."""
        compiled = self.cached(key)
        if compiled is not None:
            return compiled
        spec = self.spec(key, document)
        compiled = CompiledRevision(spec=spec, plan=compile_plan(spec))
        with self._lock:
            self._plans[key] = compiled
            self._specs.pop(key, None)
            _trim(self._plans, self._max)
        return compiled


def _trim(cache: OrderedDict[str, Any], max_entries: int) -> None:
    while len(cache) > max_entries:
        cache.popitem(last=False)
