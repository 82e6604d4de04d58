"""Attempts of one call: a timeout per attempt, and retries with backoff for transient failures.

Only errors with a ``retry_kind`` (``timeout``, ``http_429``, ``http_5xx``, ``connection``) that the
step's ``retry.on`` allows are retried, up to ``retry.attempts`` attempts in all. The wait before
attempt ``n + 1`` is ``retry.delay(n)``, or the error's ``retry_after`` when that is longer (an
upstream's ``Retry-After``); an upstream asking for more than :data:`MAX_RETRY_AFTER` seconds is
not retried: the step fails with its error at once rather than holding a worker that long.

Any exception that is not a :class:`~app.errors.MashpipeError` becomes a step error with code
``internal_error`` naming the exception; cancellation is never swallowed.

The timeout of an attempt is armed only when the attempt suspends: an attempt
that finishes without ever waiting (a core step over a small list, a cached answer) could not be
interrupted by a timer anyway, and scheduling and cancelling one costs more than such a step.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from app.errors import MashpipeError, StepError, StepTimeout
from app.pipelines.spec import RetrySpec

MAX_RETRY_AFTER = 300.0
_T = TypeVar("_T")

sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
"""How the engine waits between attempts (tests replace it)."""


def describe_seconds(seconds: float) -> str:
    """``0.5s``, ``10s``, ``2m30s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s" if rest else f"{minutes}m"


def internal_error(exc: BaseException, label: str) -> StepError:
    """A step error for an unexpected Python exception, precise enough to debug from the run record."""
    text = str(exc)
    return StepError(
        f"{label} raised {type(exc).__name__}{': ' + text if text else ''}", code="internal_error"
    )


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Go on with ``coro``, which has already run up to its first suspension (yielding ``yielded``):
    what ``await coro`` would have done from there (values sent and exceptions thrown, cancellation
    included, are passed on)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def attempt_once(fn: Callable[[_T], Awaitable[Any]], arg: _T, limit: float, label: str) -> Any:
    """One attempt: ``await fn(arg)`` within ``limit`` seconds. A timeout raises :class:`StepTimeout`,
    any exception that is not a :class:`MashpipeError` a step error ``internal_error`` naming it.

    The coroutine is first run up to its first suspension; only an attempt that suspends gets its
    timer, with the deadline counted from the start (a timer can only interrupt a suspended one)."""
    try:
        call = fn(arg)
        if type(call) is not types.CoroutineType:
            async with asyncio.timeout(limit):
                return await call
        started = time.monotonic()
        try:
            yielded = call.send(None)
        except StopIteration as stop:
            return stop.value
        left = limit - (time.monotonic() - started)  # (the loop's clock may be another one)
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + left):
            return await _resumed(call, yielded)
    except TimeoutError:
        raise StepTimeout(f"timed out after {describe_seconds(limit)}") from None
    except MashpipeError:
        raise
    except Exception as exc:
        raise internal_error(exc, label) from exc


async def attempt(
    once: Callable[[int], Awaitable[Any]],
    *,
    limit: float,
    retry: RetrySpec | None,
    log: list[str],
    label: str,
    on_attempt: Callable[[int], None],
    first: int = 1,
) -> Any:
    """Run ``once(attempt_number)`` until it succeeds or may not be retried; raises the last error.

    ``limit`` is the timeout of each attempt in seconds; ``label`` names the call in messages
    (``http.get_json``); ``on_attempt`` is told each attempt number before it starts. ``first`` is the
    number of the first attempt made here (above 1 when a resumed run goes on with a step that an
    interrupted execution already attempted: the retry budget is shared). Each attempt is
    :func:`attempt_once` (internal errors have no ``retry_kind``: never retried).
    """
    number = first if first > 1 else 1
    while True:
        on_attempt(number)
        error: MashpipeError
        try:
            return await attempt_once(once, number, limit, label)
        except MashpipeError as exc:
            error = exc
        kind = getattr(error, "retry_kind", None)
        if retry is None or number >= retry.attempts or not retry.retries(kind):
            raise error
        delay = retry.delay(number)
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > delay:
            if retry_after > MAX_RETRY_AFTER:
                wait, most = describe_seconds(retry_after), describe_seconds(MAX_RETRY_AFTER)
                log.append(
                    f"attempt {number} failed ({error.code}): {error.message}; the upstream asks to wait "
                    f"{wait}, more than {most}: giving up"
                )
                raise error
            delay = float(retry_after)
        log.append(
            f"attempt {number} failed ({error.code}): {error.message}; retrying in {describe_seconds(delay)}"
        )
        await sleep(delay)
        number += 1
