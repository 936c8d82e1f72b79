"""Wire models of the Payment API (``/payment-api/v1``), shaped as yagna and ya-aioclient expect.

Shapes only, no behaviour. Field names, required fields and enum values follow ya-client's
``model/src/payment`` and the validators of ``ya_payment`` 0.6.4 (a response with a required field
missing or ``null`` makes the whole client call fail). Amounts are :class:`~decimal.Decimal` in Python
and decimal strings on the wire; timestamps are timezone-aware and written as RFC 3339 UTC.
Request bodies (:class:`NewAllocation`, :class:`Acceptance`, :class:`Rejection`) refuse unknown
fields; responses and events tolerate them.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from market.core.clock import rfc3339
from market.core.wire import RequestModel, WireModel
from payments.allocation import format_amount, parse_amount

Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    PlainSerializer(format_amount, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]+)?$",
            "description": 'A non-negative decimal amount, e.g. `"0.0002"`.',
            "examples": ["0.0002"],
        }
    ),
]
"""Money: a decimal string on the wire (a JSON number is also read), a ``Decimal`` in Python."""

Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware moment (naive values are refused), written as RFC 3339 in UTC with ``Z``."""


class DocumentStatus(StrEnum):
    """Status of a debit note or invoice (ya-client ``DocumentStatus``, upper case on the wire)."""

    ISSUED = "ISSUED"
    """Created by the provider, not yet delivered to the requestor."""
    RECEIVED = "RECEIVED"
    """Delivered: both sides hold it and the requestor has been told."""
    ACCEPTED = "ACCEPTED"
    """The requestor accepted it: the amount is spent from an allocation and will be paid."""
    REJECTED = "REJECTED"
    """The requestor refused it (it may still be accepted later)."""
    FAILED = "FAILED"
    """Its payment failed for good."""
    SETTLED = "SETTLED"
    """A payment covering it was made (requestor) or verified on chain (provider)."""
    CANCELLED = "CANCELLED"
    """The provider withdrew it before it was accepted."""


class RejectionReason(StrEnum):
    """Why a requestor rejects a document."""

    UNSOLICITED_SERVICE = "UNSOLICITED_SERVICE"
    """The requestor did not ask for the service."""
    BAD_SERVICE = "BAD_SERVICE"
    """The service was not delivered as agreed."""
    INCORRECT_AMOUNT = "INCORRECT_AMOUNT"
    """The amount does not match the agreement's terms."""


# --- documents --------------------------------------------------------------------------------------


class DebitNote(WireModel):
    """A provider's running, cumulative bill for one activity."""

    debit_note_id: str
    issuer_id: str
    recipient_id: str
    payee_addr: str
    payer_addr: str
    payment_platform: str
    previous_debit_note_id: str | None = None
    timestamp: Timestamp
    agreement_id: str
    activity_id: str
    total_amount_due: Amount
    usage_counter_vector: Any | None = None
    payment_due_date: Timestamp | None = None
    """Present only on notes to be paid mid-agreement (GAP-3)."""
    status: DocumentStatus


class Invoice(WireModel):
    """A provider's final bill for an agreement."""

    invoice_id: str
    issuer_id: str
    recipient_id: str
    payee_addr: str
    payer_addr: str
    payment_platform: str
    timestamp: Timestamp
    agreement_id: str
    activity_ids: list[str] = Field(default_factory=list)
    amount: Amount
    payment_due_date: Timestamp
    status: DocumentStatus


class Acceptance(RequestModel):
    """A requestor's acceptance: the document's exact amount and the allocation to spend it from."""

    total_amount_accepted: Amount
    allocation_id: str


class Rejection(RequestModel):
    """A requestor's rejection of a document."""

    rejection_reason: RejectionReason
    total_amount_accepted: Amount
    message: str | None = None


# --- allocations ------------------------------------------------------------------------------------


class PaymentPlatform(RequestModel):
    """The object form of a platform (``{driver, network, token}``); any part may be left to defaults."""

    driver: str | None = None
    network: str | None = None
    token: str | None = None


class Deposit(WireModel):
    """An on-chain deposit backing an allocation (not supported here: creation refuses it)."""

    id: str
    contract: str
    validate_: Any | None = Field(default=None, alias="validate")


class NewAllocation(RequestModel):
    """What a requestor POSTs to ``/allocations``.

    yapapi sends a whole ``Allocation`` with ``allocationId``, ``spentAmount`` and ``remainingAmount``
    as empty strings; those (and ``timestamp``) are read and ignored.
    """

    allocation_id: str | None = None
    address: str | None = None
    payment_platform: str | PaymentPlatform | None = None
    total_amount: Amount
    spent_amount: str | None = None
    remaining_amount: str | None = None
    timestamp: AwareDatetime | None = None
    timeout: AwareDatetime | None = None
    make_deposit: bool = False
    deposit: Deposit | None = None
    extend_timeout: int | None = Field(default=None, ge=0)


class Allocation(WireModel):
    """A budget the requestor set aside; ``remainingAmount = totalAmount - spentAmount``."""

    allocation_id: str
    address: str
    payment_platform: str
    total_amount: Amount
    spent_amount: Amount
    remaining_amount: Amount
    timestamp: Timestamp
    timeout: Timestamp | None = None
    make_deposit: bool = False
    extend_timeout: int | None = None
    created_ts: Timestamp
    updated_ts: Timestamp


class MarketProperty(WireModel):
    """One property an allocation adds to a demand; the value is always a string."""

    key: str
    value: str


class MarketDecoration(WireModel):
    """What to merge into a demand so that providers on the allocations' platforms match it."""

    properties: list[MarketProperty]
    constraints: list[str]


# --- payments ---------------------------------------------------------------------------------------


class AgreementPayment(WireModel):
    """The part of a payment that pays for an agreement (an invoice)."""

    agreement_id: str
    amount: Amount
    allocation_id: str | None = None


class ActivityPayment(WireModel):
    """The part of a payment that pays for an activity (mid-agreement debit notes)."""

    activity_id: str
    amount: Amount
    allocation_id: str | None = None


class Payment(WireModel):
    """A payment made (requestor) or received (provider); ``details`` names the transfer."""

    payment_id: str
    payer_id: str
    payee_id: str
    payer_addr: str
    payee_addr: str
    payment_platform: str
    amount: Amount
    timestamp: Timestamp
    agreement_payments: list[AgreementPayment]
    activity_payments: list[ActivityPayment]
    details: str


# --- events -----------------------------------------------------------------------------------------


class DebitNoteReceivedEvent(WireModel):
    """A provider's debit note arrived."""

    event_type: Literal["DebitNoteReceivedEvent"] = "DebitNoteReceivedEvent"
    event_date: Timestamp
    debit_note_id: str


class DebitNoteAcceptedEvent(WireModel):
    """A debit note was accepted."""

    event_type: Literal["DebitNoteAcceptedEvent"] = "DebitNoteAcceptedEvent"
    event_date: Timestamp
    debit_note_id: str


class DebitNoteRejectedEvent(WireModel):
    """A debit note was rejected."""

    event_type: Literal["DebitNoteRejectedEvent"] = "DebitNoteRejectedEvent"
    event_date: Timestamp
    debit_note_id: str
    rejection: Rejection


class DebitNoteCancelledEvent(WireModel):
    """The provider cancelled a debit note."""

    event_type: Literal["DebitNoteCancelledEvent"] = "DebitNoteCancelledEvent"
    event_date: Timestamp
    debit_note_id: str


class DebitNoteSettledEvent(WireModel):
    """A debit note was paid in full."""

    event_type: Literal["DebitNoteSettledEvent"] = "DebitNoteSettledEvent"
    event_date: Timestamp
    debit_note_id: str


class DebitNoteFailedEvent(WireModel):
    """A debit note's payment failed."""

    event_type: Literal["DebitNoteFailedEvent"] = "DebitNoteFailedEvent"
    event_date: Timestamp
    debit_note_id: str


DebitNoteEvent = Annotated[
    DebitNoteReceivedEvent
    | DebitNoteAcceptedEvent
    | DebitNoteRejectedEvent
    | DebitNoteCancelledEvent
    | DebitNoteSettledEvent
    | DebitNoteFailedEvent,
    Field(discriminator="event_type"),
]


class InvoiceReceivedEvent(WireModel):
    """A provider's invoice arrived."""

    event_type: Literal["InvoiceReceivedEvent"] = "InvoiceReceivedEvent"
    event_date: Timestamp
    invoice_id: str


class InvoiceAcceptedEvent(WireModel):
    """An invoice was accepted."""

    event_type: Literal["InvoiceAcceptedEvent"] = "InvoiceAcceptedEvent"
    event_date: Timestamp
    invoice_id: str


class InvoiceRejectedEvent(WireModel):
    """An invoice was rejected."""

    event_type: Literal["InvoiceRejectedEvent"] = "InvoiceRejectedEvent"
    event_date: Timestamp
    invoice_id: str
    rejection: Rejection


class InvoiceCancelledEvent(WireModel):
    """The provider cancelled an invoice."""

    event_type: Literal["InvoiceCancelledEvent"] = "InvoiceCancelledEvent"
    event_date: Timestamp
    invoice_id: str


class InvoiceSettledEvent(WireModel):
    """An invoice was paid in full."""

    event_type: Literal["InvoiceSettledEvent"] = "InvoiceSettledEvent"
    event_date: Timestamp
    invoice_id: str


class InvoiceFailedEvent(WireModel):
    """An invoice's payment failed."""

    event_type: Literal["InvoiceFailedEvent"] = "InvoiceFailedEvent"
    event_date: Timestamp
    invoice_id: str


InvoiceEvent = Annotated[
    InvoiceReceivedEvent
    | InvoiceAcceptedEvent
    | InvoiceRejectedEvent
    | InvoiceCancelledEvent
    | InvoiceSettledEvent
    | InvoiceFailedEvent,
    Field(discriminator="event_type"),
]


# --- errors -----------------------------------------------------------------------------------------


class ErrorMessage(WireModel):
    """Every error body except allocation creation's: ``{"message": ...}``."""

    message: str | None = None


class ProblemDetails(WireModel):
    """RFC 7807 ``application/problem+json``, which yagna answers when an allocation cannot be made."""

    type: str = "about:blank"
    title: str | None = None
    status: int | None = None
    detail: str
    request_body: Any | None = None
    payment_platform: str | None = None
    address: str | None = None


__all__ = [
    "Acceptance",
    "ActivityPayment",
    "AgreementPayment",
    "Allocation",
    "Amount",
    "DebitNote",
    "DebitNoteEvent",
    "DocumentStatus",
    "ErrorMessage",
    "Invoice",
    "InvoiceEvent",
    "MarketDecoration",
    "NewAllocation",
    "Payment",
    "ProblemDetails",
    "Rejection",
    "RejectionReason",
    "Timestamp",
]
