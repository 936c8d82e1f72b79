"""What a provider daemon refuses, seen from a requestor on a real market node."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from market.core.clock import SystemClock, to_millis
from market.core.errors import GolemError
from market.core.identity import Identity
from market.demo import demo_demand
from market.protocol.messages import AgreementEventType, AgreementState, ProposalEvent, ProposalRejectedEvent
from provider.agreements import REJECTION_IS_FINAL
from tests.provider.conftest import DaemonFactory, RequestorFactory
from tests.provider.test_provider_tutorial import yapapi_negotiation


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_wrong_subnet_gets_no_proposal(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    await start_provider(subnet="devnet-a")
    requestor = await connect_requestor()
    expiration = SystemClock().now() + timedelta(minutes=15)
    props, constraints = demo_demand(requestor.identity, to_millis(expiration))  # asks for subnet "public"
    demand_id = await requestor.subscribe_demand(props, constraints, expiration)
    with pytest.raises(TimeoutError):
        await requestor.next_event(demand_id, timeout=0.5)

    # The same requestor in the provider's subnet does get one: the silence above was the subnet.
    props["golem.node.debug.subnet"] = "devnet-a"
    constraints = constraints.replace("subnet=public", "subnet=devnet-a")
    demand_id = await requestor.subscribe_demand(props, constraints, expiration)
    assert isinstance(await requestor.next_event(demand_id, timeout=5), ProposalEvent)


async def test_denied_requestor_is_rejected_with_reason(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    denied = Identity.generate()
    await start_provider(deny_list=[denied.node_id])
    requestor = await connect_requestor(denied)
    _, answer = await yapapi_negotiation(requestor)
    assert isinstance(answer, ProposalRejectedEvent)
    assert answer.reason is not None and "does not accept" in answer.reason["message"]
    assert answer.reason[REJECTION_IS_FINAL] is True


async def test_unknown_payment_platform_is_rejected_with_reason(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    await start_provider()
    requestor = await connect_requestor()
    _, answer = await yapapi_negotiation(
        requestor,
        **{
            "golem.com.payment.chosen-platform": "erc20-polygon-glm",
            "golem.com.payment.platform.erc20-polygon-glm.address": requestor.node_id,
        },
    )
    assert isinstance(answer, ProposalRejectedEvent)
    assert answer.reason is not None
    assert "'erc20-polygon-glm' is not accepted" in answer.reason["message"]
    assert "erc20-holesky-tglm" in answer.reason["message"]


async def test_agreement_beyond_capacity_is_rejected(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    provider = await start_provider(max_concurrent_agreements=1)
    first, second = await connect_requestor(), await connect_requestor()
    # Both negotiate while the provider is idle, so both hold a Draft.
    _, draft1 = await yapapi_negotiation(first)
    _, draft2 = await yapapi_negotiation(second)
    assert isinstance(draft1, ProposalEvent) and isinstance(draft2, ProposalEvent)
    valid_to = SystemClock().now() + timedelta(hours=1)

    a1 = await first.create_agreement(draft1.proposal.proposal_id, valid_to)
    await first.confirm_agreement(a1)
    assert (await first.next_agreement_event(timeout=5)).event_type is AgreementEventType.APPROVED

    a2 = await second.create_agreement(draft2.proposal.proposal_id, valid_to)
    await second.confirm_agreement(a2)
    event = await second.next_agreement_event(timeout=5)
    assert event.event_type is AgreementEventType.REJECTED
    assert event.reason is not None and "no capacity: 1 of 1" in event.reason["message"]
    record = provider.agreement(a2.agreement_id)
    assert record is not None and record.state is AgreementState.REJECTED

    # A third requestor arriving now is turned away already at the proposal.
    _, answer = await yapapi_negotiation(await connect_requestor())
    assert isinstance(answer, ProposalRejectedEvent)
    assert answer.reason is not None and answer.reason[REJECTION_IS_FINAL] is False


async def test_offers_are_republished_before_they_expire(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    provider = await start_provider(offer_lifetime_sec=2, runtimes=["vm"])
    (first,) = [o.subscription_id for o in provider.published_offers()]
    await wait_for(lambda: [o.subscription_id for o in provider.published_offers()] not in ([first], []), 4)
    # The new offer negotiates like the old one did.
    _, draft = await yapapi_negotiation(await connect_requestor())
    assert isinstance(draft, ProposalEvent)


async def test_approved_agreements_survive_a_restart(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    identity = Identity.generate()
    provider = await start_provider(identity=identity)
    requestor = await connect_requestor()
    _, draft = await yapapi_negotiation(requestor)
    assert isinstance(draft, ProposalEvent)
    agreement = await requestor.create_agreement(
        draft.proposal.proposal_id, SystemClock().now() + timedelta(hours=1)
    )
    await requestor.confirm_agreement(agreement)
    assert (await requestor.next_agreement_event(timeout=5)).event_type is AgreementEventType.APPROVED
    await wait_for(lambda: len(provider.approved_agreements()) == 1)
    data_dir = provider.config.data_dir
    await provider.close()

    restarted = await start_provider(identity=identity, data_dir=data_dir)
    assert [r.agreement_id for r in restarted.approved_agreements()] == [agreement.agreement_id]
    assert restarted.health().active_agreements == 1


async def test_provider_can_terminate_an_agreement(
    start_provider: DaemonFactory, connect_requestor: RequestorFactory
) -> None:
    provider = await start_provider()
    requestor = await connect_requestor()
    _, draft = await yapapi_negotiation(requestor)
    assert isinstance(draft, ProposalEvent)
    agreement = await requestor.create_agreement(
        draft.proposal.proposal_id, SystemClock().now() + timedelta(hours=1)
    )
    await requestor.confirm_agreement(agreement)
    assert (await requestor.next_agreement_event(timeout=5)).event_type is AgreementEventType.APPROVED
    await wait_for(lambda: len(provider.approved_agreements()) == 1)

    await provider.terminate_agreement(agreement.agreement_id, {"message": "requestor stopped paying"})
    event = await requestor.next_agreement_event(timeout=5)
    assert event.event_type is AgreementEventType.TERMINATED and event.terminator is not None
    assert event.terminator.value == "Provider"
    await wait_for(lambda: provider.approved_agreements() == [])
    with pytest.raises(GolemError, match="not approved"):
        await provider.terminate_agreement(agreement.agreement_id)
