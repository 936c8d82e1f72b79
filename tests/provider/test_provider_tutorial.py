"""How a provider daemon meets a yapapi-style requestor on a market node (the tutorial test).

Everything is real and in-process: a market node on 127.0.0.1:0, a :class:`ProviderDaemon` with its
status API, and a requestor played by a bare :class:`MarketClient` doing exactly yapapi 0.13.1's
sequence (spec §5 steps 6-10 and 16).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from market.client import MarketClient
from market.client.client import SubscriptionEvent, verify_agreement
from market.core.clock import SystemClock, to_millis
from market.demo import PLATFORM, demo_demand
from market.protocol.messages import AgreementEventType, AgreementState, ProposalEvent, ProposalState
from provider.agreements import AgreementRecord, agreement_terms
from provider.daemon import ProviderDaemon
from tests.provider.conftest import DaemonFactory, RequestorFactory

ACCEPT_TIMEOUT = "golem.com.payment.debit-notes.accept-timeout?"


async def yapapi_negotiation(
    requestor: MarketClient, **counter_extra: object
) -> tuple[str, SubscriptionEvent]:
    """Publish yapapi's demand, counter the Initial proposal as yapapi does, return the provider's answer."""
    clock = SystemClock()
    expiration = clock.now() + timedelta(minutes=15)
    props, constraints = demo_demand(requestor.identity, to_millis(expiration))
    demand_id = await requestor.subscribe_demand(props, constraints, expiration)

    initial = await requestor.next_event(demand_id, timeout=5)
    assert isinstance(initial, ProposalEvent) and initial.proposal.state is ProposalState.INITIAL
    offer = initial.proposal.properties
    assert offer["golem.runtime.name"] == "vm"  # the wasmtime offer does not match a vm demand

    # yapapi's counter: the same demand plus the chosen platform and the echoed accept timeout.
    counter = dict(props)
    counter["golem.com.payment.chosen-platform"] = PLATFORM
    counter[ACCEPT_TIMEOUT] = offer[ACCEPT_TIMEOUT]
    counter.update(counter_extra)
    our_id = await requestor.counter_proposal(demand_id, initial.proposal.proposal_id, counter, constraints)

    answer = await requestor.next_event(demand_id, timeout=5)
    if isinstance(answer, ProposalEvent):
        assert answer.proposal.prev_proposal_id == our_id
    return demand_id, answer


async def test_provider_negotiates_signs_and_ends_an_agreement(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    # 1. The provider publishes one offer per runtime and serves its status API.
    provider: ProviderDaemon = await start_provider()
    approved: asyncio.Queue[AgreementRecord] = asyncio.Queue()
    ended: asyncio.Queue[AgreementRecord] = asyncio.Queue()

    async def on_approved(record: AgreementRecord) -> None:
        await approved.put(record)

    async def on_ended(record: AgreementRecord) -> None:
        await ended.put(record)

    provider.on_agreement_approved(on_approved)  # the seam activities and billing hook into
    provider.on_agreement_ended(on_ended)

    # 2. The requestor negotiates like yapapi; the provider answers with a Draft, which yapapi needs.
    requestor = await connect_requestor()
    _, draft = await yapapi_negotiation(requestor)
    assert isinstance(draft, ProposalEvent)
    assert draft.proposal.state is ProposalState.DRAFT and draft.proposal.issuer_id == provider.node_id
    terms = draft.proposal.properties
    assert terms[ACCEPT_TIMEOUT] == 240
    assert "golem.com.scheme.payu.payment-timeout-sec?" not in terms  # 15 min: no mid-agreement payments
    assert all(isinstance(c, float) for c in terms["golem.com.pricing.model.linear.coeffs"])

    # 3. Agreement: create from the Draft, sign (confirm); the provider checks and counter-signs.
    agreement = await requestor.create_agreement(
        draft.proposal.proposal_id, SystemClock().now() + timedelta(hours=1)
    )
    await requestor.confirm_agreement(agreement)
    event = await requestor.next_agreement_event(timeout=5)
    assert event.event_type is AgreementEventType.APPROVED
    verify_agreement(event.agreement)  # both signatures, each by its party
    assert event.agreement.approved_signature is not None

    record = await asyncio.wait_for(approved.get(), 5)
    assert record.agreement_id == agreement.agreement_id and record.runtime == "vm"
    assert [r.agreement_id for r in provider.approved_agreements()] == [agreement.agreement_id]
    agreed = agreement_terms(record.agreement)  # what billing will read
    assert agreed.platform == PLATFORM and agreed.payer_address == requestor.node_id
    assert agreed.payment_timeout_sec is None and agreed.debit_note_accept_timeout_sec == 240

    # 4. The status API shows the offers and the agreement with both signatures.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{provider.status_url}/agreements") as response:
            assert response.status == 200
            (info,) = await response.json()
        async with http.get(f"{provider.status_url}/offers") as response:
            offers = await response.json()
        async with http.get(f"{provider.status_url}/health") as response:
            health = await response.json()
        async with http.get(f"{provider.status_url}/agreements/nope") as response:
            assert response.status == 404 and "no agreement" in (await response.json())["message"]
        async with http.get(f"{provider.status_url}/agreements?state=Bogus") as response:
            assert response.status == 400
    assert info["agreementId"] == agreement.agreement_id and info["state"] == "Approved"
    assert info["proposedSignature"] == event.agreement.proposed_signature
    assert info["approvedSignature"] == event.agreement.approved_signature
    assert info["demandProperties"]["golem.com.payment.chosen-platform"] == PLATFORM
    assert sorted(o["runtime"] for o in offers) == ["vm", "wasmtime"]
    assert health["status"] == "ok" and health["activeAgreements"] == 1 and health["nodeName"] == "provider-1"

    # 5. The requestor terminates, as yapapi does when all work is done.
    reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
    await requestor.terminate_agreement(event.agreement, reason)
    ended_record = await asyncio.wait_for(ended.get(), 5)
    assert ended_record.state is AgreementState.TERMINATED and ended_record.reason == reason
    stored = provider.store.get(agreement.agreement_id) if provider.store else None
    assert stored is not None and stored.state is AgreementState.TERMINATED
    assert provider.health().active_agreements == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{provider.status_url}/agreements", params={"state": "Terminated"}) as response:
            assert [a["agreementId"] for a in await response.json()] == [agreement.agreement_id]
        async with http.get(f"{provider.status_url}/agreements", params={"state": "Approved"}) as response:
            assert await response.json() == []
