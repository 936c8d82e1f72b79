"""Shared fixtures: a real market node on 127.0.0.1:0 and real clients with their own identities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from market.client import MarketClient
from market.core.clock import SystemClock
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig

ClientFactory = Callable[..., Awaitable[MarketClient]]


@pytest.fixture
async def market_node() -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0, sweep_interval=0.05)) as node:
        yield node


@pytest.fixture
async def connect(market_node: MarketNode) -> AsyncIterator[ClientFactory]:
    """Connect a fresh node (own key) to the market node; closed at the end of the test."""
    clients: list[MarketClient] = []

    async def factory(
        name: str = "", identity: Identity | None = None, url: str | None = None
    ) -> MarketClient:
        client = MarketClient(
            url or market_node.ws_url, identity or Identity.generate(), name, request_timeout=5.0
        )
        clients.append(client)
        await client.connect(timeout=5.0)
        return client

    yield factory
    for client in clients:
        await client.close()


def in_an_hour() -> datetime:
    return SystemClock().now() + timedelta(hours=1)
