"""The market node's domain: subscriptions, matching, proposals and agreements.

Pure and synchronous: every operation takes the acting node's verified id and the current time, and
returns what to deliver to whom (:class:`Deliver` effects). The WebSocket server performs the
deliveries; tests drive this class directly. Nothing here survives a restart on purpose: daemons
re-publish their subscriptions and approved agreements when they reconnect, and durable state lives
with the parties (architecture §3.2).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from market.core.errors import InvalidTransition, SignatureError
from market.core.identity import verify_signature
from market.core.ids import NodeId, new_id
from market.core.statemachine import transition
from market.hub.matching import MatchIndex
from market.props import (
    Constraint,
    ConstraintSyntaxError,
    PropertyError,
    Tri,
    flatten,
    match,
    parse_constraints,
)
from market.protocol.errors import (
    BadRequestError,
    ConflictError,
    GoneError,
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
)
from market.protocol.messages import (
    Agreement,
    AgreementEvent,
    AgreementEventType,
    AgreementState,
    DemandPart,
    MarketEvent,
    OfferPart,
    Party,
    Proposal,
    ProposalEvent,
    ProposalRejectedEvent,
    ProposalState,
    SubscriptionExpiredEvent,
)
from market.protocol.signing import agreement_signing_text, termination_signing_text

log = logging.getLogger(__name__)


# --- state machines ---------------------------------------------------------------------------------


class SubscriptionKind(StrEnum):
    OFFER = "offer"
    DEMAND = "demand"


class SubscriptionState(StrEnum):
    """Life of an offer or demand subscription on the market node."""

    ACTIVE = "Active"
    """Matched against new subscriptions of the other kind; proposals flow."""
    UNSUBSCRIBED = "Unsubscribed"
    """Withdrawn by its owner, or its owner's session ended."""
    EXPIRED = "Expired"
    """Its expiration passed."""


SUBSCRIPTION_TRANSITIONS: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    SubscriptionState.ACTIVE: frozenset({SubscriptionState.UNSUBSCRIBED, SubscriptionState.EXPIRED}),
    SubscriptionState.UNSUBSCRIBED: frozenset(),
    SubscriptionState.EXPIRED: frozenset(),
}

# A proposal is born Initial (made by the market node) or Draft (a counter); "countered" is a flag,
# not a state, exactly as in yagna, where a countered proposal stays Draft on the wire.
PROPOSAL_TRANSITIONS: dict[ProposalState, frozenset[ProposalState]] = {
    ProposalState.INITIAL: frozenset({ProposalState.ACCEPTED, ProposalState.REJECTED, ProposalState.EXPIRED}),
    ProposalState.DRAFT: frozenset({ProposalState.ACCEPTED, ProposalState.REJECTED, ProposalState.EXPIRED}),
    ProposalState.ACCEPTED: frozenset(),
    ProposalState.REJECTED: frozenset(),
    ProposalState.EXPIRED: frozenset(),
}

AGREEMENT_TRANSITIONS: dict[AgreementState, frozenset[AgreementState]] = {
    AgreementState.PROPOSAL: frozenset(
        {AgreementState.PENDING, AgreementState.CANCELLED, AgreementState.EXPIRED}
    ),
    AgreementState.PENDING: frozenset(
        {
            AgreementState.APPROVED,
            AgreementState.REJECTED,
            AgreementState.CANCELLED,
            AgreementState.EXPIRED,
        }
    ),
    AgreementState.APPROVED: frozenset({AgreementState.TERMINATED}),
    AgreementState.REJECTED: frozenset(),
    AgreementState.CANCELLED: frozenset(),
    AgreementState.EXPIRED: frozenset(),
    AgreementState.TERMINATED: frozenset(),
}

FINAL_AGREEMENT_STATES = frozenset(s for s, targets in AGREEMENT_TRANSITIONS.items() if not targets)


# --- records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliver:
    """Effect: send ``event`` to the session of ``node``."""

    node: NodeId
    event: MarketEvent


@dataclass
class Subscription:
    subscription_id: str
    kind: SubscriptionKind
    owner: NodeId
    properties: dict[str, Any]
    constraints: str
    constraint: Constraint
    expiration: datetime
    created: datetime
    state: SubscriptionState = SubscriptionState.ACTIVE
    proposal_ids: set[str] = field(default_factory=set)


@dataclass
class ProposalRecord:
    proposal: Proposal
    constraint: Constraint
    recipient: NodeId
    recipient_subscription: str
    started_monotonic: float
    countered: bool = False


@dataclass
class AgreementRecord:
    agreement: Agreement
    started_monotonic: float
    finished: datetime | None = None


@dataclass(frozen=True)
class Limits:
    max_subscriptions_per_node: int = 100
    max_properties_bytes: int = 256 * 1024
    agreement_retention: timedelta = timedelta(minutes=10)
    max_valid_to: timedelta = timedelta(days=30)


# --- the market -------------------------------------------------------------------------------------


class Market:
    """Offers, demands, negotiations and agreements of one market node."""

    def __init__(self, limits: Limits | None = None, latency_window: int = 10_000) -> None:
        self.limits = limits or Limits()
        self.subscriptions: dict[str, Subscription] = {}
        self.proposals: dict[str, ProposalRecord] = {}
        self.agreements: dict[str, AgreementRecord] = {}
        self.index = MatchIndex()
        self._per_node: Counter[NodeId] = Counter()
        self.proposal_counts: Counter[str] = Counter()
        self.agreement_counts: Counter[str] = Counter()
        self.negotiation_latency_ms: deque[float] = deque(maxlen=latency_window)

    # -- subscriptions -------------------------------------------------------------------------------

    def subscribe(
        self,
        owner: NodeId,
        kind: SubscriptionKind,
        properties: Mapping[str, Any],
        constraints: str,
        expiration: datetime,
        now: datetime,
        monotonic: float,
        subscription_id: str | None = None,
    ) -> tuple[str, list[Deliver]]:
        """Publish an offer or a demand and return its id and the initial proposals it caused.

        Re-publishing an id the same node already holds replaces it (what a reconnecting daemon does).
        """
        flat, constraint = self._validate(properties, constraints)
        if expiration <= now:
            raise BadRequestError("expiration is in the past")
        effects: list[Deliver] = []
        if subscription_id is not None:
            existing = self.subscriptions.get(subscription_id)
            if existing is not None:
                if existing.owner != owner:
                    raise ConflictError(f"subscription id {subscription_id} belongs to another node")
                effects += self._end_subscription(existing, SubscriptionState.UNSUBSCRIBED, notify=False)
        else:
            subscription_id = new_id()
        if self._per_node[owner] >= self.limits.max_subscriptions_per_node:
            raise LimitExceededError(
                f"node has {self._per_node[owner]} live subscriptions, "
                f"the limit is {self.limits.max_subscriptions_per_node}"
            )
        sub = Subscription(subscription_id, kind, owner, flat, constraints, constraint, expiration, now)
        self.subscriptions[subscription_id] = sub
        self._per_node[owner] += 1
        if kind is SubscriptionKind.OFFER:
            matches = self.index.match_offer(owner, flat, constraint)
            self.index.add_offer(subscription_id, owner, flat, constraint)
            for demand_id in matches:
                effects.append(self._initial_proposal(self.subscriptions[demand_id], sub, now, monotonic))
        else:
            matches = self.index.match_demand(owner, flat, constraint)
            self.index.add_demand(subscription_id, owner, flat, constraint)
            for offer_id in matches:
                effects.append(self._initial_proposal(sub, self.subscriptions[offer_id], now, monotonic))
        log.debug("%s %s subscribed by %s: %d matches", kind, subscription_id, owner, len(matches))
        return subscription_id, effects

    def unsubscribe(self, owner: NodeId, subscription_id: str) -> list[Deliver]:
        sub = self._own_subscription(owner, subscription_id)
        return self._end_subscription(sub, SubscriptionState.UNSUBSCRIBED, notify=False)

    def node_left(self, owner: NodeId) -> list[Deliver]:
        """A node's session ended: its subscriptions go (it re-publishes them when it comes back)."""
        effects: list[Deliver] = []
        for sub in [s for s in self.subscriptions.values() if s.owner == owner]:
            effects += self._end_subscription(sub, SubscriptionState.UNSUBSCRIBED, notify=False)
        return effects

    def offers(self) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.kind is SubscriptionKind.OFFER]

    def demands(self) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.kind is SubscriptionKind.DEMAND]

    # -- proposals -----------------------------------------------------------------------------------

    def counter_proposal(
        self,
        owner: NodeId,
        subscription_id: str,
        prev_proposal_id: str,
        properties: Mapping[str, Any],
        constraints: str,
        now: datetime,
    ) -> tuple[str, list[Deliver]]:
        """Answer a proposal addressed to ``owner`` with a Draft for the other party."""
        sub = self._own_subscription(owner, subscription_id)
        prev = self._proposal_for(owner, subscription_id, prev_proposal_id)
        if prev.proposal.state not in (ProposalState.INITIAL, ProposalState.DRAFT):
            raise GoneError(f"proposal {prev_proposal_id} is {prev.proposal.state}; it cannot be countered")
        if prev.countered:
            raise GoneError(f"proposal {prev_proposal_id} was already countered")
        flat, constraint = self._validate(properties, constraints)
        ours_ok = constraint.evaluate(prev.proposal.properties)
        theirs_ok = prev.constraint.evaluate(flat)
        if ours_ok is not Tri.TRUE or theirs_ok is not Tri.TRUE:
            result = match(
                *(
                    (flat, constraint, prev.proposal.properties, prev.constraint)
                    if sub.kind is SubscriptionKind.DEMAND
                    else (prev.proposal.properties, prev.constraint, flat, constraint)
                )
            )
            raise BadRequestError(
                f"counter-proposal does not match the proposal it counters: {result.explain()}"
            )
        other_sub_id = (
            prev.proposal.offer_id if sub.kind is SubscriptionKind.DEMAND else prev.proposal.demand_id
        )
        other = self.subscriptions.get(other_sub_id)
        if other is None or other.state is not SubscriptionState.ACTIVE:
            raise GoneError("the other party's subscription has ended")
        prev.countered = True
        proposal = Proposal(
            proposal_id=new_id(),
            issuer_id=owner,
            state=ProposalState.DRAFT,
            properties=flat,
            constraints=constraints,
            timestamp=now,
            prev_proposal_id=prev_proposal_id,
            demand_id=prev.proposal.demand_id,
            offer_id=prev.proposal.offer_id,
        )
        record = ProposalRecord(
            proposal, constraint, other.owner, other.subscription_id, prev.started_monotonic
        )
        self._add_proposal(record, sub, other)
        return proposal.proposal_id, [
            Deliver(other.owner, ProposalEvent(subscription_id=other.subscription_id, proposal=proposal))
        ]

    def reject_proposal(
        self, owner: NodeId, subscription_id: str, proposal_id: str, reason: dict[str, Any] | None
    ) -> list[Deliver]:
        record = self._proposal_for(owner, subscription_id, proposal_id)
        self._set_proposal_state(record, ProposalState.REJECTED)
        issuer_sub = (
            record.proposal.offer_id
            if record.recipient_subscription == record.proposal.demand_id
            else record.proposal.demand_id
        )
        return [
            Deliver(
                NodeId(record.proposal.issuer_id),
                ProposalRejectedEvent(subscription_id=issuer_sub, proposal_id=proposal_id, reason=reason),
            )
        ]

    def proposal(self, owner: NodeId, subscription_id: str, proposal_id: str) -> Proposal:
        return self._proposal_for(owner, subscription_id, proposal_id).proposal

    # -- agreements ----------------------------------------------------------------------------------

    def create_agreement(
        self, owner: NodeId, proposal_id: str, valid_to: datetime, now: datetime
    ) -> Agreement:
        """The requestor turns a provider's Draft into an agreement in state Proposal."""
        record = self.proposals.get(proposal_id)
        if record is None or record.recipient != owner:
            raise NotFoundError(f"no proposal {proposal_id} addressed to this node")
        demand = self.subscriptions.get(record.proposal.demand_id)
        if demand is None or demand.owner != owner:
            raise UnauthorizedError("only the requestor can propose an agreement")
        state = record.proposal.state
        if state is ProposalState.REJECTED:
            raise GoneError(f"proposal {proposal_id} was rejected; no agreement can be made from it")
        if state is ProposalState.ACCEPTED:
            raise GoneError(f"proposal {proposal_id} already became an agreement")
        if state is not ProposalState.DRAFT:
            raise ConflictError(
                f"proposal {proposal_id} is {state}; an agreement needs the provider's Draft proposal"
            )
        if valid_to <= now:
            raise BadRequestError("validTo is in the past")
        if valid_to > now + self.limits.max_valid_to:
            raise BadRequestError(f"validTo is more than {self.limits.max_valid_to} away")
        demand_prev = self.proposals.get(record.proposal.prev_proposal_id or "")
        if demand_prev is None:
            raise GoneError("the requestor's proposal this draft answered is gone")
        self._set_proposal_state(record, ProposalState.ACCEPTED)
        agreement = Agreement(
            agreement_id=new_id(),
            proposal_id=proposal_id,
            demand=DemandPart(
                demand_id=demand.subscription_id,
                requestor_id=owner,
                properties=demand_prev.proposal.properties,
                constraints=demand_prev.proposal.constraints,
                timestamp=demand_prev.proposal.timestamp,
            ),
            offer=OfferPart(
                offer_id=record.proposal.offer_id,
                provider_id=record.proposal.issuer_id,
                properties=record.proposal.properties,
                constraints=record.proposal.constraints,
                timestamp=record.proposal.timestamp,
            ),
            valid_to=valid_to,
            state=AgreementState.PROPOSAL,
            timestamp=now,
        )
        self.agreements[agreement.agreement_id] = AgreementRecord(agreement, record.started_monotonic)
        self.agreement_counts[AgreementState.PROPOSAL] += 1
        return agreement

    def confirm_agreement(self, owner: NodeId, agreement_id: str, signature: str) -> list[Deliver]:
        """The requestor signs and sends the agreement to the provider (Proposal → Pending)."""
        record = self._agreement_of(owner, agreement_id, Party.REQUESTOR)
        self._check_state(record, AgreementState.PENDING)
        self._verify(agreement_signing_text(record.agreement), signature, owner)
        record.agreement.proposed_signature = signature
        self._set_agreement_state(record, AgreementState.PENDING)
        provider = NodeId(record.agreement.offer.provider_id)
        return [
            Deliver(
                provider, AgreementEvent(event_type=AgreementEventType.PROPOSED, agreement=record.agreement)
            )
        ]

    def approve_agreement(
        self, owner: NodeId, agreement_id: str, signature: str, now: datetime, monotonic: float
    ) -> list[Deliver]:
        """The provider counter-signs (Pending → Approved); both parties are told."""
        record = self._agreement_of(owner, agreement_id, Party.PROVIDER)
        self._check_state(record, AgreementState.APPROVED)
        self._verify(agreement_signing_text(record.agreement), signature, owner)
        record.agreement.approved_signature = signature
        record.agreement.approved_date = now
        self._set_agreement_state(record, AgreementState.APPROVED)
        self.negotiation_latency_ms.append((monotonic - record.started_monotonic) * 1000)
        return self._tell_both(record, AgreementEventType.APPROVED)

    def reject_agreement(
        self, owner: NodeId, agreement_id: str, reason: dict[str, Any] | None, now: datetime
    ) -> list[Deliver]:
        record = self._agreement_of(owner, agreement_id, Party.PROVIDER)
        self._set_agreement_state(record, AgreementState.REJECTED, now)
        return self._tell_both(record, AgreementEventType.REJECTED, reason=reason)

    def cancel_agreement(
        self, owner: NodeId, agreement_id: str, reason: dict[str, Any] | None, now: datetime
    ) -> list[Deliver]:
        record = self._agreement_of(owner, agreement_id, Party.REQUESTOR)
        was_pending = record.agreement.state is AgreementState.PENDING
        self._set_agreement_state(record, AgreementState.CANCELLED, now)
        if not was_pending:  # the provider never heard of it
            return []
        return self._tell_both(record, AgreementEventType.CANCELLED, reason=reason)

    def terminate_agreement(
        self,
        owner: NodeId,
        agreement_id: str,
        reason: dict[str, Any] | None,
        signature: str,
        now: datetime,
    ) -> list[Deliver]:
        """Either party ends an Approved agreement, signing the termination."""
        record = self.agreements.get(agreement_id)
        if record is None:
            raise NotFoundError(f"no agreement {agreement_id}")
        party = self._party_of(owner, record.agreement)
        self._check_state(record, AgreementState.TERMINATED)
        self._verify(termination_signing_text(agreement_id, party, reason), signature, owner)
        self._set_agreement_state(record, AgreementState.TERMINATED, now)
        return self._tell_both(
            record, AgreementEventType.TERMINATED, reason=reason, terminator=party, signature=signature
        )

    def restore_agreement(self, owner: NodeId, agreement: Agreement, monotonic: float) -> None:
        """Take back an Approved agreement a party re-publishes after a market node restart.

        Both signatures are checked against the parties' ids, so a node can restore only what both
        sides really signed.
        """
        self._party_of(owner, agreement)
        if agreement.state is not AgreementState.APPROVED:
            raise BadRequestError("only Approved agreements can be restored")
        text = agreement_signing_text(agreement)
        if not agreement.proposed_signature or not agreement.approved_signature:
            raise BadRequestError("a restored agreement carries both parties' signatures")
        self._verify(text, agreement.proposed_signature, NodeId(agreement.demand.requestor_id))
        self._verify(text, agreement.approved_signature, NodeId(agreement.offer.provider_id))
        existing = self.agreements.get(agreement.agreement_id)
        if existing is not None:
            if agreement_signing_text(existing.agreement) != text:
                raise ConflictError(f"a different agreement {agreement.agreement_id} is known")
            return
        self.agreements[agreement.agreement_id] = AgreementRecord(agreement.model_copy(deep=True), monotonic)

    def agreement(self, owner: NodeId, agreement_id: str) -> Agreement:
        record = self.agreements.get(agreement_id)
        if record is None:
            raise NotFoundError(f"no agreement {agreement_id}")
        self._party_of(owner, record.agreement)
        return record.agreement

    # -- time ----------------------------------------------------------------------------------------

    def expire(self, now: datetime) -> list[Deliver]:
        """End what ``now`` has made stale: subscriptions, unapproved agreements, old final records."""
        effects: list[Deliver] = []
        for sub in [s for s in self.subscriptions.values() if s.expiration <= now]:
            effects += self._end_subscription(sub, SubscriptionState.EXPIRED, notify=True)
        for record in list(self.agreements.values()):
            agreement = record.agreement
            if (
                agreement.state in (AgreementState.PROPOSAL, AgreementState.PENDING)
                and agreement.valid_to <= now
            ):
                was_pending = agreement.state is AgreementState.PENDING
                self._set_agreement_state(record, AgreementState.EXPIRED, now)
                if was_pending:
                    effects += self._tell_both(record, AgreementEventType.EXPIRED)
                else:
                    requestor = NodeId(agreement.demand.requestor_id)
                    effects.append(
                        Deliver(
                            requestor,
                            AgreementEvent(event_type=AgreementEventType.EXPIRED, agreement=agreement),
                        )
                    )
            elif record.finished is not None and record.finished + self.limits.agreement_retention <= now:
                del self.agreements[agreement.agreement_id]
        return effects

    # -- statistics ----------------------------------------------------------------------------------

    def live_counts(self) -> dict[str, Any]:
        proposals = Counter(r.proposal.state.value for r in self.proposals.values())
        agreements = Counter(r.agreement.state.value for r in self.agreements.values())
        return {
            "offers": self.index.offer_count,
            "demands": self.index.demand_count,
            "proposals": dict(proposals),
            "agreements": dict(agreements),
        }

    # -- internals -----------------------------------------------------------------------------------

    def _validate(self, properties: Mapping[str, Any], constraints: str) -> tuple[dict[str, Any], Constraint]:
        try:
            flat = flatten(properties)
        except PropertyError as exc:
            raise BadRequestError(f"invalid properties: {exc}") from exc
        size = len(repr(flat))
        if size > self.limits.max_properties_bytes:
            raise BadRequestError(
                f"properties are {size} bytes, the limit is {self.limits.max_properties_bytes}"
            )
        try:
            constraint = parse_constraints(constraints)
        except ConstraintSyntaxError as exc:
            raise BadRequestError(f"invalid constraint: {exc}") from exc
        return flat, constraint

    def _initial_proposal(
        self, demand: Subscription, offer: Subscription, now: datetime, monotonic: float
    ) -> Deliver:
        proposal = Proposal(
            proposal_id=new_id(),
            issuer_id=offer.owner,
            state=ProposalState.INITIAL,
            properties=offer.properties,
            constraints=offer.constraints,
            timestamp=now,
            demand_id=demand.subscription_id,
            offer_id=offer.subscription_id,
        )
        record = ProposalRecord(proposal, offer.constraint, demand.owner, demand.subscription_id, monotonic)
        self._add_proposal(record, offer, demand)
        return Deliver(demand.owner, ProposalEvent(subscription_id=demand.subscription_id, proposal=proposal))

    def _add_proposal(self, record: ProposalRecord, *subs: Subscription) -> None:
        self.proposals[record.proposal.proposal_id] = record
        for sub in subs:
            sub.proposal_ids.add(record.proposal.proposal_id)
        self.proposal_counts[record.proposal.state] += 1

    def _end_subscription(
        self, sub: Subscription, state: SubscriptionState, *, notify: bool
    ) -> list[Deliver]:
        sub.state = transition("subscription", SUBSCRIPTION_TRANSITIONS, sub.state, state)
        del self.subscriptions[sub.subscription_id]
        self._per_node[sub.owner] -= 1
        if self._per_node[sub.owner] <= 0:
            del self._per_node[sub.owner]
        if sub.kind is SubscriptionKind.OFFER:
            self.index.remove_offer(sub.subscription_id)
        else:
            self.index.remove_demand(sub.subscription_id)
        for proposal_id in sub.proposal_ids:
            record = self.proposals.pop(proposal_id, None)
            if record is None:
                continue
            if record.proposal.state in (ProposalState.INITIAL, ProposalState.DRAFT):
                self._set_proposal_state(record, ProposalState.EXPIRED)
        if notify:
            return [Deliver(sub.owner, SubscriptionExpiredEvent(subscription_id=sub.subscription_id))]
        return []

    def _own_subscription(self, owner: NodeId, subscription_id: str) -> Subscription:
        sub = self.subscriptions.get(subscription_id)
        if sub is None or sub.owner != owner:
            raise NotFoundError(f"no live subscription {subscription_id} of this node")
        return sub

    def _proposal_for(self, owner: NodeId, subscription_id: str, proposal_id: str) -> ProposalRecord:
        self._own_subscription(owner, subscription_id)
        record = self.proposals.get(proposal_id)
        if record is None or record.recipient != owner or record.recipient_subscription != subscription_id:
            raise NotFoundError(f"no proposal {proposal_id} on subscription {subscription_id}")
        return record

    def _set_proposal_state(self, record: ProposalRecord, state: ProposalState) -> None:
        try:
            record.proposal.state = transition("proposal", PROPOSAL_TRANSITIONS, record.proposal.state, state)
        except InvalidTransition as exc:
            raise GoneError(str(exc)) from exc
        self.proposal_counts[state] += 1

    def _agreement_of(self, owner: NodeId, agreement_id: str, party: Party) -> AgreementRecord:
        record = self.agreements.get(agreement_id)
        if record is None:
            raise NotFoundError(f"no agreement {agreement_id}")
        if self._party_of(owner, record.agreement) is not party:
            raise UnauthorizedError(f"only the {party.value.lower()} can do this")
        return record

    @staticmethod
    def _party_of(owner: NodeId, agreement: Agreement) -> Party:
        if owner == agreement.demand.requestor_id:
            return Party.REQUESTOR
        if owner == agreement.offer.provider_id:
            return Party.PROVIDER
        raise NotFoundError(f"no agreement {agreement.agreement_id} of this node")

    @staticmethod
    def _check_state(record: AgreementRecord, target: AgreementState) -> None:
        current = record.agreement.state
        if target not in AGREEMENT_TRANSITIONS[current]:
            error = GoneError if current in FINAL_AGREEMENT_STATES else ConflictError
            raise error(
                f"agreement {record.agreement.agreement_id} is {current.value}; cannot become {target.value}"
            )

    def _set_agreement_state(
        self, record: AgreementRecord, state: AgreementState, now: datetime | None = None
    ) -> None:
        self._check_state(record, state)
        record.agreement.state = transition("agreement", AGREEMENT_TRANSITIONS, record.agreement.state, state)
        self.agreement_counts[state] += 1
        if state in FINAL_AGREEMENT_STATES:
            record.finished = now

    @staticmethod
    def _verify(text: str, signature: str, signer: NodeId) -> None:
        try:
            verify_signature(text, signature, signer)
        except SignatureError as exc:
            raise UnauthorizedError(f"bad signature: {exc}") from exc

    @staticmethod
    def _tell_both(record: AgreementRecord, event_type: AgreementEventType, **extra: Any) -> list[Deliver]:
        agreement = record.agreement
        return [
            Deliver(NodeId(node), AgreementEvent(event_type=event_type, agreement=agreement, **extra))
            for node in (agreement.demand.requestor_id, agreement.offer.provider_id)
        ]
