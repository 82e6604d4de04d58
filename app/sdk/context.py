"""``Context``: the one object every operation receives, and ``StepLog``, its logger.

An operation gets ``ctx`` first. Through it, and only through it, it reaches the outside world:
``ctx.http`` (the connector-scoped HTTP client), ``ctx.request_json`` and ``ctx.paginate`` (helpers
over ``ctx.http``), ``ctx.log`` (lines that land in the step's log), ``ctx.now()`` and
``ctx.credentials`` (the connection's fields, for the rare API that needs them in a body).
New capabilities are added to ``Context``, so operation signatures never change.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx

from app.sdk.direct_json import fetch_json
from app.sdk.errors import describe_url, raise_for_response
from app.sdk.http import ConnectorHTTP
from app.sdk.json_body import decode_response
from app.sdk.json_body import has_long_number as has_long_number
from app.sdk.pagination import Pagination

MAX_LOG_LINES = 500
MAX_LOG_LINE_CHARS = 2000
REDACTED = "***"
_NONE: Any = object()  # no value decoded yet (see Context.is_fresh_json)
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})  # the credentials of a call without connection


class StepLog:
    """A small logger whose lines (``"INFO message"``) land in the step's log.

    Lines are also sent to the Python logger ``mashpipe.connectors.<key>`` at DEBUG level. Secret
    values of the connection are masked, lines are cut at 2000 characters and a step keeps at most
    500 lines (one more line says how many were dropped).
    """

    def __init__(
        self,
        lines: list[str] | None = None,
        *,
        name: str = "mashpipe.connectors",
        secrets: Iterable[str] = (),
        max_lines: int = MAX_LOG_LINES,
    ) -> None:
        self.lines: list[str] = lines if lines is not None else []
        self._name = name
        self._logger: logging.Logger | None = None  # found on the first line (most steps log none)
        self._secrets = (
            sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True)
            if secrets
            else []
        )
        self._max_lines = max_lines
        self._dropped = 0

    def _emit(self, level: str, message: str, args: tuple[object, ...]) -> None:
        text = str(message)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        if len(text) > MAX_LOG_LINE_CHARS:
            text = text[:MAX_LOG_LINE_CHARS] + "…"
        logger = self._logger
        if logger is None:
            logger = self._logger = logging.getLogger(self._name)
        logger.debug("%s %s", level, text)
        if len(self.lines) < self._max_lines:
            self.lines.append(f"{level} {text}")
            return
        self._dropped += 1
        note = f"WARNING {self._dropped} more log lines dropped"
        if self.lines and self.lines[-1].endswith("more log lines dropped"):
            self.lines[-1] = note
        else:
            self.lines.append(note)

    def debug(self, message: str, *args: object) -> None:
        self._emit("DEBUG", message, args)

    def info(self, message: str, *args: object) -> None:
        self._emit("INFO", message, args)

    def warning(self, message: str, *args: object) -> None:
        self._emit("WARNING", message, args)

    def error(self, message: str, *args: object) -> None:
        self._emit("ERROR", message, args)


def decode_json(response: httpx.Response) -> Any:
    """The JSON body of ``response`` (None when empty); :class:`InvalidResponse` when it is not JSON."""
    return decode_response(response)[0]


class Context:
    """What an operation is given: HTTP, logging, time, credentials and run coordinates."""

    def __init__(
        self,
        *,
        connector: str,
        operation: str,
        http: ConnectorHTTP,
        log: StepLog | None = None,
        credentials: Mapping[str, Any] | None = None,
        run_id: str = "",
        step_id: str = "",
        attempt: int = 1,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.connector = connector
        self.operation = operation
        self.http = http
        self.log = log or StepLog(name=f"mashpipe.connectors.{connector}")
        self.credentials: Mapping[str, Any] = (
            MappingProxyType(dict(credentials)) if credentials else _NO_FIELDS
        )
        self.run_id = run_id
        self.step_id = step_id
        self.attempt = attempt
        self._clock = clock
        self._fresh_json: Any = _NONE

    def now(self) -> datetime:
        """The current time, timezone-aware UTC (tests can fix it)."""
        return self._clock() if self._clock is not None else datetime.now(UTC)

    async def request_json(self, method: str, url: str | httpx.URL, **kwargs: Any) -> Any:
        """Send a request through ``ctx.http``; raise the typed error of a non-2xx answer; return its JSON.

        Keyword arguments are those of ``httpx``: ``params``, ``headers``, ``json``, ``content``, ``data``.
        An empty body gives None; a malformed one :class:`InvalidResponse`.
        """
        value, fresh = await fetch_json(self.http, method, url, kwargs)
        self._fresh_json = value if fresh else _NONE
        return value

    def is_fresh_json(self, value: Any) -> bool:
        """Whether ``value`` is the very object the last :meth:`request_json` returned, as orjson decoded it
        (plain JSON types only, unless changed since: see ``app.sdk.passthrough``)."""
        return value is self._fresh_json

    async def paginate(
        self,
        url: str,
        *,
        strategy: Pagination,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Yield the items of every page of ``url`` (GET), following ``strategy``; stop after ``limit`` items.

        Leaving the loop early? Close the generator: ``async with contextlib.aclosing(ctx.paginate(...))``.

        Each page is checked like :meth:`request_json`. After ``strategy.max_pages`` pages the
        iteration stops and a warning is logged.
        """
        page = strategy.first(url, dict(params or {}))
        produced = 0
        for _ in range(strategy.max_pages):
            response = await self.http.request("GET", page.url, params=page.params or None, headers=headers)
            raise_for_response(response)
            body = decode_json(response)
            items = strategy.items(body)
            for item in items:
                yield item
                produced += 1
                if limit is not None and produced >= limit:
                    return
            following = strategy.next(page, response, body, items)
            if following is None:
                return
            page = following
        self.log.warning(
            "stopped after %s pages of %s (max_pages); later pages were not read",
            strategy.max_pages,
            describe_url(url),
        )
