"""Shared fixtures: a real market node on 127.0.0.1:0 and real clients with their own identities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.demo import PLATFORM, demo_demand, demo_offer
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.messages import ProposalEvent

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


async def publish_pair(provider: MarketClient, requestor: MarketClient) -> tuple[str, str]:
    """The demo offer from ``provider`` and the demo demand from ``requestor``: (offer id, demand id)."""
    offer_props, offer_cons = demo_offer(provider.identity, to_millis(SystemClock().now()))
    offer_id = await provider.subscribe_offer(offer_props, offer_cons, in_an_hour())
    demand_props, demand_cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
    demand_id = await requestor.subscribe_demand(demand_props, demand_cons, in_an_hour())
    return offer_id, demand_id


async def reach_provider_draft(
    provider: MarketClient, requestor: MarketClient, offer_id: str, demand_id: str
) -> ProposalEvent:
    """From the next Initial proposal on ``demand_id``, one counter each way (as the tutorial test
    shows step by step); returns the provider's Draft as the requestor received it."""
    demand_props, demand_cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
    offer_props, offer_cons = demo_offer(provider.identity, to_millis(SystemClock().now()))
    initial = await requestor.next_event(demand_id, timeout=10)
    assert isinstance(initial, ProposalEvent)
    countered = dict(demand_props, **{"golem.com.payment.chosen-platform": PLATFORM})
    await requestor.counter_proposal(demand_id, initial.proposal.proposal_id, countered, demand_cons)
    draft = await provider.next_event(offer_id, timeout=10)
    assert isinstance(draft, ProposalEvent)
    await provider.counter_proposal(offer_id, draft.proposal.proposal_id, offer_props, offer_cons)
    answer = await requestor.next_event(demand_id, timeout=10)
    assert isinstance(answer, ProposalEvent)
    return answer
