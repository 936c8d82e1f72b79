"""The pure negotiation/agreement state: events in, effects out, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from market.core.identity import Identity
from market.protocol.messages import (
    Agreement,
    AgreementState,
    DemandPart,
    OfferPart,
    Party,
    Proposal,
    ProposalState,
)
from provider.agreements import (
    REJECTION_IS_FINAL,
    AgreementApprovalFailed,
    AgreementApproved,
    AgreementCancelled,
    AgreementExpired,
    AgreementProposed,
    AgreementRejected,
    AgreementTerminated,
    ApproveAgreement,
    CounterProposalSent,
    NotifyAgreementApproved,
    NotifyAgreementEnded,
    OfferPublished,
    OfferWithdrawn,
    ProposalReceived,
    ProviderNegotiations,
    RejectAgreement,
    RejectProposal,
    SaveAgreement,
    SendCounterProposal,
    agreement_terms,
)
from provider.config import ProviderConfig
from provider.negotiator import default_negotiator
from provider.offers import (
    P_ACCEPT_TIMEOUT,
    P_COEFFS,
    P_DEBIT_NOTE_INTERVAL,
    P_PAYMENT_TIMEOUT,
    build_offer,
    offer_specs,
)
from tests.provider.factories import HARDWARE, NOW, REQUESTOR, requestor_counter

PROVIDER = Identity.from_private_key("0x" + "22" * 32)
SUB = "offer-sub-1"


def config(**changes: Any) -> ProviderConfig:
    return ProviderConfig(data_dir="/tmp/unused", **changes)


def negotiations(**changes: Any) -> ProviderNegotiations:
    cfg = config(**changes)
    state = ProviderNegotiations(PROVIDER.node_id, default_negotiator(cfg))
    offer = build_offer(offer_specs(cfg, [])[0], HARDWARE, cfg, PROVIDER.node_id, NOW)
    assert state.handle(OfferPublished(SUB, offer), NOW) == []
    return state


def proposal(props: dict[str, Any], *, pid: str = "p-1", issuer: str = REQUESTOR.node_id) -> Proposal:
    return Proposal(
        proposal_id=pid,
        issuer_id=issuer,
        state=ProposalState.DRAFT,
        properties=props,
        constraints="()",
        timestamp=NOW,
        prev_proposal_id="initial-1",
        demand_id="demand-1",
        offer_id=SUB,
    )


def negotiate(
    state: ProviderNegotiations,
    props: dict[str, Any],
    *,
    pid: str = "p-1",
    draft_id: str = "d-1",
    issuer: str = REQUESTOR.node_id,
) -> SendCounterProposal:
    """A requestor proposal answered by a Draft, and the market's id for that Draft fed back."""
    effects = state.handle(ProposalReceived(SUB, proposal(props, pid=pid, issuer=issuer)), NOW)
    assert len(effects) == 1 and isinstance(effects[0], SendCounterProposal), effects
    assert state.handle(CounterProposalSent(draft_id, effects[0]), NOW) == []
    return effects[0]


def agreement_from(
    counter: SendCounterProposal,
    demand: dict[str, Any],
    *,
    aid: str = "a-1",
    draft_id: str = "d-1",
    requestor: str = REQUESTOR.node_id,
) -> Agreement:
    return Agreement(
        agreement_id=aid,
        proposal_id=draft_id,
        demand=DemandPart(
            demand_id="demand-1", requestor_id=requestor, properties=demand, constraints="()", timestamp=NOW
        ),
        offer=OfferPart(
            offer_id=SUB,
            provider_id=PROVIDER.node_id,
            properties=dict(counter.properties),
            constraints=counter.constraints,
            timestamp=NOW,
        ),
        valid_to=NOW + timedelta(hours=1),
        state=AgreementState.PENDING,
        timestamp=NOW,
        proposed_signature="0xsig-r",
    )


def approved_copy(agreement: Agreement) -> Agreement:
    return agreement.model_copy(
        update={"state": AgreementState.APPROVED, "approved_signature": "0xsig-p", "approved_date": NOW}
    )


def test_happy_path_counter_approve_terminate() -> None:
    state = negotiations()
    demand, _ = requestor_counter({P_ACCEPT_TIMEOUT: 240})
    counter = negotiate(state, demand)
    assert counter.prev_proposal_id == "p-1" and counter.requestor_id == REQUESTOR.node_id
    assert counter.properties[P_ACCEPT_TIMEOUT] == 240
    assert all(isinstance(c, float) for c in counter.properties[P_COEFFS])

    agreement = agreement_from(counter, demand)
    effects = state.handle(AgreementProposed(agreement), NOW)
    assert [type(e) for e in effects] == [SaveAgreement, ApproveAgreement]
    assert state.active_agreements == 1  # the slot is taken while approval is in flight

    effects = state.handle(AgreementApproved(approved_copy(agreement)), NOW)
    assert [type(e) for e in effects] == [SaveAgreement, NotifyAgreementApproved]
    record = state.agreements["a-1"]
    assert record.state is AgreementState.APPROVED
    assert record.agreement.approved_signature == "0xsig-p" and record.runtime == "vm"
    assert state.approved() == [record]
    assert state.handle(AgreementApproved(approved_copy(agreement)), NOW) == []  # duplicate

    reason = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}
    effects = state.handle(AgreementTerminated(agreement, Party.REQUESTOR, reason), NOW)
    assert [type(e) for e in effects] == [SaveAgreement, NotifyAgreementEnded]
    assert state.agreements["a-1"].state is AgreementState.TERMINATED
    assert record.terminator is Party.REQUESTOR and record.reason == reason
    assert state.active_agreements == 0


@pytest.mark.parametrize(
    ("state_changes", "demand_changes", "issuer", "reason_part", "final"),
    [
        ({}, {"golem.node.debug.subnet": "other"}, REQUESTOR.node_id, "subnet", True),
        ({"deny_list": [REQUESTOR.node_id]}, {}, REQUESTOR.node_id, "does not accept", True),
        (
            {},
            {"golem.com.payment.chosen-platform": "erc20-polygon-glm"},
            REQUESTOR.node_id,
            "not accepted",
            True,
        ),
    ],
)
def test_proposals_rejected_with_reason(
    state_changes: dict[str, Any], demand_changes: dict[str, Any], issuer: str, reason_part: str, final: bool
) -> None:
    state = negotiations(**state_changes)
    demand, _ = requestor_counter(demand_changes)
    effects = state.handle(ProposalReceived(SUB, proposal(demand, issuer=issuer)), NOW)
    assert len(effects) == 1 and isinstance(effects[0], RejectProposal)
    assert reason_part in effects[0].reason["message"]
    assert effects[0].reason[REJECTION_IS_FINAL] is final
    assert state.drafts == {}


def test_proposal_on_withdrawn_offer_is_rejected() -> None:
    state = negotiations()
    state.handle(OfferWithdrawn(SUB), NOW)
    demand, _ = requestor_counter()
    (effect,) = state.handle(ProposalReceived(SUB, proposal(demand)), NOW)
    assert isinstance(effect, RejectProposal) and "withdrawn" in effect.reason["message"]


def _proposed(state: ProviderNegotiations, agreement: Agreement) -> RejectAgreement:
    effects = state.handle(AgreementProposed(agreement), NOW)
    assert [type(e) for e in effects] == [SaveAgreement, RejectAgreement], effects
    assert state.agreements[agreement.agreement_id].state is AgreementState.REJECTED
    reject = effects[1]
    assert isinstance(reject, RejectAgreement)
    return reject


def test_agreement_beyond_capacity_is_rejected() -> None:
    state = negotiations(max_concurrent_agreements=1)
    demand, _ = requestor_counter()
    first = negotiate(state, demand, pid="p-1", draft_id="d-1")
    second = negotiate(state, demand, pid="p-2", draft_id="d-2")  # both negotiated before any agreement
    a1 = agreement_from(first, demand, aid="a-1", draft_id="d-1")
    a2 = agreement_from(second, demand, aid="a-2", draft_id="d-2")
    state.handle(AgreementProposed(a1), NOW)
    reject = _proposed(state, a2)  # a-1 is still being approved: the slot is taken
    assert "no capacity" in reject.reason["message"] and reject.reason[REJECTION_IS_FINAL] is False
    # Once a-1 ends, the next one fits again.
    state.handle(AgreementApproved(approved_copy(a1)), NOW)
    state.handle(AgreementTerminated(a1, Party.REQUESTOR), NOW)
    third = negotiate(state, demand, pid="p-3", draft_id="d-3")
    effects = state.handle(AgreementProposed(agreement_from(third, demand, aid="a-3", draft_id="d-3")), NOW)
    assert isinstance(effects[-1], ApproveAgreement)


def test_agreement_from_unknown_draft_is_rejected() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    counter = negotiate(state, demand)
    reject = _proposed(state, agreement_from(counter, demand, draft_id="someone-elses"))
    assert "not a Draft this provider sent" in reject.reason["message"]


def test_agreement_with_tampered_offer_is_rejected() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    counter = negotiate(state, demand)
    cheaper = replace(counter, properties={**counter.properties, P_COEFFS: [0.0, 0.0, 0.0]})
    reject = _proposed(state, agreement_from(cheaper, demand))
    assert "differs" in reject.reason["message"]


def test_agreement_without_chosen_platform_is_rejected() -> None:
    state = negotiations()
    demand, _ = requestor_counter(platform=None)
    counter = negotiate(state, demand)  # negotiation may go on without one ...
    reject = _proposed(state, agreement_from(counter, demand))  # ... but no agreement is made
    assert "no payment platform chosen" in reject.reason["message"]


def test_agreement_from_another_requestor_is_rejected() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    counter = negotiate(state, demand)
    other = Identity.from_private_key("0x" + "33" * 32).node_id
    reject = _proposed(state, agreement_from(counter, demand, requestor=other))
    assert "requestor" in reject.reason["message"]


@pytest.mark.parametrize(
    ("event_factory", "final_state"),
    [
        (lambda a: AgreementCancelled(a, {"message": "changed my mind"}), AgreementState.CANCELLED),
        (lambda a: AgreementExpired(a), AgreementState.EXPIRED),
        (lambda a: AgreementApprovalFailed(a.agreement_id, "gone"), AgreementState.CANCELLED),
        (lambda a: AgreementRejected(a, None), AgreementState.REJECTED),
    ],
)
def test_pending_agreement_side_exits(event_factory: Any, final_state: AgreementState) -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    agreement = agreement_from(negotiate(state, demand), demand)
    state.handle(AgreementProposed(agreement), NOW)
    effects = state.handle(event_factory(agreement), NOW)
    assert [type(e) for e in effects] == [SaveAgreement]  # never approved: nothing to notify
    assert state.agreements["a-1"].state is final_state
    assert state.active_agreements == 0
    # An approval arriving after a final state is ignored, not a crash.
    assert state.handle(AgreementApproved(approved_copy(agreement)), NOW) == []


def test_events_about_unknown_agreements_are_ignored() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    agreement = agreement_from(negotiate(state, demand), demand, aid="never-seen")
    assert state.handle(AgreementApproved(agreement), NOW) == []
    assert state.handle(AgreementTerminated(agreement, Party.PROVIDER), NOW) == []


def test_duplicate_agreement_proposal_is_ignored() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    agreement = agreement_from(negotiate(state, demand), demand)
    assert len(state.handle(AgreementProposed(agreement), NOW)) == 2
    assert state.handle(AgreementProposed(agreement), NOW) == []


def test_withdrawing_an_offer_forgets_its_drafts() -> None:
    state = negotiations()
    demand, _ = requestor_counter()
    negotiate(state, demand)
    assert "d-1" in state.drafts
    state.handle(OfferWithdrawn(SUB), NOW)
    assert state.drafts == {}


def test_agreement_terms_for_billing() -> None:
    state = negotiations()
    demand, _ = requestor_counter({P_ACCEPT_TIMEOUT: 240})
    agreement = agreement_from(negotiate(state, demand), demand)
    terms = agreement_terms(agreement)
    assert terms.platform == "erc20-holesky-tglm"
    assert terms.payee_address == PROVIDER.node_id and terms.payer_address == REQUESTOR.node_id
    assert terms.expiration == NOW + timedelta(minutes=15)
    assert (
        terms.debit_note_interval_sec,
        terms.payment_timeout_sec,
        terms.debit_note_accept_timeout_sec,
    ) == (
        None,
        None,
        240,
    )
    assert isinstance(terms.pricing.cpu_sec, Decimal)
    assert terms.pricing.cost(Decimal(3600), Decimal(3600)) == pytest.approx(
        Decimal("0.12"), abs=Decimal("1e-12")
    )

    map_demand, _ = requestor_counter(
        {P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 18000}, expires_in=timedelta(hours=6)
    )
    map_terms = agreement_terms(
        agreement_from(negotiate(state, map_demand, pid="p-9", draft_id="d-9"), map_demand)
    )
    assert (map_terms.debit_note_interval_sec, map_terms.payment_timeout_sec) == (120, 18000)

    no_platform, _ = requestor_counter(platform=None)
    with pytest.raises(ValueError, match="chosen payment platform"):
        agreement_terms(agreement_from(negotiate(state, no_platform, pid="p-8", draft_id="d-8"), no_platform))
