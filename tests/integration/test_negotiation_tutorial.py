"""Tutorial: how a provider and a requestor reach a signed agreement through a market node.

Read this first. Everything here is real: a market node listening on 127.0.0.1 (any free port), two
nodes each with its own secp256k1 key, WebSocket sessions authenticated by signature. The daemons of
later layers (provider agent, yagna-compatible requestor) do exactly these calls.
"""

from __future__ import annotations

from market.client import verify_agreement, verify_termination
from market.core.clock import SystemClock, to_millis
from market.demo import PLATFORM, demo_demand, demo_offer
from market.hub.server import MarketNode
from market.protocol.messages import AgreementEventType, AgreementState, Party, ProposalEvent, ProposalState
from tests.integration.conftest import ClientFactory, in_an_hour


async def test_offer_demand_counter_agree_terminate(market_node: MarketNode, connect: ClientFactory) -> None:
    # 1. Two nodes connect. Each answered the market node's challenge with a signature; the market
    #    node now knows them by the address recovered from it, never by what they claim.
    provider = await connect("provider-1")
    requestor = await connect("requestor")
    assert {n.node_id for n in market_node.nodes()} == {provider.node_id, requestor.node_id}

    # 2. The provider publishes an offer; the requestor a demand. Both sides' constraints are
    #    checked against the other side's properties: only True/True is a match.
    now = SystemClock().now()
    offer_props, offer_cons = demo_offer(provider.identity, to_millis(now))
    offer_id = await provider.subscribe_offer(offer_props, offer_cons, in_an_hour())
    demand_props, demand_cons = demo_demand(requestor.identity, to_millis(in_an_hour()))
    demand_id = await requestor.subscribe_demand(demand_props, demand_cons, in_an_hour())

    # 3. The market node sends the requestor an Initial proposal: the offer, issued in the
    #    provider's name. Properties arrive flat (dotted keys), as yapapi expects.
    initial = await requestor.next_event(demand_id, timeout=5)
    assert isinstance(initial, ProposalEvent)
    assert initial.proposal.state is ProposalState.INITIAL
    assert initial.proposal.issuer_id == provider.node_id
    assert initial.proposal.properties["golem.runtime.name"] == "vm"

    # 4. The requestor counters, choosing a payment platform; the provider receives a Draft.
    countered = dict(demand_props, **{"golem.com.payment.chosen-platform": PLATFORM})
    await requestor.counter_proposal(demand_id, initial.proposal.proposal_id, countered, demand_cons)
    draft = await provider.next_event(offer_id, timeout=5)
    assert isinstance(draft, ProposalEvent)
    assert draft.proposal.state is ProposalState.DRAFT
    assert draft.proposal.issuer_id == requestor.node_id
    assert draft.proposal.properties["golem.com.payment.chosen-platform"] == PLATFORM

    # 5. The provider counters back with its offer; the requestor receives the provider's Draft.
    await provider.counter_proposal(offer_id, draft.proposal.proposal_id, offer_props, offer_cons)
    answer = await requestor.next_event(demand_id, timeout=5)
    assert isinstance(answer, ProposalEvent)
    assert answer.proposal.state is ProposalState.DRAFT
    assert answer.proposal.prev_proposal_id == draft.proposal.proposal_id

    # 6. The requestor makes an agreement of the provider's Draft and signs it. The demand part is
    #    the requestor's last proposal (with the chosen platform), the offer part the provider's draft.
    agreement = await requestor.create_agreement(answer.proposal.proposal_id, in_an_hour())
    assert agreement.state is AgreementState.PROPOSAL
    assert agreement.demand.properties["golem.com.payment.chosen-platform"] == PLATFORM
    await requestor.confirm_agreement(agreement)

    # 7. The provider receives it, checks the requestor's signature itself, and counter-signs.
    proposed = await provider.next_agreement_event(timeout=5)
    assert proposed.event_type is AgreementEventType.PROPOSED
    assert proposed.agreement.state is AgreementState.PENDING
    await provider.approve_agreement(proposed.agreement)

    # 8. Both see it Approved, with both signatures, each verifiable against the parties' ids.
    for node in (requestor, provider):
        event = await node.next_agreement_event(timeout=5)
        assert event.event_type is AgreementEventType.APPROVED
        assert event.agreement.state is AgreementState.APPROVED
        assert event.agreement.proposed_signature and event.agreement.approved_signature
        verify_agreement(event.agreement)  # raises if either signature is not the party's

    # 9. Either side may terminate, with a reason and a signature; both see it.
    reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
    await requestor.terminate_agreement(event.agreement, reason)
    for node in (provider, requestor):
        ended = await node.next_agreement_event(timeout=5)
        assert ended.event_type is AgreementEventType.TERMINATED
        assert ended.terminator is Party.REQUESTOR
        assert ended.reason == reason
        verify_termination(ended)

    # The market node's statistics saw one negotiation through.
    assert market_node.market.agreement_counts[AgreementState.APPROVED] == 1
    assert len(market_node.market.negotiation_latency_ms) == 1
