"""A market node restart in the middle of a negotiation loses nothing the nodes need."""

from __future__ import annotations

import asyncio

from market.client import MarketClient
from market.core.clock import to_millis
from market.core.identity import Identity
from market.demo import demo_demand
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.errors import MarketUnavailableError
from market.protocol.messages import AgreementEventType, ProposalEvent
from tests.integration.conftest import in_an_hour, publish_pair, reach_provider_draft


async def _wait_until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _agree(provider: MarketClient, requestor: MarketClient, offer_id: str, demand_id: str) -> str:
    """Run a negotiation from the first Initial proposal on ``demand_id`` to an approved agreement."""
    answer = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    agreement = await requestor.create_agreement(answer.proposal.proposal_id, in_an_hour())
    await requestor.confirm_agreement(agreement)
    proposed = await provider.next_agreement_event(timeout=10)
    await provider.approve_agreement(proposed.agreement)
    for node in (requestor, provider):
        event = await node.next_agreement_event(timeout=10)
        assert event.event_type is AgreementEventType.APPROVED
    return agreement.agreement_id


async def test_restart_during_negotiation() -> None:
    first = MarketNode(MarketNodeConfig(port=0))
    await first.start()
    port = first.port
    provider = MarketClient(
        first.ws_url, Identity.generate(), "p", backoff_initial=0.05, backoff_max=0.2, request_timeout=1.0
    )
    requestor = MarketClient(
        first.ws_url, Identity.generate(), "r", backoff_initial=0.05, backoff_max=0.2, request_timeout=1.0
    )
    second: MarketNode | None = None
    try:
        await provider.connect()
        await requestor.connect()
        offer_id, demand_id = await publish_pair(provider, requestor)
        # One agreement completes before the restart; it must survive it.
        approved_id = await _agree(provider, requestor, offer_id, demand_id)
        # A second negotiation is under way (the requestor holds an Initial proposal) ...
        await requestor.unsubscribe(demand_id)
        demand_props, demand_cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
        demand_id = await requestor.subscribe_demand(demand_props, demand_cons, in_an_hour())
        in_flight = await requestor.next_event(demand_id, timeout=10)
        assert isinstance(in_flight, ProposalEvent)

        # ... when the market node goes away. A request waits for a session up to its timeout,
        # then fails clearly.
        await first.close()
        await _wait_until(lambda: not requestor.ready and not provider.ready)
        try:
            await requestor.ping()
            raise AssertionError("a request with no market node must fail")
        except MarketUnavailableError:
            pass

        # A new market node on the same address: the clients reconnect, re-authenticate, and
        # re-publish their subscriptions (same ids) and the approved agreement.
        second = MarketNode(MarketNodeConfig(port=port))
        await second.start()
        await provider.wait_ready(10)
        await requestor.wait_ready(10)
        assert provider.session_count == 2 and requestor.session_count == 2
        assert set(second.market.subscriptions) == {offer_id, demand_id}
        assert approved_id in second.market.agreements

        # The re-published demand is matched afresh and a new negotiation completes.
        new_id = await _agree(provider, requestor, offer_id, demand_id)
        assert new_id != approved_id
        # The agreement from before the restart can still be terminated through the new node.
        restored = second.market.agreements[approved_id].agreement
        await provider.terminate_agreement(restored, {"message": "done"})
        for node in (requestor, provider):
            event = await node.next_agreement_event(timeout=10)
            assert event.event_type is AgreementEventType.TERMINATED
            assert event.agreement.agreement_id == approved_id
    finally:
        await provider.close()
        await requestor.close()
        if second is not None:
            await second.close()
        await first.close()
