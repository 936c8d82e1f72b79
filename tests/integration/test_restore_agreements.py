"""A node hands back agreements it signed in an earlier run: the market node takes them again."""

from __future__ import annotations

import logging

import pytest

from market.client import MarketClient
from market.hub.server import MarketNode, MarketNodeConfig
from market.protocol.messages import AgreementEventType, AgreementState
from tests.integration.conftest import ClientFactory, in_an_hour, publish_pair, reach_provider_draft


async def test_restored_agreements_reach_a_market_node_that_never_saw_them(
    connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    provider, requestor = await connect("provider"), await connect("requestor")
    offer_id, demand_id = await publish_pair(provider, requestor)
    draft = await reach_provider_draft(provider, requestor, offer_id, demand_id)
    agreement = await requestor.create_agreement(draft.proposal.proposal_id, in_an_hour())
    await requestor.confirm_agreement(agreement)
    proposed = await provider.next_agreement_event(timeout=10)
    await provider.approve_agreement(proposed.agreement)
    approved = await provider.next_agreement_event(timeout=10)
    assert approved.event_type is AgreementEventType.APPROVED
    signed = approved.agreement
    assert signed.state is AgreementState.APPROVED

    async with MarketNode(MarketNodeConfig(port=0)) as fresh:
        # Handed back on a live session: sent at once. Only Approved ones count.
        live = MarketClient(fresh.ws_url, provider.identity, "provider", request_timeout=5.0)
        await live.connect(timeout=5.0)
        try:
            pending = proposed.agreement.model_copy(update={"agreement_id": "not-approved"})
            await live.restore_agreements([signed, pending])
            assert set(fresh.market.agreements) == {signed.agreement_id}
            # One the market node refuses (a tampered copy) is logged, not raised.
            tampered = signed.model_copy(update={"agreement_id": "tampered"})
            with caplog.at_level(logging.WARNING, logger="market.client.client"):
                await live.restore_agreements([tampered])
            assert "could not restore agreement tampered" in caplog.text
            assert "tampered" not in fresh.market.agreements
        finally:
            await live.close()
