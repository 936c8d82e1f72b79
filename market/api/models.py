"""yagna Market API wire models (``/market-api/v1``).

Faithful to ya-client's ``market-api.yaml`` and to what the generated ``ya_market`` client checks:
a field ya_market requires is required here too, enum-valued fields use the exact wire names, ids
are plain strings, and every timestamp carries a timezone (RFC 3339, UTC, ``Z``). Request bodies
refuse unknown fields; responses and events tolerate them. :class:`Reason` keeps whatever keys
the caller added (yapapi sends ``golem.requestor.code`` beside ``message``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainSerializer, TypeAdapter, WithJsonSchema

from market.core.clock import rfc3339
from market.core.wire import RequestModel, WireModel

Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware moment, written as RFC 3339 in UTC with a ``Z`` suffix."""


class ProposalState(StrEnum):
    """Proposal states as ya_market validates them."""

    INITIAL = "Initial"
    """Made by the market from a matching offer; only the requestor receives it."""
    DRAFT = "Draft"
    """A counter-proposal from either side."""
    REJECTED = "Rejected"
    """Turned down by the receiving side."""
    ACCEPTED = "Accepted"
    """An agreement was made from it."""
    EXPIRED = "Expired"
    """Its subscription ended before anything came of it."""


class AgreementState(StrEnum):
    """Agreement states as ya_market validates them."""

    PROPOSAL = "Proposal"
    """Created by the requestor, not yet confirmed."""
    PENDING = "Pending"
    """Confirmed (signed) by the requestor, waiting for the provider."""
    CANCELLED = "Cancelled"
    """Withdrawn by the requestor before approval."""
    REJECTED = "Rejected"
    """Declined by the provider."""
    APPROVED = "Approved"
    """Signed by both; work may start."""
    EXPIRED = "Expired"
    """``validTo`` passed before approval."""
    TERMINATED = "Terminated"
    """Ended by one party."""


class Role(StrEnum):
    REQUESTOR = "Requestor"
    PROVIDER = "Provider"


# --- request bodies -----------------------------------------------------------------------------------


class DemandOfferBase(RequestModel):
    """What a party publishes or counters with: properties (flat or nested) and constraints."""

    properties: dict[str, Any]
    constraints: str


class AgreementProposal(RequestModel):
    """Body of ``POST /agreements``: the provider's Draft to make an agreement from."""

    proposal_id: str
    valid_to: Timestamp


class Reason(WireModel):
    """Why something was rejected, cancelled or terminated; extra keys are kept verbatim."""

    model_config = ConfigDict(extra="allow")

    message: str


# --- responses ------------------------------------------------------------------------------------


class Demand(WireModel):
    properties: dict[str, Any]
    constraints: str
    demand_id: str
    requestor_id: str
    timestamp: Timestamp


class Offer(WireModel):
    properties: dict[str, Any]
    constraints: str
    offer_id: str
    provider_id: str
    timestamp: Timestamp


class Proposal(WireModel):
    """A proposal as the API shows it; ``properties`` are always flat dotted keys."""

    properties: dict[str, Any]
    constraints: str
    proposal_id: str
    issuer_id: str
    state: ProposalState
    timestamp: Timestamp
    prev_proposal_id: str | None = None


class Agreement(WireModel):
    agreement_id: str
    demand: Demand
    offer: Offer
    valid_to: Timestamp
    approved_date: Timestamp | None = None
    state: AgreementState
    timestamp: Timestamp
    app_session_id: str | None = None
    proposed_signature: str | None = None
    approved_signature: str | None = None
    committed_signature: str | None = None


class AgreementListEntry(WireModel):
    """One row of ``GET /agreements``."""

    id: str
    timestamp: Timestamp
    approved_date: Timestamp | None = None
    role: Role


class ErrorMessage(WireModel):
    message: str | None = None


# --- negotiation events (``GET /demands/{id}/events``) -----------------------------------------------


class PropertyQuery(WireModel):
    issuer_properties: dict[str, Any] | None = None
    query_id: str | None = None
    queried_properties: list[str]


class ProposalEvent(WireModel):
    event_type: Literal["ProposalEvent"] = "ProposalEvent"
    event_date: Timestamp
    proposal: Proposal


class ProposalRejectedEvent(WireModel):
    event_type: Literal["ProposalRejectedEvent"] = "ProposalRejectedEvent"
    event_date: Timestamp
    proposal_id: str
    reason: Reason | None = None


class PropertyQueryEvent(WireModel):
    event_type: Literal["PropertyQueryEvent"] = "PropertyQueryEvent"
    event_date: Timestamp
    property_query: PropertyQuery


class AgreementEvent(WireModel):
    """A new agreement waiting for the provider's decision (provider feed only)."""

    event_type: Literal["AgreementEvent"] = "AgreementEvent"
    event_date: Timestamp
    agreement: Agreement


Event = Annotated[
    ProposalEvent | ProposalRejectedEvent | PropertyQueryEvent | AgreementEvent,
    Field(discriminator="event_type"),
]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


# --- agreement operation events (``GET /agreementEvents``) --------------------------------------------


class AgreementApprovedEvent(WireModel):
    event_type: Literal["AgreementApprovedEvent"] = "AgreementApprovedEvent"
    event_date: Timestamp
    agreement_id: str


class AgreementRejectedEvent(WireModel):
    event_type: Literal["AgreementRejectedEvent"] = "AgreementRejectedEvent"
    event_date: Timestamp
    agreement_id: str
    reason: Reason | None = None


class AgreementCancelledEvent(WireModel):
    event_type: Literal["AgreementCancelledEvent"] = "AgreementCancelledEvent"
    event_date: Timestamp
    agreement_id: str
    reason: Reason | None = None


class AgreementTerminatedEvent(WireModel):
    event_type: Literal["AgreementTerminatedEvent"] = "AgreementTerminatedEvent"
    event_date: Timestamp
    agreement_id: str
    terminator: Role
    signature: str
    reason: Reason | None = None


AgreementOperationEvent = Annotated[
    AgreementApprovedEvent | AgreementRejectedEvent | AgreementCancelledEvent | AgreementTerminatedEvent,
    Field(discriminator="event_type"),
]
agreement_operation_event_adapter: TypeAdapter[AgreementOperationEvent] = TypeAdapter(AgreementOperationEvent)
