"""Message models of the node ↔ market node protocol.

Text frames are JSON objects discriminated by ``type``. Requests from a daemon carry an ``id``; the
market node answers each with a ``reply`` or an ``error`` whose ``corr`` is that id. Events from the
market node (proposals, agreement changes, relayed messages) carry no ``corr``.

Binary frames relay bytes: a 2-byte big-endian header length, a JSON header, then the body. A daemon
addresses the header ``{"to": <node id>, "channel": <str>}``; the market node delivers it as
``{"from": <verified sender>, "channel": <str>}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from market.core.ids import new_id
from market.core.wire import RequestModel, WireModel

PROTOCOL_VERSION = 1


# --- shared domain shapes ---------------------------------------------------------------------------


class ProposalState(StrEnum):
    """States of one proposal, with yagna's wire names."""

    INITIAL = "Initial"
    """Created by the market node when an offer matches a demand; only the requestor gets it."""
    DRAFT = "Draft"
    """A counter-proposal from either side."""
    ACCEPTED = "Accepted"
    """An agreement was made from it."""
    REJECTED = "Rejected"
    """The receiving side turned it down."""
    EXPIRED = "Expired"
    """Its subscription ended before anything came of it."""


class AgreementState(StrEnum):
    """States of an agreement, with yagna's wire names."""

    PROPOSAL = "Proposal"
    """Created by the requestor from a provider's draft; not yet signed or sent."""
    PENDING = "Pending"
    """Signed by the requestor and sent to the provider, awaiting approval."""
    APPROVED = "Approved"
    """Signed by both parties; work may start."""
    REJECTED = "Rejected"
    """The provider declined it."""
    CANCELLED = "Cancelled"
    """The requestor withdrew it before approval."""
    EXPIRED = "Expired"
    """``validTo`` passed before it was approved."""
    TERMINATED = "Terminated"
    """One party ended an approved agreement."""


class Party(StrEnum):
    REQUESTOR = "Requestor"
    PROVIDER = "Provider"


class Proposal(WireModel):
    proposal_id: str
    issuer_id: str
    state: ProposalState
    properties: dict[str, Any]
    constraints: str
    timestamp: datetime
    prev_proposal_id: str | None = None
    demand_id: str
    offer_id: str


class DemandPart(WireModel):
    demand_id: str
    requestor_id: str
    properties: dict[str, Any]
    constraints: str
    timestamp: datetime


class OfferPart(WireModel):
    offer_id: str
    provider_id: str
    properties: dict[str, Any]
    constraints: str
    timestamp: datetime


class Agreement(WireModel):
    agreement_id: str
    proposal_id: str
    demand: DemandPart
    offer: OfferPart
    valid_to: datetime
    state: AgreementState
    timestamp: datetime
    approved_date: datetime | None = None
    proposed_signature: str | None = None
    approved_signature: str | None = None


# --- handshake --------------------------------------------------------------------------------------


class Limits(WireModel):
    max_frame_bytes: int
    max_subscriptions: int
    max_messages_per_second: float


class Challenge(WireModel):
    type: Literal["challenge"] = "challenge"
    nonce: str
    protocol_version: int = PROTOCOL_VERSION
    limits: Limits


class Hello(RequestModel):
    type: Literal["hello"] = "hello"
    id: str = Field(default_factory=new_id)
    node_id: str
    name: str = Field(default="", max_length=64)
    signature: str
    protocol_version: int = PROTOCOL_VERSION


class Welcome(WireModel):
    type: Literal["welcome"] = "welcome"
    session_id: str
    node_id: str


def session_challenge_text(nonce: str) -> str:
    """What a daemon signs to open a session: binds the signature to this one challenge."""
    return f"golem-market session {nonce}"


# --- requests (daemon → market node) -------------------------------------------------------------------


class _Request(RequestModel):
    id: str = Field(default_factory=new_id)


class SubscribeOffer(_Request):
    type: Literal["subscribe_offer"] = "subscribe_offer"
    subscription_id: str | None = None
    properties: dict[str, Any]
    constraints: str
    expiration: datetime


class SubscribeDemand(_Request):
    type: Literal["subscribe_demand"] = "subscribe_demand"
    subscription_id: str | None = None
    properties: dict[str, Any]
    constraints: str
    expiration: datetime


class Unsubscribe(_Request):
    type: Literal["unsubscribe"] = "unsubscribe"
    subscription_id: str


class CounterProposal(_Request):
    type: Literal["counter_proposal"] = "counter_proposal"
    subscription_id: str
    prev_proposal_id: str
    properties: dict[str, Any]
    constraints: str


class RejectProposal(_Request):
    type: Literal["reject_proposal"] = "reject_proposal"
    subscription_id: str
    proposal_id: str
    reason: dict[str, Any] | None = None


class CreateAgreement(_Request):
    type: Literal["create_agreement"] = "create_agreement"
    proposal_id: str
    valid_to: datetime


class ConfirmAgreement(_Request):
    type: Literal["confirm_agreement"] = "confirm_agreement"
    agreement_id: str
    signature: str


class ApproveAgreement(_Request):
    type: Literal["approve_agreement"] = "approve_agreement"
    agreement_id: str
    signature: str


class RejectAgreement(_Request):
    type: Literal["reject_agreement"] = "reject_agreement"
    agreement_id: str
    reason: dict[str, Any] | None = None


class CancelAgreement(_Request):
    type: Literal["cancel_agreement"] = "cancel_agreement"
    agreement_id: str
    reason: dict[str, Any] | None = None


class TerminateAgreement(_Request):
    type: Literal["terminate_agreement"] = "terminate_agreement"
    agreement_id: str
    reason: dict[str, Any] | None = None
    signature: str


class RestoreAgreement(_Request):
    """Re-publish an approved agreement after the market node restarted (it keeps no durable state)."""

    type: Literal["restore_agreement"] = "restore_agreement"
    agreement: Agreement


class Relay(_Request):
    type: Literal["relay"] = "relay"
    to: str
    payload: Any


class Ping(_Request):
    type: Literal["ping"] = "ping"


ClientRequest = Annotated[
    SubscribeOffer
    | SubscribeDemand
    | Unsubscribe
    | CounterProposal
    | RejectProposal
    | CreateAgreement
    | ConfirmAgreement
    | ApproveAgreement
    | RejectAgreement
    | CancelAgreement
    | TerminateAgreement
    | RestoreAgreement
    | Relay
    | Ping,
    Field(discriminator="type"),
]
client_request_adapter: TypeAdapter[ClientRequest] = TypeAdapter(ClientRequest)


# --- replies and events (market node → daemon) ---------------------------------------------------------


class Reply(WireModel):
    type: Literal["reply"] = "reply"
    corr: str
    result: dict[str, Any] = Field(default_factory=dict)


class ErrorReply(WireModel):
    type: Literal["error"] = "error"
    corr: str | None = None
    code: str
    message: str


class ProposalEvent(WireModel):
    type: Literal["proposal"] = "proposal"
    subscription_id: str
    proposal: Proposal


class ProposalRejectedEvent(WireModel):
    type: Literal["proposal_rejected"] = "proposal_rejected"
    subscription_id: str
    proposal_id: str
    reason: dict[str, Any] | None = None


class AgreementEventType(StrEnum):
    PROPOSED = "AgreementProposedEvent"
    APPROVED = "AgreementApprovedEvent"
    REJECTED = "AgreementRejectedEvent"
    CANCELLED = "AgreementCancelledEvent"
    EXPIRED = "AgreementExpiredEvent"
    TERMINATED = "AgreementTerminatedEvent"


class AgreementEvent(WireModel):
    type: Literal["agreement"] = "agreement"
    event_type: AgreementEventType
    agreement: Agreement
    reason: dict[str, Any] | None = None
    terminator: Party | None = None
    signature: str | None = None


class SubscriptionExpiredEvent(WireModel):
    type: Literal["subscription_expired"] = "subscription_expired"
    subscription_id: str


class RelayMessage(WireModel):
    type: Literal["relay_message"] = "relay_message"
    sender: str = Field(alias="from")
    payload: Any


ServerMessage = Annotated[
    Challenge
    | Welcome
    | Reply
    | ErrorReply
    | ProposalEvent
    | ProposalRejectedEvent
    | AgreementEvent
    | SubscriptionExpiredEvent
    | RelayMessage,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

MarketEvent = ProposalEvent | ProposalRejectedEvent | AgreementEvent | SubscriptionExpiredEvent


def encode(message: WireModel) -> str:
    """One text frame."""
    return json.dumps(message.to_wire(), separators=(",", ":"))


# --- binary relay frames ----------------------------------------------------------------------------


def pack_binary(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    if len(raw) > 0xFFFF:
        raise ValueError("binary frame header too long")
    return len(raw).to_bytes(2, "big") + raw + body


def unpack_binary(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary frame; raises ``ValueError`` on a malformed one."""
    if len(frame) < 2:
        raise ValueError("binary frame shorter than its header length")
    size = int.from_bytes(frame[:2], "big")
    if len(frame) < 2 + size:
        raise ValueError("binary frame shorter than its header")
    header = json.loads(frame[2 : 2 + size])
    if not isinstance(header, dict):
        raise ValueError("binary frame header is not a JSON object")
    return header, frame[2 + size :]
