"""Fixtures: a real market node, a real requestor daemon on port 0, a provider played by a real
MarketClient, and the real ya-aioclient ``RequestorApi`` configured the way yapapi configures it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ya_market
from ya_market.api.requestor_api import RequestorApi

from market.client import MarketClient
from market.core.clock import SystemClock, to_millis
from market.core.identity import Identity
from market.demo import PLATFORM, demo_demand, demo_offer
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.messages import AgreementEvent, AgreementEventType, ProposalEvent
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon


class Provider:
    """A provider node driven by hand: it publishes the demo offer and answers when told."""

    def __init__(self, client: MarketClient) -> None:
        self.client = client
        self.offer_props, self.offer_cons = demo_offer(client.identity, to_millis(SystemClock().now()))
        self.offer_props["golem.node.id.name"] = client.name
        self.offer_id = ""

    async def publish(self) -> None:
        expiration = SystemClock().now() + timedelta(hours=1)
        self.offer_id = await self.client.subscribe_offer(self.offer_props, self.offer_cons, expiration)

    async def answer_draft(self) -> str:
        """Counter the requestor's next Draft with the offer; returns the requestor's proposal id."""
        draft = await self.client.next_event(self.offer_id, timeout=10)
        assert isinstance(draft, ProposalEvent)
        await self.client.counter_proposal(
            self.offer_id, draft.proposal.proposal_id, self.offer_props, self.offer_cons
        )
        return draft.proposal.proposal_id

    async def approve_next(self) -> AgreementEvent:
        """Approve the next proposed agreement (checking the requestor's signature); returns the
        Approved event the market node sends back to the provider too."""
        proposed = await self.next_agreement_event(AgreementEventType.PROPOSED)
        await self.client.approve_agreement(proposed.agreement)
        return await self.next_agreement_event(AgreementEventType.APPROVED)

    async def next_agreement_event(self, kind: AgreementEventType) -> AgreementEvent:
        event = await self.client.next_agreement_event(timeout=10)
        assert event.event_type is kind, event.event_type
        return event


@pytest.fixture
async def market_node() -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0, sweep_interval=0.05)) as node:
        yield node


@pytest.fixture
async def daemon(market_node: MarketNode, tmp_path: Path) -> AsyncIterator[RequestorDaemon]:
    config = RequestorConfig(
        port=0,
        market_url=market_node.ws_url,
        data_dir=tmp_path / "requestor",
        payment_platforms="dummy-holesky-tglm",
    )
    async with RequestorDaemon(config, Identity.generate()) as d:
        yield d


@pytest.fixture
def app_key(daemon: RequestorDaemon) -> str:
    _, secret = daemon.app_keys.create("tests", daemon.node_id)
    return secret


@pytest.fixture
async def market_api(daemon: RequestorDaemon, app_key: str) -> AsyncIterator[RequestorApi]:
    """ya-aioclient's RequestorApi, configured exactly as yapapi's ``Configuration.market()`` does."""
    client = ya_market.ApiClient(
        configuration=ya_market.Configuration(host=f"{daemon.url}/market-api/v1"),
        header_name="authorization",
        header_value=f"Bearer {app_key}",
    )
    yield RequestorApi(client)
    await client.close()


@pytest.fixture
async def provider(market_node: MarketNode) -> AsyncIterator[Provider]:
    client = MarketClient(market_node.ws_url, Identity.generate(), "provider-1", request_timeout=5.0)
    await client.connect(timeout=5.0)
    p = Provider(client)
    await p.publish()
    yield p
    await client.close()


def demand_body(daemon: RequestorDaemon) -> ya_market.DemandOfferBase:
    props, cons = demo_demand(daemon.identity, to_millis(SystemClock().now() + timedelta(minutes=15)))
    return ya_market.DemandOfferBase(properties=props, constraints=cons)


def countered(daemon: RequestorDaemon) -> ya_market.DemandOfferBase:
    body = demand_body(daemon)
    body.properties["golem.com.payment.chosen-platform"] = PLATFORM
    return body


async def collect(api: RequestorApi, sub_id: str, deadline: float = 10.0) -> list[Any]:
    """Poll ``/events`` as yapapi does until something arrives (deadline-bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        events: list[Any] = await api.collect_offers(sub_id, timeout=2, max_events=10)
        if events:
            return events
    raise AssertionError(f"no events on {sub_id} within {deadline}s")


async def negotiate(api: RequestorApi, daemon: RequestorDaemon, provider: Provider) -> tuple[str, str]:
    """Steps 6-9 of a yapapi run: subscribe, counter the Initial, receive the provider's Draft.

    Returns (subscription id, the provider's Draft proposal id)."""
    sub_id = await api.subscribe_demand(demand_body(daemon))
    (initial,) = await collect(api, sub_id)
    await api.counter_proposal_demand(sub_id, initial.proposal.proposal_id, countered(daemon))
    await provider.answer_draft()
    (draft,) = await collect(api, sub_id)
    assert draft.proposal.state == "Draft"
    return sub_id, draft.proposal.proposal_id


async def agree(api: RequestorApi, proposal_id: str) -> str:
    valid_to = SystemClock().now() + timedelta(hours=1)
    agreement_id: str = await api.create_agreement(
        ya_market.AgreementProposal(proposal_id=proposal_id, valid_to=valid_to)
    )
    return agreement_id
