"""A real market node on 127.0.0.1:0, a requestor and a provider node on it, each with its relay
router; the requestor shares files through a :class:`FileShare`, the provider fetches with a
:class:`RelayGftpResolver`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from exeunits.gftp import RelayGftpResolver
from market.client import MarketClient, RelayRouter
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig
from requestor.gftp import FileShare


@dataclass
class Pair:
    market: MarketNode
    requestor: MarketClient
    provider: MarketClient
    requestor_router: RelayRouter
    provider_router: RelayRouter
    share: FileShare
    resolver: RelayGftpResolver


@contextlib.asynccontextmanager
async def open_pair(
    config: MarketNodeConfig | None = None,
    share_options: dict[str, Any] | None = None,
    resolver_options: dict[str, Any] | None = None,
    call_timeout: float = 10.0,
) -> AsyncIterator[Pair]:
    async with MarketNode(config or MarketNodeConfig(port=0)) as market:
        requestor = MarketClient(market.ws_url, Identity.generate(), "requestor", request_timeout=5.0)
        provider = MarketClient(market.ws_url, Identity.generate(), "provider", request_timeout=5.0)
        await requestor.connect(timeout=5.0)
        await provider.connect(timeout=5.0)
        try:
            async with (
                RelayRouter(requestor, call_timeout=call_timeout) as requestor_router,
                RelayRouter(provider, call_timeout=call_timeout) as provider_router,
            ):
                share = FileShare(requestor_router, requestor.node_id, **(share_options or {}))
                resolver = RelayGftpResolver(
                    provider_router, **{"frame_timeout": 5.0, **(resolver_options or {})}
                )
                yield Pair(market, requestor, provider, requestor_router, provider_router, share, resolver)
                await share.aclose()
        finally:
            await provider.close()
            await requestor.close()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with open_pair() as opened:
        yield opened
