"""A bounded cache of parsed specs and compiled plans, keyed by pipeline revision id.

A revision is immutable, so its spec and plan never go stale: compiling every expression of a pipeline
happens once per revision and process, not once per run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from app.engine.plan import Plan, compile_plan
from app.pipelines.spec import PipelineSpec


@dataclass(frozen=True, slots=True)
class CompiledRevision:
    """The spec of a revision and its compiled plan."""

    spec: PipelineSpec
    plan: Plan


class PlanCache:
    """Least-recently-used cache of :class:`CompiledRevision` by revision id."""

    def __init__(self, max_entries: int = 256) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._specs: OrderedDict[str, PipelineSpec] = OrderedDict()
        self._plans: OrderedDict[str, CompiledRevision] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def spec(self, revision_id: str, spec_document: dict[str, Any]) -> PipelineSpec:
        """The parsed spec of a revision (``spec_document`` is the stored JSON, parsed on a miss)."""
        with self._lock:
            cached = self._plans.get(revision_id)
            if cached is not None:
                return cached.spec
            spec = self._specs.get(revision_id)
            if spec is not None:
                self._specs.move_to_end(revision_id)
                return spec
        spec = PipelineSpec.model_validate(spec_document)
        with self._lock:
            self._specs[revision_id] = spec
            _trim(self._specs, self._max)
        return spec

    def get(self, revision_id: str, spec_document: dict[str, Any]) -> CompiledRevision:
        """The spec and compiled plan of a revision, compiled on a miss."""
        with self._lock:
            cached = self._plans.get(revision_id)
            if cached is not None:
                self._plans.move_to_end(revision_id)
                return cached
        spec = self.spec(revision_id, spec_document)
        compiled = CompiledRevision(spec=spec, plan=compile_plan(spec))
        with self._lock:
            self._plans[revision_id] = compiled
            self._specs.pop(revision_id, None)
            _trim(self._plans, self._max)
        return compiled


def _trim(cache: OrderedDict[str, Any], max_entries: int) -> None:
    while len(cache) > max_entries:
        cache.popitem(last=False)
