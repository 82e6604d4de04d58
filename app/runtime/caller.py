"""``ConnectorCaller``: how the engine invokes connector operations (an ``OperationCaller``).

For each ``OperationCall`` it finds the operation in the registry, resolves the step's connection
into credentials, validates the params, builds the ``Context`` (connector-scoped HTTP client with
the connection's auth, the step's log), calls the operation and returns its output as JSON values.
Every failure is a ``StepError`` with a precise message; ``retry_kind`` says whether the engine may
retry it. See ``app.sdk.invoke`` for the exact mapping. Idempotent requests are retried inside a
step's first attempt per ``settings.http_retries`` (see ``app.sdk.retries`` for how that adds up with
the step's own ``retry:``).

Connections: ``connections`` is an async resolver ``(account_id, name) -> credentials | None``.
Stored connections come later; until then a step naming a connection fails clearly. Bind a caller
to an account with :meth:`ConnectorCaller.for_account`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from app.engine.types import OperationCall
from app.errors import MashpipeError, StepError
from app.registry import Registry
from app.sdk.connector import Connector, Operation
from app.sdk.invoke import CallOptions, PollResult, invoke_action, invoke_poll
from app.sdk.ratelimit import RateLimiter
from app.sdk.retries import RetryPolicy

ConnectionResolver = Callable[[str | None, str], Awaitable[Mapping[str, Any] | None]]


class ConnectorCaller:
    """Performs connector operations for the engine; one per process (or per account, see ``for_account``)."""

    def __init__(
        self,
        registry: Registry,
        http_client: httpx.AsyncClient,
        settings: Any,
        connections: ConnectionResolver | None = None,
        *,
        account_id: str | None = None,
        limiters: dict[tuple[str, str | None, str | None], RateLimiter] | None = None,
    ) -> None:
        self.registry = registry
        self.http_client = http_client
        self.settings = settings
        self.connections = connections
        self.account_id = account_id
        self._limiters = limiters if limiters is not None else {}

    def for_account(self, account_id: str | None) -> ConnectorCaller:
        """A caller resolving connections of ``account_id`` (rate limiters shared with this one)."""
        return ConnectorCaller(
            self.registry,
            self.http_client,
            self.settings,
            self.connections,
            account_id=account_id,
            limiters=self._limiters,
        )

    def _operation(self, uses: str, kind: str) -> tuple[Connector, Operation]:
        key, _, name = uses.partition(".")
        if not self.registry.has_connector(key):
            raise StepError(f"no connector {key!r} is installed (step uses {uses})", code="unknown_connector")
        connector = self.registry.get(key)
        operation = connector.operation(name)
        if operation is None or operation.kind != kind:
            what = "polling trigger" if kind == "poll" else "operation"
            raise StepError(f"connector {key!r} has no {what} {name!r}", code="unknown_operation")
        return connector, operation

    async def _credentials(self, connector: Connector, connection: str | None) -> Mapping[str, Any] | None:
        if connection is None:
            return None
        if self.connections is None:
            raise StepError(
                f"connection {connection!r} cannot be used: this server has no stored connections yet",
                code="connection_not_found",
            )
        try:
            credentials = await self.connections(self.account_id, connection)
        except StepError:
            raise
        except MashpipeError as exc:
            raise StepError(
                f"connection {connection!r}: {exc.message}", code="connection_not_found", details=exc.details
            ) from None
        if credentials is None:
            raise StepError(f"no connection named {connection!r}", code="connection_not_found")
        return credentials

    def _limiter(self, connector: Connector, connection: str | None) -> RateLimiter | None:
        if connector.rate_limit is None:
            return None
        slot = (connector.key, self.account_id, connection)
        limiter = self._limiters.get(slot)
        if limiter is None:
            limiter = self._limiters[slot] = RateLimiter(connector.rate_limit)
        return limiter

    def _options(
        self,
        connector: Connector,
        credentials: Mapping[str, Any] | None,
        connection: str | None,
        *,
        log: list[str] | None = None,
        run_id: str = "",
        step_id: str = "",
        attempt: int = 1,
    ) -> CallOptions:
        return CallOptions(
            http_client=self.http_client,
            max_response_bytes=getattr(self.settings, "response_max_bytes", None),
            credentials=credentials,
            log=log,
            run_id=run_id,
            step_id=step_id,
            attempt=attempt,
            limiter=self._limiter(connector, connection),
            limiter_name=f"{connector.key} connection {connection}" if connection else connector.key,
            retry=RetryPolicy.from_settings(self.settings),
        )

    async def __call__(self, call: OperationCall) -> Any:
        """Run ``call.uses`` with ``call.params``; return its JSON output or raise a ``StepError``."""
        connector, operation = self._operation(call.uses, "action")
        credentials = None if call.connection is None else await self._credentials(connector, call.connection)
        options = self._options(
            connector,
            credentials,
            call.connection,
            log=call.log,
            run_id=call.run_id,
            step_id=call.step_id,
            attempt=call.attempt,
        )
        return await invoke_action(connector, operation, call.params, options)

    async def poll(
        self,
        uses: str,
        params: Mapping[str, Any],
        cursor: Any,
        *,
        connection: str | None = None,
        log: list[str] | None = None,
    ) -> PollResult:
        """Run the polling trigger ``uses`` once from the stored ``cursor`` (JSON): items, keys, cursor."""
        connector, operation = self._operation(uses, "poll")
        credentials = await self._credentials(connector, connection)
        options = self._options(connector, credentials, connection, log=log)
        return await invoke_poll(connector, operation, params, cursor, options)
