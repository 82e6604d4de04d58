"""Published endpoints: ``GET /v1/apps/{account}/{name}?input=value`` serves a pipeline's ``outputs``.

:meth:`EndpointService.find` finds the pipeline by account and pipeline name (one query; the spec of
its latest revision comes from the plan cache) and its ``endpoint`` trigger; :meth:`EndpointService.inputs`
validates and coerces the query string against the pipeline's ``inputs``; :meth:`EndpointService.serve`
runs the pipeline through the run queue (:meth:`RunService.submit`, every run is recorded), waits for it
and renders its outputs (:mod:`app.runtime.formats`).

With ``cache: DURATION`` the rendered answer is kept per (revision, inputs) in a bounded LRU
(:class:`~app.runtime.result_cache.ResultCache`): a hit starts no run, and concurrent requests for a
key that is not cached wait for ONE run. A new revision has a new key, so saving the pipeline never
serves a stale answer of the old one. Failed runs are never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.errors import MashpipeError, NotFound, Unprocessable
from app.pipelines.durations import parse_duration
from app.pipelines.inputs import coerce_inputs
from app.pipelines.spec import EndpointTrigger, PipelineSpec
from app.runtime.admission import find_revision_spec
from app.runtime.direct_runs import DirectRuns, DirectTarget
from app.runtime.formats import render
from app.runtime.limits import limit_of
from app.runtime.lookups import RememberedLookups
from app.runtime.plans import PlanCache, revision_key
from app.runtime.result_cache import ResultCache
from app.runtime.service import FINISHED, RunOutcome, RunService
from app.runtime.webhooks import submit_retrying_busy
from app.settings import Settings
from app.storage.db import Database
from app.storage.repositories import PublishedRepo

NOT_PUBLISHED = "no published pipeline at this address"
REMEMBERED_INPUTS = 1024
"""Query strings whose coerced inputs :meth:`EndpointService.inputs` remembers (the oldest goes first)."""
_SCALARS = frozenset({str, int, float, bool, type(None)})


class RunFailed(MashpipeError):
    """502: the run behind a published endpoint failed; ``details`` has the run id and its error."""

    status = 502
    code = "run_failed"


def run_failed(run_id: str, outcome: RunOutcome) -> RunFailed:
    """The 502 of a run that did not succeed."""
    error = outcome.error or {}
    message = str(error.get("message") or f"the run ended {outcome.status}")
    return RunFailed(
        f"the pipeline run failed: {message}",
        details={"run_id": run_id, "status": outcome.status, "error": outcome.error},
    )


class RunTimedOut(MashpipeError):
    """504: the run behind a published endpoint did not finish in time (it goes on)."""

    status = 504
    code = "run_timeout"


@dataclass(frozen=True, slots=True)
class Published:
    """A pipeline published by an ``endpoint`` trigger, at its latest revision."""

    account_id: str
    pipeline_id: str
    name: str
    revision: int
    spec: PipelineSpec
    endpoint: EndpointTrigger

    @property
    def ttl(self) -> float:
        """Seconds an answer is cached (0: not cached)."""
        return parse_duration(self.endpoint.cache) if self.endpoint.cache is not None else 0.0


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered answer: the body, its media type, its ETag and the run that made it."""

    body: bytes
    media_type: str
    etag: str
    run_id: str


@dataclass(frozen=True, slots=True)
class Served:
    """What to answer: the rendered body, seconds it stays fresh (None: not cached), cache hit."""

    rendered: Rendered
    max_age: int | None
    hit: bool


def cache_key(published: Published, inputs: dict[str, Any], link: str) -> tuple[str, bytes, str]:
    """The cache key of an answer: the revision, the coerced inputs, and the URL for RSS (it names it)."""
    return (
        revision_key(published.pipeline_id, published.revision),
        orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS),
        link if published.endpoint.format == "rss" else "",
    )


def etag_of(body: bytes) -> str:
    """A strong ETag of a body: a quoted 128-bit BLAKE2b hex digest."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, ``*`` matches all)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def query_inputs(spec: PipelineSpec, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The inputs of a run from a query string, validated and coerced against the pipeline's ``inputs``.

    One text per name; an ``array`` input may be given several times (``?tag=a&tag=b``), another input
    given twice is a problem. ``Unprocessable`` lists every problem at once.
    """
    values: dict[str, list[str]] = {}
    for name, value in query:
        values.setdefault(name, []).append(value)
    raw: dict[str, Any] = {}
    repeated: list[dict[str, str]] = []
    for name, given in values.items():
        declared = spec.inputs.get(name)
        if len(given) > 1 and declared is not None and declared.type == "array":
            raw[name] = given
            continue
        raw[name] = given[-1]
        if len(given) > 1:
            message = f"`{name}` is given {len(given)} times; only array inputs take several values"
            repeated.append({"input": name, "message": message})
    try:
        coerced = coerce_inputs(spec, raw, from_strings=True)
    except Unprocessable as exc:
        if not repeated:
            raise
        details = [*repeated, *(exc.details or [])]
        raise Unprocessable(exc.message, details=details) from None
    if repeated:
        raise Unprocessable(f"invalid inputs: {repeated[0]['message']}", details=repeated)
    return coerced


class EndpointService:
    """Finds published pipelines, runs them (or serves their cached answer) and renders the outputs."""

    def __init__(
        self,
        db: Database,
        runs: RunService,
        plans: PlanCache,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        direct: DirectRuns | None = None,
    ) -> None:
        self._db = db
        self.direct = direct  # runs executed in memory, recorded write-behind (None: through the queue)
        self._runs = runs
        self._plans = plans
        self._settings = settings
        self.cache: ResultCache[Rendered] = ResultCache(settings.endpoint_cache_entries, clock=clock)
        self.clock = clock
        self._known_inputs: dict[tuple[str, int, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
        self.found: RememberedLookups[tuple[str, str], Published] = RememberedLookups(
            settings.published_lookup_ttl, settings.endpoint_cache_entries, clock=lambda: self.clock()
        )

    async def find(self, account_name: str, pipeline_name: str) -> Published:
        """The published pipeline; ``NotFound`` for an unknown account or pipeline, or a pipeline without
        an ``endpoint`` trigger.

        A pipeline found is remembered for ``published_lookup_ttl`` seconds (no database read per
        request; concurrent requests wait for one read); saving or deleting it through this process
        forgets it at once (:meth:`forget`).
        """
        return await self.found.get(
            (account_name, pipeline_name), lambda: self._lookup(account_name, pipeline_name)
        )

    def forget(self, account_name: str, pipeline_name: str) -> None:
        """Forget what :meth:`find` remembers of a pipeline (it was saved or deleted)."""
        self.found.forget((account_name, pipeline_name))

    async def _lookup(self, account_name: str, pipeline_name: str) -> Published:
        async with self._db.session() as session:
            pipeline = await PublishedRepo(session).find(account_name, pipeline_name)
            if pipeline is None:
                raise NotFound(NOT_PUBLISHED)
            spec = await find_revision_spec(session, self._plans, pipeline.id, pipeline.latest_revision)
            if spec is None:
                raise NotFound(NOT_PUBLISHED)
        endpoint = next((t.endpoint for t in spec.triggers if t.endpoint is not None), None)
        if endpoint is None:
            raise NotFound(NOT_PUBLISHED)
        return Published(
            account_id=pipeline.account_id,
            pipeline_id=pipeline.id,
            name=pipeline.name,
            revision=pipeline.latest_revision,
            spec=spec,
            endpoint=endpoint,
        )

    def inputs(self, published: Published, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The run's inputs from the query string (``Unprocessable`` with every problem otherwise).

        The inputs of the last :data:`REMEMBERED_INPUTS` query strings of a revision are remembered when
        every value is a scalar (a fresh dictionary is given each time); a problem is never remembered."""
        key = (published.pipeline_id, published.revision, tuple(query))
        known = self._known_inputs.get(key)
        if known is not None:
            return dict(known)
        inputs = query_inputs(published.spec, query)
        if all(type(value) in _SCALARS for value in inputs.values()):
            if len(self._known_inputs) >= REMEMBERED_INPUTS:
                del self._known_inputs[next(iter(self._known_inputs))]  # the oldest
            self._known_inputs[key] = dict(inputs)
        return inputs

    async def serve(
        self, published: Published, inputs: dict[str, Any], *, query: dict[str, str], link: str
    ) -> Served:
        """The answer for these inputs: cached (when the endpoint caches), else from a new run.

        ``RunFailed`` (502) when the run fails, ``RunTimedOut`` (504) when it is not finished after
        ``run_wait_max_seconds``.
        """

        async def compute() -> Rendered:
            return await self._run(published, inputs, query, link)

        ttl = published.ttl
        if ttl <= 0:
            return Served(await compute(), max_age=None, hit=False)
        cached = await self.cache.get_or_compute(cache_key(published, inputs, link), ttl, compute)
        max_age = int(cached.remaining(self.cache.clock()))
        return Served(cached.value, max_age=max_age, hit=cached.hit)

    def cached(self, published: Published, inputs: dict[str, Any], *, link: str = "") -> Served | None:
        """The cached answer for these inputs when there is a fresh one (never starts a run)."""
        if published.ttl <= 0:
            return None
        cached = self.cache.get(cache_key(published, inputs, link))
        if cached is None:
            return None
        return Served(cached.value, max_age=int(cached.remaining(self.cache.clock())), hit=True)

    async def _run(
        self, published: Published, inputs: dict[str, Any], query: dict[str, str], link: str
    ) -> Rendered:
        if self.direct is not None and limit_of(published.spec) is None:
            run_id, finished = await self._run_direct(self.direct, published, inputs, query)
        else:
            run_id, finished = await self._run_queued(published, inputs, query)
        if finished is None:
            raise RunTimedOut(
                f"the run did not finish within {self._settings.run_wait_max_seconds:g}s; it goes on",
                details={"run_id": run_id},
            )
        if finished.status != "succeeded":
            raise run_failed(run_id, finished)
        body, media_type = render(
            published.endpoint.format,
            finished.outputs or {},
            title=published.name,
            description=published.spec.description,
            link=link,
        )
        return Rendered(body=body, media_type=media_type, etag=etag_of(body), run_id=run_id)

    async def _run_direct(
        self, direct: DirectRuns, published: Published, inputs: dict[str, Any], query: dict[str, str]
    ) -> tuple[str, RunOutcome | None]:
        """Execute the run in memory now (recorded write-behind, :mod:`app.runtime.direct_runs`)."""
        target = DirectTarget(
            account_id=published.account_id,
            pipeline_id=published.pipeline_id,
            pipeline_name=published.name,
            revision=published.revision,
        )
        spec = published.spec
        run_id, task = direct.start(
            target,
            lambda: spec.model_dump(mode="json", by_alias=True),
            inputs=inputs,
            trigger={"kind": "endpoint", "query": query},
        )
        done, _ = await asyncio.wait({task}, timeout=self._settings.run_wait_max_seconds)
        if not done:
            return run_id, None  # the run goes on; it is recorded when it ends
        status, outputs, error = task.result()
        return run_id, RunOutcome(status, outputs, error)

    async def _run_queued(
        self, published: Published, inputs: dict[str, Any], query: dict[str, str]
    ) -> tuple[str, RunOutcome | None]:
        """Record the run, hand it to the queue and wait for it (a pipeline with a concurrency limit)."""
        run = await submit_retrying_busy(
            self._runs,
            account_id=published.account_id,
            pipeline_name=published.name,
            inputs=inputs,
            revision=published.revision,
            trigger={"kind": "endpoint", "query": query},
        )
        if run.status in FINISHED:  # never started (the pipeline's concurrency limit skipped or failed it)
            finished: RunOutcome | None = RunOutcome(run.status, run.outputs, run.error)
        else:
            finished = await self._runs.wait_outcome(run.id, self._settings.run_wait_max_seconds)
        return run.id, finished
