"""``PollHarness``: follow a polling trigger across several polls in a test, with the platform's poll state.

For each polling trigger the platform keeps the connector's cursor (stored as JSON) and a bounded
window of the dedupe keys already seen. A poll passes the stored cursor, drops the items whose key
is in the window (and repeats inside the poll), starts one run per remaining item, then stores the
new cursor and remembers the new keys (the oldest are forgotten past the window). The first poll of
a trigger (no cursor yet) is its *baseline*: its items are remembered but start no run, so turning a
trigger on never fires on old data. A failed poll changes nothing: the next one starts from the
same cursor.

::

    harness = PollHarness(github, "new_issues", {"owner": "o", "repo": "r"}, credentials=PAT)
    first = await harness.poll()           # baseline: first.items == [], first.baseline is True
    route.respond(json=[new_issue, *old_issues])
    second = await harness.poll()          # second.items == [new_issue as JSON]
    third = await harness.poll()           # same answer again: third.items == [], nothing fires twice
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from app.sdk.connector import Connector
from app.sdk.invoke import PollResult
from app.sdk.retries import RetryPolicy
from app.security.egress import Resolver

DEDUPE_WINDOW = 1000
"""How many dedupe keys a trigger remembers (the most recent ones) unless ``settings.poll_dedupe_window``
says otherwise."""


@dataclass(slots=True)
class HarnessPoll:
    """What one poll of a :class:`PollHarness` did."""

    items: list[Any]
    """The items that start runs, as JSON (none on the baseline)."""
    keys: list[str]
    """Their dedupe keys."""
    duplicates: list[Any]
    """Items the connector returned but that were seen before (dropped)."""
    baseline: bool
    """Whether this was the baseline poll (items remembered, nothing started)."""
    cursor: Any
    """The cursor stored for the next poll."""
    result: PollResult
    """The raw outcome of the connector's poll."""


class PollHarness:
    """Polls one trigger again and again with in-memory poll state (see the module docstring).

    Keyword arguments are those of :func:`app.sdk.testing.run_poll`; ``window`` is the size of the
    dedupe window (default: ``settings.poll_dedupe_window``, as on the server), ``baseline=False``
    makes the first poll start runs too, ``cursor`` starts from a stored cursor (which also skips
    the baseline).
    """

    def __init__(
        self,
        connector: Connector,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        credentials: Mapping[str, Any] | None = None,
        settings: Any = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], datetime] | None = None,
        retry: RetryPolicy | None = None,
        window: int | None = None,
        baseline: bool = True,
        cursor: Any = None,
    ) -> None:
        if window is None:
            window = int(getattr(settings, "poll_dedupe_window", DEDUPE_WINDOW))
        if window < 1:
            raise ValueError("the dedupe window holds at least one key")
        operation = connector.operation(name)
        if operation is None or operation.kind != "poll":
            raise KeyError(
                f"connector {connector.key!r} has no polling trigger {name!r}; "
                f"it has {[op.name for op in connector.polls()]}"
            )
        self.connector = connector
        self.name = name
        self.params = params
        self.credentials = credentials
        self.settings = settings
        self.transport = transport
        self.resolver = resolver
        self.clock = clock
        self.retry = retry
        self.window = window
        self.cursor: Any = cursor
        self.baseline_pending = baseline and cursor is None
        self.polls = 0
        self.log: list[str] = []
        """Every line the trigger logged, across polls."""
        self.fired: list[Any] = []
        """Every item that started a run, across polls."""
        self._seen: deque[str] = deque()
        self._seen_set: set[str] = set()

    @property
    def seen(self) -> list[str]:
        """The dedupe keys remembered, oldest first."""
        return list(self._seen)

    def _remember(self, key: str) -> None:
        self._seen.append(key)
        self._seen_set.add(key)
        while len(self._seen) > self.window:
            self._seen_set.discard(self._seen.popleft())

    async def poll(self) -> HarnessPoll:
        """Poll once from the stored cursor; raises the poll's ``StepError`` (state unchanged) on failure."""
        from app.sdk.testing import run_poll

        result = await run_poll(
            self.connector,
            self.name,
            self.params,
            self.cursor,
            credentials=self.credentials,
            settings=self.settings,
            transport=self.transport,
            resolver=self.resolver,
            log=self.log,
            clock=self.clock,
            retry=self.retry,
        )
        fresh: list[Any] = []
        keys: list[str] = []
        duplicates: list[Any] = []
        in_this_poll: set[str] = set()
        for item, key in zip(result.items, result.keys, strict=True):
            if key in self._seen_set or key in in_this_poll:
                duplicates.append(item)
                continue
            in_this_poll.add(key)
            fresh.append(item)
            keys.append(key)
        for key in keys:
            self._remember(key)
        self.cursor = json.loads(json.dumps(result.cursor))  # stored as JSON, as the platform does
        self.polls += 1
        baseline = self.baseline_pending
        self.baseline_pending = False
        if baseline:
            fresh, keys = [], []
        self.fired.extend(fresh)
        return HarnessPoll(
            items=fresh,
            keys=keys,
            duplicates=duplicates,
            baseline=baseline,
            cursor=self.cursor,
            result=result,
        )
