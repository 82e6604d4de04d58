"""Retries of a connector's HTTP requests inside one call, honouring ``Retry-After`` (with tenacity).

Which requests: idempotent ones (``GET``, ``HEAD``, ``OPTIONS``, ``PUT``, ``DELETE``, or any request
carrying an ``Idempotency-Key`` header) whose body can be sent again. When: the answer is 429, 500,
502, 503 or 504, or the connection failed (:class:`~app.sdk.errors.ConnectionFailed`). How long:
the upstream's ``Retry-After`` when it gives one, else an exponential backoff with jitter
(``initial_wait * 2**(n-1)`` plus up to ``initial_wait``), never more than ``max_wait``. An upstream
asking for more than ``max_wait`` is not retried here: its answer is returned as it is, so the
operation raises :class:`~app.sdk.errors.RateLimited` with ``retry_after`` and the step's own
``retry:`` decides.

How it combines with the engine's step retry (no multiplicative storms):

* the budget (``settings.http_retries``) belongs to one *call* of an operation, shared by all its
  requests: a paginated read of 50 pages gets at most ``http_retries`` retries in all, not per page;
* only a step's first attempt gets a budget: when the engine retries a step (``retry:`` in the
  pipeline), attempts 2, 3... send each request once. So a request hitting a failing upstream is sent
  at most ``1 + http_retries + (retry.attempts - 1)`` times: the counts add up, they never multiply;
* the step's ``timeout`` bounds the whole attempt, SDK waits included.

Each retry writes a line to the step's log (``GET https://... answered 503; retry 1 of 2 in 1.5s``).
The testing harness uses no retries unless a test passes a :class:`RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from app.sdk.errors import ConnectionFailed, describe_url, parse_retry_after

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_HEADER = "idempotency-key"

Sleep = Callable[[float], Awaitable[Any]]
Send = Callable[[], Awaitable[httpx.Response]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries a call may make, and how long each wait may be (``sleep`` is replaceable in tests)."""

    retries: int = 2
    max_wait: float = 10.0
    initial_wait: float = 0.5
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.max_wait < 0 or self.initial_wait < 0:
            raise ValueError("RetryPolicy values must not be negative")

    @classmethod
    def from_settings(cls, settings: Any) -> RetryPolicy:
        """The policy of ``settings.http_retries`` and ``settings.http_retry_max_wait``."""
        retries = int(getattr(settings, "http_retries", 2))
        max_wait = float(getattr(settings, "http_retry_max_wait", 10.0))
        if cls is RetryPolicy:
            return _policy(retries, max_wait)
        return cls(retries=retries, max_wait=max_wait)

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries at all (the testing harness' default)."""
        return cls(retries=0)

    def budget(self, *, attempt: int = 1, note: Callable[[str], None] | None = None) -> RetryBudget:
        """The budget of one call: ``retries`` on a step's first attempt, none on the engine's retries."""
        return RetryBudget(self, self.retries if attempt <= 1 else 0, note=note)

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1-based) when the upstream gives no ``Retry-After``."""
        base = self.initial_wait * (2 ** (retry_number - 1))
        jitter: float = random.uniform(0, self.initial_wait)
        return float(min(self.max_wait, base + jitter))


@functools.lru_cache(maxsize=64)
def _policy(retries: int, max_wait: float) -> RetryPolicy:
    """``RetryPolicy(retries=..., max_wait=...)``, remembered (a policy is frozen: one serves every call)."""
    return RetryPolicy(retries=retries, max_wait=max_wait)


def replayable(request: httpx.Request) -> bool:
    """Whether ``request`` may be sent again: idempotent (or keyed) with a body held in memory."""
    if not isinstance(request.stream, httpx.ByteStream):
        return False  # a streamed or multipart body cannot be replayed safely
    return request.method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in request.headers


class RetryBudget:
    """The retries left to one operation call; shared by every request the call sends."""

    def __init__(
        self, policy: RetryPolicy, remaining: int, *, note: Callable[[str], None] | None = None
    ) -> None:
        self.policy = policy
        self.remaining = remaining
        self.used = 0
        self._note = note

    def _hint(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("retry-after"))

    def _retry_response(self, response: httpx.Response) -> bool:
        if response.status_code not in RETRY_STATUSES:
            return False
        hint = self._hint(response)
        return hint is None or hint <= self.policy.max_wait

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        return self.remaining <= 0

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            hint = self._hint(outcome.result())
            if hint is not None:
                return min(hint, self.policy.max_wait)
        return self.policy.backoff(self.used + 1)

    async def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        self.remaining -= 1
        self.used += 1
        outcome = state.outcome
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if outcome is None:
            return
        if outcome.failed:
            error = outcome.exception()
            what = error.message if isinstance(error, ConnectionFailed) else repr(error)
        else:
            response: httpx.Response = outcome.result()
            await response.aclose()  # never read: the retry replaces it
            request = response.request
            what = f"{request.method} {describe_url(request.url)} answered {response.status_code}"
        if self._note is not None:
            self._note(f"{what}; retry {self.used} in {wait:.1f}s")

    @staticmethod
    def _give_up(state: tenacity.RetryCallState) -> httpx.Response:
        assert state.outcome is not None
        result: httpx.Response = state.outcome.result()  # raises the last error when it failed
        return result

    async def send(self, request: httpx.Request, send: Send) -> httpx.Response:
        """``send()`` (one sending of ``request``), retried while the budget and the policy allow.

        Returns the last response (a retryable status included, once the budget is spent) or raises
        the last :class:`ConnectionFailed`; any other error is raised at once.
        """
        if self.remaining <= 0 or not replayable(request):
            return await send()
        # The common case costs one plain send: tenacity (a new AsyncRetrying, its coroutine checks)
        # is entered only once the first answer asks for a retry.
        first: httpx.Response | ConnectionFailed
        try:
            first = await send()
        except ConnectionFailed as exc:
            first = exc
        return await self.resume(request, first, send)

    async def resume(
        self, request: httpx.Request, first: httpx.Response | ConnectionFailed, send: Send
    ) -> httpx.Response:
        """What :meth:`send` does once ``request`` was sent a first time, with the outcome ``first``.

        (The direct path of ``app.sdk.direct_json`` sends a request before building its
        ``httpx.Request``; it builds one only when the answer needs it, and goes on from here.)
        """
        if isinstance(first, ConnectionFailed):
            if self.remaining <= 0 or not replayable(request):
                raise first
        elif self.remaining <= 0 or not replayable(request) or not self._retry_response(first):
            return first
        return await self._retry(first, send)

    async def _retry(self, first: httpx.Response | ConnectionFailed, send: Send) -> httpx.Response:
        """The tenacity loop, its first attempt's outcome being ``first`` (already sent)."""
        pending: list[httpx.Response | ConnectionFailed] = [first]
        retrying = tenacity.AsyncRetrying(
            retry=(
                tenacity.retry_if_result(self._retry_response)
                | tenacity.retry_if_exception_type(ConnectionFailed)
            ),
            stop=self._stop,
            wait=self._wait,
            sleep=self.policy.sleep,
            before_sleep=self._before_sleep,
            retry_error_callback=self._give_up,
        )

        async def once() -> httpx.Response:  # tenacity awaits only what it sees as a coroutine function
            if pending:  # the first attempt: its outcome is known
                outcome = pending.pop()
                if isinstance(outcome, ConnectionFailed):
                    raise outcome
                return outcome
            return await send()

        response: httpx.Response = await retrying(once)
        return response
