"""Fixtures for the provider's integration tests: a real market node, real daemons, real requestors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from market.client import MarketClient
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig
from provider.config import ProviderConfig
from provider.daemon import ProviderDaemon
from tests.provider.factories import HARDWARE

DaemonFactory = Callable[..., Awaitable[ProviderDaemon]]
RequestorFactory = Callable[..., Awaitable[MarketClient]]


@pytest.fixture
async def market_node() -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0, sweep_interval=0.05)) as node:
        yield node


@pytest.fixture
async def start_provider(market_node: MarketNode, tmp_path: Path) -> AsyncIterator[DaemonFactory]:
    """Start a provider daemon (status API on a free port, fixed hardware); closed after the test."""
    daemons: list[ProviderDaemon] = []

    async def factory(
        identity: Identity | None = None, data_dir: Path | None = None, **settings: Any
    ) -> ProviderDaemon:
        config = ProviderConfig(
            market_url=market_node.ws_url,
            data_dir=data_dir or tmp_path / f"provider-{len(daemons)}",
            status_port=0,
            node_name=settings.pop("node_name", "provider-1"),
            **settings,
        )
        daemon = ProviderDaemon(
            config, identity or Identity.generate(), hardware=HARDWARE, market_request_timeout=5.0
        )
        daemons.append(daemon)
        await daemon.start()
        await daemon.wait_ready(timeout=5.0)
        return daemon

    yield factory
    for daemon in daemons:
        await daemon.close()


@pytest.fixture
async def connect_requestor(market_node: MarketNode) -> AsyncIterator[RequestorFactory]:
    clients: list[MarketClient] = []

    async def factory(identity: Identity | None = None) -> MarketClient:
        client = MarketClient(
            market_node.ws_url, identity or Identity.generate(), "requestor", request_timeout=5.0
        )
        clients.append(client)
        await client.connect(timeout=5.0)
        return client

    yield factory
    for client in clients:
        await client.close()
