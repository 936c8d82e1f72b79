"""The market node's domain, driven directly: no sockets, time passed in by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from market.core.identity import Identity
from market.core.ids import NodeId
from market.hub.market import Market, SubscriptionKind
from market.protocol.errors import BadRequestError, ConflictError, GoneError, NotFoundError, UnauthorizedError
from market.protocol.messages import (
    Agreement,
    AgreementEvent,
    AgreementEventType,
    AgreementState,
    Party,
    ProposalEvent,
    ProposalState,
    SubscriptionExpiredEvent,
)
from market.protocol.signing import agreement_signing_text, termination_signing_text

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
OFFER = {"golem.runtime.name": "vm", "golem.node.debug.subnet": "public", "golem.inf.mem.gib": 8}
DEMAND = {"golem.node.debug.subnet": "public", "golem.srv.comp.expiration": 1}
DEMAND_CONS = "(&(golem.runtime.name=vm)(golem.inf.mem.gib>=1))"
OFFER_CONS = "(golem.node.debug.subnet=public)"


class World:
    def __init__(self) -> None:
        self.market = Market()
        self.provider, self.requestor = Identity.generate(), Identity.generate()
        self.p, self.r = self.provider.node_id, self.requestor.node_id

    def negotiate(self, now: datetime = T0) -> tuple[str, str, str]:
        """Offer and demand, one counter each way: returns (offer id, demand id, provider draft id)."""
        offer_id, _ = self.market.subscribe(
            self.p, SubscriptionKind.OFFER, OFFER, OFFER_CONS, now + timedelta(hours=1), now, 0.0
        )
        demand_id, effects = self.market.subscribe(
            self.r, SubscriptionKind.DEMAND, DEMAND, DEMAND_CONS, now + timedelta(hours=1), now, 0.0
        )
        initial = effects[0].event
        assert isinstance(initial, ProposalEvent) and effects[0].node == self.r
        draft_id, effects = self.market.counter_proposal(
            self.r, demand_id, initial.proposal.proposal_id, DEMAND, DEMAND_CONS, now
        )
        assert effects[0].node == self.p
        answer_id, effects = self.market.counter_proposal(self.p, offer_id, draft_id, OFFER, OFFER_CONS, now)
        return offer_id, demand_id, answer_id

    def agree(self, now: datetime = T0, valid_for: timedelta = timedelta(hours=1)) -> Agreement:
        _, _, answer_id = self.negotiate(now)
        agreement = self.market.create_agreement(self.r, answer_id, now + valid_for, now)
        self.market.confirm_agreement(
            self.r, agreement.agreement_id, self.requestor.sign_text(agreement_signing_text(agreement))
        )
        return agreement


def _events(effects: list[Any]) -> list[tuple[NodeId, str]]:
    return [
        (e.node, e.event.event_type if isinstance(e.event, AgreementEvent) else e.event.type) for e in effects
    ]


def test_full_flow_and_signatures() -> None:
    w = World()
    agreement = w.agree()
    effects = w.market.approve_agreement(
        w.p, agreement.agreement_id, w.provider.sign_text(agreement_signing_text(agreement)), T0, 0.025
    )
    assert _events(effects) == [(w.r, AgreementEventType.APPROVED), (w.p, AgreementEventType.APPROVED)]
    assert agreement.state is AgreementState.APPROVED and agreement.approved_date == T0
    assert list(w.market.negotiation_latency_ms) == [25.0]
    reason = {"message": "bye"}
    sig = w.provider.sign_text(termination_signing_text(agreement.agreement_id, Party.PROVIDER, reason))
    effects = w.market.terminate_agreement(w.p, agreement.agreement_id, reason, sig, T0)
    assert {e.node for e in effects} == {w.p, w.r}
    with pytest.raises(GoneError, match="Terminated"):
        w.market.terminate_agreement(w.p, agreement.agreement_id, reason, sig, T0)


def test_wrong_signatures_change_nothing() -> None:
    w = World()
    agreement = w.agree()
    text = agreement_signing_text(agreement)
    with pytest.raises(UnauthorizedError, match="signature"):
        w.market.approve_agreement(w.p, agreement.agreement_id, w.requestor.sign_text(text), T0, 0.0)
    with pytest.raises(UnauthorizedError, match="only the provider"):
        w.market.approve_agreement(w.r, agreement.agreement_id, w.requestor.sign_text(text), T0, 0.0)
    assert agreement.state is AgreementState.PENDING and agreement.approved_signature is None
    outsider = Identity.generate()
    with pytest.raises(NotFoundError):
        w.market.approve_agreement(
            outsider.node_id, agreement.agreement_id, outsider.sign_text(text), T0, 0.0
        )


def test_termination_signed_for_another_party_is_refused() -> None:
    w = World()
    agreement = w.agree()
    w.market.approve_agreement(
        w.p, agreement.agreement_id, w.provider.sign_text(agreement_signing_text(agreement)), T0, 0.0
    )
    forged = w.provider.sign_text(termination_signing_text(agreement.agreement_id, Party.REQUESTOR, None))
    with pytest.raises(UnauthorizedError):
        w.market.terminate_agreement(w.r, agreement.agreement_id, None, forged, T0)
    assert agreement.state is AgreementState.APPROVED


def test_cancel_before_and_after_confirm() -> None:
    w = World()
    _, _, answer_id = w.negotiate()
    agreement = w.market.create_agreement(w.r, answer_id, T0 + timedelta(hours=1), T0)
    assert w.market.cancel_agreement(w.r, agreement.agreement_id, None, T0) == []  # provider never knew
    with pytest.raises(GoneError, match="Cancelled"):
        w.market.confirm_agreement(w.r, agreement.agreement_id, "0x00")
    pending = World().agree()
    assert pending.state is AgreementState.PENDING


def test_provider_rejects_and_both_hear() -> None:
    w = World()
    agreement = w.agree()
    effects = w.market.reject_agreement(w.p, agreement.agreement_id, {"message": "busy"}, T0)
    assert _events(effects) == [(w.r, AgreementEventType.REJECTED), (w.p, AgreementEventType.REJECTED)]
    with pytest.raises(UnauthorizedError):
        w.market.reject_agreement(w.r, agreement.agreement_id, None, T0)


def test_only_drafts_make_agreements_once() -> None:
    w = World()
    _, _, answer_id = w.negotiate()
    w.market.create_agreement(w.r, answer_id, T0 + timedelta(hours=1), T0)
    with pytest.raises(GoneError):
        w.market.create_agreement(w.r, answer_id, T0 + timedelta(hours=1), T0)
    w2 = World()
    w2.market.subscribe(w2.p, SubscriptionKind.OFFER, OFFER, OFFER_CONS, T0 + timedelta(hours=1), T0, 0.0)
    _, effects = w2.market.subscribe(
        w2.r, SubscriptionKind.DEMAND, DEMAND, DEMAND_CONS, T0 + timedelta(hours=1), T0, 0.0
    )
    initial = effects[0].event
    assert isinstance(initial, ProposalEvent)
    with pytest.raises(ConflictError, match="Draft"):
        w2.market.create_agreement(w2.r, initial.proposal.proposal_id, T0 + timedelta(hours=1), T0)
    with pytest.raises(BadRequestError, match="past"):
        World().market.subscribe(
            w.p, SubscriptionKind.OFFER, OFFER, OFFER_CONS, T0 - timedelta(seconds=1), T0, 0.0
        )


def test_expiry_of_subscriptions_proposals_and_agreements() -> None:
    w = World()
    agreement = w.agree(valid_for=timedelta(minutes=5))
    offer_and_demand = list(w.market.subscriptions)
    effects = w.market.expire(T0 + timedelta(minutes=5))
    assert _events(effects) == [(w.r, AgreementEventType.EXPIRED), (w.p, AgreementEventType.EXPIRED)]
    assert agreement.state is AgreementState.EXPIRED
    effects = w.market.expire(T0 + timedelta(hours=1))
    assert sorted(_events(effects)) == sorted([(w.p, "subscription_expired"), (w.r, "subscription_expired")])
    assert all(isinstance(e.event, SubscriptionExpiredEvent) for e in effects)
    assert w.market.subscriptions == {} and w.market.proposals == {}
    assert w.market.index.offer_count == 0 and w.market.index.demand_count == 0
    assert w.market.proposal_counts[ProposalState.EXPIRED] >= 1
    assert set(offer_and_demand) == {e.event.subscription_id for e in effects}  # type: ignore[union-attr]
    # Final agreements are forgotten after the retention period.
    w.market.expire(T0 + timedelta(hours=1) + w.market.limits.agreement_retention)
    assert w.market.agreements == {}


def test_node_left_withdraws_its_subscriptions_and_new_ones_rematch() -> None:
    w = World()
    offer_id, demand_id, _ = w.negotiate()
    w.market.node_left(w.p)
    assert list(w.market.subscriptions) == [demand_id]
    with pytest.raises(NotFoundError):
        w.market.unsubscribe(w.p, offer_id)
    # Re-publishing under the same id (a reconnect) matches the live demand again.
    _, effects = w.market.subscribe(
        w.p, SubscriptionKind.OFFER, OFFER, OFFER_CONS, T0 + timedelta(hours=1), T0, 0.0, offer_id
    )
    assert _events(effects) == [(w.r, "proposal")]
    with pytest.raises(ConflictError, match="another node"):
        w.market.subscribe(
            w.r, SubscriptionKind.DEMAND, DEMAND, DEMAND_CONS, T0 + timedelta(hours=1), T0, 0.0, offer_id
        )


def test_same_node_is_never_matched_with_itself() -> None:
    w = World()
    w.market.subscribe(w.p, SubscriptionKind.OFFER, OFFER, OFFER_CONS, T0 + timedelta(hours=1), T0, 0.0)
    _, effects = w.market.subscribe(
        w.p, SubscriptionKind.DEMAND, DEMAND, DEMAND_CONS, T0 + timedelta(hours=1), T0, 0.0
    )
    assert effects == []


def test_restore_checks_both_signatures() -> None:
    w = World()
    agreement = w.agree()
    w.market.approve_agreement(
        w.p, agreement.agreement_id, w.provider.sign_text(agreement_signing_text(agreement)), T0, 0.0
    )
    fresh = Market()
    forged = agreement.model_copy(
        update={"approved_signature": Identity.generate().sign_text(agreement_signing_text(agreement))}
    )
    with pytest.raises(UnauthorizedError):
        fresh.restore_agreement(w.r, forged, 0.0)
    tampered = agreement.model_copy(update={"valid_to": agreement.valid_to + timedelta(days=1)})
    with pytest.raises(UnauthorizedError):
        fresh.restore_agreement(w.r, tampered, 0.0)
    with pytest.raises(NotFoundError):
        fresh.restore_agreement(Identity.generate().node_id, agreement, 0.0)
    assert fresh.agreements == {}
    fresh.restore_agreement(w.r, agreement, 0.0)
    fresh.restore_agreement(w.p, agreement, 0.0)  # idempotent
    assert list(fresh.agreements) == [agreement.agreement_id]
