"""Pagination strategies for ``ctx.paginate(url, strategy=...)``.

Each strategy says where the items of a page are, and how to ask for the next page:

* :class:`LinkHeader` follows ``Link: <...>; rel="next"`` (GitHub, GitLab...).
* :class:`CursorInBody` reads the next cursor in the JSON body and sends it as a query parameter.
* :class:`PageNumber` counts pages (``?page=1``, ``?page=2``...).
* :class:`Offset` moves an offset by the number of items received (``?offset=0&limit=100``).

Every strategy stops after ``max_pages`` pages (default 100): ``ctx.paginate`` then logs a warning
in the step's log, so an endless or enormous listing never hangs a run.

``items_path`` and ``cursor_path`` are dotted paths into the JSON body (``"data.items"``,
``"meta.next_cursor"``; a number selects a list element); ``None`` means the body itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from app.sdk.errors import ConnectorDefinitionError, InvalidResponse

DEFAULT_MAX_PAGES = 100
_MISSING = object()


@dataclass(slots=True)
class PageRequest:
    """The URL and query parameters of one page."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)


def get_path(data: Any, path: str | None, default: Any = _MISSING) -> Any:
    """The value at a dotted ``path`` of JSON ``data`` (``None`` path: ``data``); ``default`` when absent."""
    if path is None:
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and part.lstrip("-").isdigit()
            and -len(current) <= int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            if default is _MISSING:
                raise InvalidResponse(f"the response has no `{path}`")
            return default
    return current


def _check_max_pages(max_pages: int) -> int:
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise ConnectorDefinitionError(f"max_pages must be a positive integer, got {max_pages!r}")
    return max_pages


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConnectorDefinitionError(f"{name} must be a positive integer, got {value!r}")


class Pagination:
    """Base of the strategies: items at ``items_path``; subclasses decide the first and next requests."""

    def __init__(self, *, items_path: str | None = None, max_pages: int = DEFAULT_MAX_PAGES) -> None:
        self.items_path = items_path
        self.max_pages = _check_max_pages(max_pages)

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        """The request of the first page."""
        return PageRequest(url, dict(params))

    def items(self, body: Any) -> list[Any]:
        """The items of one page (a list, else :class:`InvalidResponse`)."""
        found = get_path(body, self.items_path)
        if found is None:
            return []
        if not isinstance(found, list):
            where = f"at `{self.items_path}`" if self.items_path else "as the body"
            raise InvalidResponse(f"expected a list of items {where}, got {type(found).__name__}")
        return found

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        """The request of the next page, or None when this page was the last."""
        raise NotImplementedError


class LinkHeader(Pagination):
    """Follow the ``Link`` header's ``rel="next"`` URL until there is none."""

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        # The link carries the whole query; ctx.http sends credentials only to the connector's origin.
        return PageRequest(str(response.url.join(link)), {})


class CursorInBody(Pagination):
    """Send the cursor found at ``cursor_path`` of each page as query parameter ``param``; stop when empty."""

    def __init__(
        self,
        cursor_path: str,
        param: str = "cursor",
        items_path: str | None = None,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(items_path=items_path, max_pages=max_pages)
        if not cursor_path or not param:
            raise ConnectorDefinitionError("CursorInBody needs a cursor_path and a param")
        self.cursor_path = cursor_path
        self.param = param

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        cursor = get_path(body, self.cursor_path, None)
        if cursor in (None, "", False) or not items:
            return None
        if isinstance(cursor, dict | list):
            raise InvalidResponse(f"the cursor at `{self.cursor_path}` is not a scalar")
        if current.params.get(self.param) == cursor:
            return None  # the API handed back the cursor we sent: the listing would loop
        return PageRequest(current.url, {**current.params, self.param: cursor})


class PageNumber(Pagination):
    """Ask for page ``start``, ``start + 1``...; stop on an empty page or a page shorter than ``size``."""

    def __init__(
        self,
        param: str = "page",
        size_param: str | None = None,
        size: int | None = None,
        items_path: str | None = None,
        start: int = 1,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(items_path=items_path, max_pages=max_pages)
        _positive("size", size)
        if (size_param is None) != (size is None):
            raise ConnectorDefinitionError("PageNumber: give both size_param and size, or neither")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConnectorDefinitionError(f"PageNumber(start=...) must be 0 or more, got {start!r}")
        self.param = param
        self.size_param = size_param
        self.size = size
        self.start = start

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        first = {**params, self.param: self.start}
        if self.size_param is not None:
            first[self.size_param] = self.size
        return PageRequest(url, first)

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        if not items or (self.size is not None and len(items) < self.size):
            return None
        return PageRequest(current.url, {**current.params, self.param: int(current.params[self.param]) + 1})


class Offset(Pagination):
    """Ask for ``limit`` items from offset 0, then from offset + items received; stop on a short page."""

    def __init__(
        self,
        param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        items_path: str | None = None,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(items_path=items_path, max_pages=max_pages)
        _positive("limit", limit)
        self.param = param
        self.limit_param = limit_param
        self.limit = limit

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        return PageRequest(url, {**params, self.param: 0, self.limit_param: self.limit})

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        if len(items) < self.limit:
            return None
        return PageRequest(
            current.url, {**current.params, self.param: int(current.params[self.param]) + len(items)}
        )
