"""The committed Market API document matches the code, and the daemon serves the same bytes."""

from __future__ import annotations

import aiohttp

from requestor.daemon import RequestorDaemon
from requestor.market_api import COMMITTED_PATH, ROUTES, _openapi_text, openapi_document


def test_committed_document_is_current() -> None:
    assert COMMITTED_PATH.read_text(encoding="utf-8") == _openapi_text(), (
        "requestor/openapi/market.json is stale; run `python -m requestor.market_api`"
    )


def test_every_route_is_documented() -> None:
    paths = openapi_document()["paths"]
    for route in ROUTES:
        assert route.method.lower() in paths[route.path], route.operation_id


async def test_served_document_is_the_committed_one(daemon: RequestorDaemon, app_key: str) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {app_key}"}) as http,
        http.get(f"{daemon.url}/market-api/v1/openapi.json") as resp,
    ):
        assert resp.status == 200
        assert await resp.text() == COMMITTED_PATH.read_text(encoding="utf-8")
