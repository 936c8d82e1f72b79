"""Expiration through a running market node: subscriptions and unapproved agreements end on time
and their owners are told."""

from __future__ import annotations

from datetime import timedelta

from market.core.clock import SystemClock
from market.hub.server import MarketNode
from market.protocol.messages import AgreementEventType, AgreementState
from tests.integration.conftest import ClientFactory, publish_pair, reach_provider_draft


async def test_subscription_expires_and_owner_is_told(
    market_node: MarketNode, connect: ClientFactory
) -> None:
    client = await connect()
    soon = SystemClock().now() + timedelta(milliseconds=300)
    sub_id = await client.subscribe_offer({"golem.runtime.name": "vm"}, "()", soon)
    event = await client.next_event(sub_id, timeout=5)
    assert event.type == "subscription_expired" and event.subscription_id == sub_id
    assert market_node.market.subscriptions == {}


async def test_pending_agreement_expires_for_both(market_node: MarketNode, connect: ClientFactory) -> None:
    provider, requestor = await connect("p"), await connect("r")
    clock = SystemClock()
    offer_id, demand_id = await publish_pair(provider, requestor)
    answer = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    agreement = await requestor.create_agreement(
        answer.proposal.proposal_id, clock.now() + timedelta(milliseconds=300)
    )
    await requestor.confirm_agreement(agreement)
    proposed = await provider.next_agreement_event(timeout=5)
    assert proposed.event_type is AgreementEventType.PROPOSED
    # The provider does not answer in time.
    for node in (requestor, provider):
        expired = await node.next_agreement_event(timeout=5)
        assert expired.event_type is AgreementEventType.EXPIRED
        assert expired.agreement.state is AgreementState.EXPIRED
