"""The provider's negotiation and agreement state: pure, events in, effects out.

:class:`ProviderNegotiations` knows our live offers, the Drafts we sent and every agreement we were
offered. :meth:`ProviderNegotiations.handle` takes one event (a requestor's proposal, an agreement
proposed, approved, terminated, ...) and the current time, updates the state and returns the effects
the daemon must perform (counter, reject, approve, persist, notify). It does no I/O, so the tests
drive it with plain objects.

Rules:
* A requestor's proposal goes through the negotiator. ACCEPT or COUNTER: we answer with a Draft
  carrying our (possibly adjusted) offer; REJECT: we reject the proposal with the reason.
* An agreement is approved only if it comes from a Draft we sent to that requestor, the negotiator
  ACCEPTs it now (capacity, expiration, deny list may have changed since), and the negotiated offer
  equals the agreement's offer exactly (nobody changed our terms). Otherwise it is rejected.
* While our approval is in flight the agreement counts against capacity, so two agreements cannot
  both take the last slot.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from market.core.clock import from_millis
from market.core.statemachine import transition
from market.protocol.messages import Agreement, AgreementState, Party, Proposal
from provider.negotiator.base import NegotiationContext, NegotiatorComponent, Stage, Verdict
from provider.offers import (
    P_ACCEPT_TIMEOUT,
    P_CHOSEN_PLATFORM,
    P_DEBIT_NOTE_INTERVAL,
    P_EXPIRATION,
    P_PAYMENT_TIMEOUT,
    LinearPricing,
    Offer,
    platform_address_key,
    pricing_from_properties,
)

log = logging.getLogger(__name__)

REJECTION_IS_FINAL = "golem.proposal.rejection.is-final"
MAX_DRAFTS = 10_000

AGREEMENT_TRANSITIONS: dict[AgreementState, frozenset[AgreementState]] = {
    AgreementState.PENDING: frozenset(
        {AgreementState.APPROVED, AgreementState.REJECTED, AgreementState.CANCELLED, AgreementState.EXPIRED}
    ),
    AgreementState.APPROVED: frozenset({AgreementState.TERMINATED}),
    AgreementState.REJECTED: frozenset(),
    AgreementState.CANCELLED: frozenset(),
    AgreementState.EXPIRED: frozenset(),
    AgreementState.TERMINATED: frozenset(),
}
"""The provider's view of an agreement: it first sees it Pending (signed by the requestor)."""


# --- state records ------------------------------------------------------------------------------------


@dataclass
class AgreementRecord:
    """One agreement as the provider knows it."""

    agreement: Agreement
    state: AgreementState
    runtime: str | None
    created_at: datetime
    updated_at: datetime
    approving: bool = False
    reason: dict[str, Any] | None = None
    terminator: Party | None = None

    @property
    def agreement_id(self) -> str:
        return self.agreement.agreement_id

    @property
    def requestor_id(self) -> str:
        return self.agreement.demand.requestor_id


@dataclass(frozen=True)
class Draft:
    """A Draft we sent: its properties, the offer it started from, and to whom."""

    proposal_id: str
    subscription_id: str
    requestor_id: str
    properties: dict[str, Any]
    base: dict[str, Any]
    runtime: str


# --- events -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferPublished:
    subscription_id: str
    offer: Offer


@dataclass(frozen=True)
class OfferWithdrawn:
    subscription_id: str


@dataclass(frozen=True)
class ProposalReceived:
    subscription_id: str
    proposal: Proposal


@dataclass(frozen=True)
class CounterProposalSent:
    """The market accepted our Draft and gave it ``proposal_id``."""

    proposal_id: str
    counter: SendCounterProposal


@dataclass(frozen=True)
class AgreementProposed:
    agreement: Agreement


@dataclass(frozen=True)
class AgreementApproved:
    agreement: Agreement


@dataclass(frozen=True)
class AgreementApprovalFailed:
    agreement_id: str
    error: str


@dataclass(frozen=True)
class AgreementRejected:
    agreement: Agreement
    reason: dict[str, Any] | None = None


@dataclass(frozen=True)
class AgreementCancelled:
    agreement: Agreement
    reason: dict[str, Any] | None = None


@dataclass(frozen=True)
class AgreementExpired:
    agreement: Agreement


@dataclass(frozen=True)
class AgreementTerminated:
    agreement: Agreement
    terminator: Party | None
    reason: dict[str, Any] | None = None


Event = (
    OfferPublished
    | OfferWithdrawn
    | ProposalReceived
    | CounterProposalSent
    | AgreementProposed
    | AgreementApproved
    | AgreementApprovalFailed
    | AgreementRejected
    | AgreementCancelled
    | AgreementExpired
    | AgreementTerminated
)


# --- effects ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCounterProposal:
    subscription_id: str
    prev_proposal_id: str
    requestor_id: str
    properties: dict[str, Any]
    constraints: str
    base: dict[str, Any] = field(repr=False)
    runtime: str = ""


@dataclass(frozen=True)
class RejectProposal:
    subscription_id: str
    proposal_id: str
    reason: dict[str, Any]


@dataclass(frozen=True)
class ApproveAgreement:
    agreement: Agreement


@dataclass(frozen=True)
class RejectAgreement:
    agreement_id: str
    reason: dict[str, Any]


@dataclass(frozen=True)
class SaveAgreement:
    record: AgreementRecord


@dataclass(frozen=True)
class NotifyAgreementApproved:
    """Hand the agreement to the activity/billing side."""

    record: AgreementRecord


@dataclass(frozen=True)
class NotifyAgreementEnded:
    record: AgreementRecord


Effect = (
    SendCounterProposal
    | RejectProposal
    | ApproveAgreement
    | RejectAgreement
    | SaveAgreement
    | NotifyAgreementApproved
    | NotifyAgreementEnded
)


@dataclass(frozen=True)
class AgreementTerms:
    """What an approved agreement commits both sides to, as billing and payments need it."""

    pricing: LinearPricing
    platform: str
    payee_address: str
    """Where the requestor pays us (our offer's address on the chosen platform)."""
    payer_address: str
    """The requestor's address on the chosen platform."""
    expiration: datetime
    """``golem.srv.comp.expiration`` of the demand."""
    debit_note_interval_sec: int | None
    """Agreed interval between debit notes; None if the requestor did not negotiate one."""
    payment_timeout_sec: int | None
    """Mid-agreement payments: debit notes are due this long after issue; None when off."""
    debit_note_accept_timeout_sec: int | None


def agreement_terms(agreement: Agreement) -> AgreementTerms:
    """Read the negotiated terms from an agreement's properties; ``ValueError`` if they are incomplete.

    The negotiable ``?`` terms are read from the requestor's side (as yapapi does); our Draft echoed
    the same values, which the approval checked.
    """
    demand = agreement.demand.properties
    offer = agreement.offer.properties
    platform = demand.get(P_CHOSEN_PLATFORM)
    if not isinstance(platform, str):
        raise ValueError("the agreement has no chosen payment platform")
    payee = offer.get(platform_address_key(platform))
    payer = demand.get(platform_address_key(platform))
    expiration = demand.get(P_EXPIRATION)
    if not isinstance(payee, str) or not isinstance(payer, str):
        raise ValueError(f"the agreement lacks an address on {platform}")
    if isinstance(expiration, bool) or not isinstance(expiration, int | float):
        raise ValueError("the agreement has no expiration")

    def seconds(key: str) -> int | None:
        value = demand.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return AgreementTerms(
        pricing=pricing_from_properties(offer),
        platform=platform,
        payee_address=payee,
        payer_address=payer,
        expiration=from_millis(int(expiration)),
        debit_note_interval_sec=seconds(P_DEBIT_NOTE_INTERVAL),
        payment_timeout_sec=seconds(P_PAYMENT_TIMEOUT) if P_DEBIT_NOTE_INTERVAL in demand else None,
        debit_note_accept_timeout_sec=seconds(P_ACCEPT_TIMEOUT),
    )


def rejection(message: str, *, final: bool = True) -> dict[str, Any]:
    """A Reason object (spec §3.1) as yagna's provider sends it."""
    return {"message": message, REJECTION_IS_FINAL: final}


# --- the state ----------------------------------------------------------------------------------------


class ProviderNegotiations:
    """See the module docstring."""

    def __init__(self, node_id: str, negotiator: NegotiatorComponent) -> None:
        self.node_id = node_id.lower()
        self.negotiator = negotiator
        self.offers: dict[str, Offer] = {}
        self.drafts: OrderedDict[str, Draft] = OrderedDict()
        self.agreements: dict[str, AgreementRecord] = {}

    # -- queries -------------------------------------------------------------------------------------

    @property
    def active_agreements(self) -> int:
        """Approved agreements plus those whose approval is in flight."""
        return sum(
            1
            for r in self.agreements.values()
            if r.state is AgreementState.APPROVED or (r.state is AgreementState.PENDING and r.approving)
        )

    def approved(self) -> list[AgreementRecord]:
        return [r for r in self.agreements.values() if r.state is AgreementState.APPROVED]

    def restore(self, records: list[AgreementRecord]) -> None:
        """Take back agreements from the store after a restart (only the non-final ones matter)."""
        for record in records:
            self.agreements.setdefault(record.agreement_id, record)

    # -- the transition function ---------------------------------------------------------------------

    def handle(self, event: Event, now: datetime) -> list[Effect]:
        match event:
            case OfferPublished():
                self.offers[event.subscription_id] = event.offer
                return []
            case OfferWithdrawn():
                self.offers.pop(event.subscription_id, None)
                for pid in [p for p, d in self.drafts.items() if d.subscription_id == event.subscription_id]:
                    del self.drafts[pid]
                return []
            case ProposalReceived():
                return self._on_proposal(event, now)
            case CounterProposalSent():
                c = event.counter
                self.drafts[event.proposal_id] = Draft(
                    event.proposal_id, c.subscription_id, c.requestor_id, c.properties, c.base, c.runtime
                )
                while len(self.drafts) > MAX_DRAFTS:
                    self.drafts.popitem(last=False)
                return []
            case AgreementProposed():
                return self._on_agreement_proposed(event.agreement, now)
            case AgreementApproved():
                return self._on_approved(event.agreement, now)
            case AgreementApprovalFailed():
                record = self.agreements.get(event.agreement_id)
                if record is None or record.state is not AgreementState.PENDING:
                    return []
                return self._move(record, AgreementState.CANCELLED, now, {"message": event.error})
            case AgreementRejected():
                return self._end(event.agreement, AgreementState.REJECTED, now, event.reason)
            case AgreementCancelled():
                return self._end(event.agreement, AgreementState.CANCELLED, now, event.reason)
            case AgreementExpired():
                return self._end(event.agreement, AgreementState.EXPIRED, now, None)
            case AgreementTerminated():
                record = self.agreements.get(event.agreement.agreement_id)
                if record is not None:
                    record.terminator = event.terminator
                return self._end(event.agreement, AgreementState.TERMINATED, now, event.reason)
        raise TypeError(f"unknown event {event!r}")  # pragma: no cover - the match is exhaustive

    # -- proposals -----------------------------------------------------------------------------------

    def _context(self, requestor_id: str, now: datetime, stage: Stage) -> NegotiationContext:
        return NegotiationContext(
            requestor_id=requestor_id, now=now, stage=stage, active_agreements=self.active_agreements
        )

    def _on_proposal(self, event: ProposalReceived, now: datetime) -> list[Effect]:
        proposal = event.proposal
        offer = self.offers.get(event.subscription_id)
        if offer is None:
            reason = rejection("this offer has been withdrawn", final=False)
            return [RejectProposal(event.subscription_id, proposal.proposal_id, reason)]
        ctx = self._context(proposal.issuer_id, now, Stage.PROPOSAL)
        result = self.negotiator.negotiate(proposal.properties, dict(offer.properties), ctx)
        if result.verdict is Verdict.REJECT:
            log.info(
                "rejecting proposal %s from %s: %s", proposal.proposal_id, proposal.issuer_id, result.reason
            )
            reason = rejection(result.reason, final=result.final)
            return [RejectProposal(event.subscription_id, proposal.proposal_id, reason)]
        if result.verdict is Verdict.COUNTER:
            log.info("countering proposal %s: %s", proposal.proposal_id, result.reason)
        return [
            SendCounterProposal(
                subscription_id=event.subscription_id,
                prev_proposal_id=proposal.proposal_id,
                requestor_id=proposal.issuer_id,
                properties=result.offer,
                constraints=offer.constraints,
                base=dict(offer.properties),
                runtime=offer.spec.runtime,
            )
        ]

    # -- agreements ----------------------------------------------------------------------------------

    def _on_agreement_proposed(self, agreement: Agreement, now: datetime) -> list[Effect]:
        if agreement.agreement_id in self.agreements:
            return []  # a duplicate delivery
        draft = self.drafts.get(agreement.proposal_id)
        record = AgreementRecord(
            agreement=agreement,
            state=AgreementState.PENDING,
            runtime=draft.runtime if draft else None,
            created_at=now,
            updated_at=now,
        )
        self.agreements[agreement.agreement_id] = record
        problem = self._agreement_problem(agreement, draft, now)
        if problem is not None:
            message, final = problem
            log.info("rejecting agreement %s: %s", agreement.agreement_id, message)
            reason = rejection(message, final=final)
            return [
                *self._move(record, AgreementState.REJECTED, now, reason),
                RejectAgreement(agreement.agreement_id, reason),
            ]
        record.approving = True
        return [SaveAgreement(record), ApproveAgreement(agreement)]

    def _agreement_problem(
        self, agreement: Agreement, draft: Draft | None, now: datetime
    ) -> tuple[str, bool] | None:
        """Why this agreement cannot be approved (and whether for good), or None."""
        if agreement.offer.provider_id.lower() != self.node_id:
            return "the agreement names another provider", True
        if draft is None:
            return f"proposal {agreement.proposal_id} is not a Draft this provider sent", True
        if draft.requestor_id.lower() != agreement.demand.requestor_id.lower():
            return "the agreement's requestor is not the one our Draft answered", True
        ctx = self._context(agreement.demand.requestor_id, now, Stage.AGREEMENT)
        result = self.negotiator.negotiate(agreement.demand.properties, dict(draft.base), ctx)
        if result.verdict is Verdict.REJECT:
            return result.reason, result.final
        if result.verdict is Verdict.COUNTER:
            return f"the terms are not agreed: {result.reason}", True
        if not _same_properties(result.offer, agreement.offer.properties):
            return "the agreement's offer differs from the terms this provider negotiated", True
        return None

    def _on_approved(self, agreement: Agreement, now: datetime) -> list[Effect]:
        record = self.agreements.get(agreement.agreement_id)
        if record is None:
            log.warning("approval of unknown agreement %s ignored", agreement.agreement_id)
            return []
        if record.state is AgreementState.APPROVED:
            return []
        record.agreement = agreement  # now carries both signatures and the approval date
        effects = self._move(record, AgreementState.APPROVED, now, None)
        return [*effects, NotifyAgreementApproved(record)] if effects else []

    def _end(
        self, agreement: Agreement, target: AgreementState, now: datetime, reason: dict[str, Any] | None
    ) -> list[Effect]:
        record = self.agreements.get(agreement.agreement_id)
        if record is None or record.state is target:
            return []
        was_approved = record.state is AgreementState.APPROVED
        effects = self._move(record, target, now, reason)
        if effects and was_approved:
            effects.append(NotifyAgreementEnded(record))
        return effects

    def _move(
        self, record: AgreementRecord, target: AgreementState, now: datetime, reason: dict[str, Any] | None
    ) -> list[Effect]:
        if target not in AGREEMENT_TRANSITIONS[record.state]:
            log.warning(
                "agreement %s: ignoring %s while %s", record.agreement_id, target.value, record.state.value
            )
            return []
        record.state = transition("Agreement", AGREEMENT_TRANSITIONS, record.state, target)
        record.approving = False
        record.updated_at = now
        if reason is not None:
            record.reason = reason
        return [SaveAgreement(record)]


def _same_properties(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """JSON equality: ``1``, ``1.0`` and ``true`` differ (a float coefficient turned int is a change)."""
    if a.keys() != b.keys():
        return False
    return all(type(a[k]) is type(b[k]) and a[k] == b[k] for k in a)
