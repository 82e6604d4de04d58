"""Another server process resolving a connection (``python -m tests.security.connections.refresh_worker``).

Arguments (JSON on argv[1]): ``database_url``, ``secret_key``, ``cafile`` (the provider's test CA),
``base_url`` (the provider), ``account_id``, ``name``, ``now`` (ISO time of the worker's clock). Prints
``waiting`` when it finds another process refreshing (then polls), and at the end one JSON line with
the credentials it resolved.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from datetime import datetime
from typing import Any

from app.registry import Registry
from app.runtime.connections import ConnectionService
from app.sdk.http import build_http_client
from app.security.connection_store import ConnectionStore
from app.security.crypto import Encryptor
from app.security.egress import EgressPolicy, PinnedHTTPTransport
from app.settings import Settings
from app.storage.db import Database
from tests.security.connections.oauth_provider import demo_connector


async def main(args: dict[str, Any]) -> None:
    settings = Settings(
        database_url=args["database_url"], secret_key=args["secret_key"], egress_allow="127.0.0.1/32"
    )
    now = datetime.fromisoformat(args["now"])
    db = Database(settings.database_url)
    transport = PinnedHTTPTransport(
        EgressPolicy(["127.0.0.1/32"]), verify=ssl.create_default_context(cafile=args["cafile"])
    )
    http = build_http_client(settings, transport=transport)
    announced = False

    async def sleep(seconds: float) -> None:
        nonlocal announced
        if not announced:
            print("waiting", flush=True)
            announced = True
        await asyncio.sleep(seconds)

    try:
        registry = Registry.from_connectors([demo_connector(args["base_url"])])
        store = ConnectionStore(
            Encryptor.from_settings(settings), registry, http, environ={}, clock=lambda: now
        )
        service = ConnectionService(db, store, clock=lambda: now, sleep=sleep)
        credentials = await service.resolve(args["account_id"], args["name"])
        print(json.dumps(credentials), flush=True)
    finally:
        await http.aclose()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
