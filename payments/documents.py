"""The lifecycle shared by debit notes and invoices, and yagna's acceptance arithmetic.

Both kinds move Issued → Received → Accepted/Rejected → Settled, with Cancelled and Failed on the
side; :data:`DOCUMENT_TRANSITIONS` is the one list of allowed edges and :func:`advance` the only way
a status changes. The amounts a document commits follow yagna: debit notes are *cumulative* per
activity, so accepting one commits only what exceeds what was already accepted for that activity;
an invoice commits what exceeds what was accepted for its whole agreement.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from market.core.statemachine import terminal_states, transition
from payments.allocation import format_amount, subtract
from payments.errors import AmountMismatchError, DocumentNotAcceptableError
from payments.models import DocumentStatus


class DocumentKind(Enum):
    """Which of the two payment documents a record is."""

    DEBIT_NOTE = "DebitNote"
    INVOICE = "Invoice"


S = DocumentStatus

DOCUMENT_TRANSITIONS: dict[DocumentStatus, frozenset[DocumentStatus]] = {
    S.ISSUED: frozenset({S.RECEIVED, S.ACCEPTED, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.RECEIVED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELLED, S.FAILED}),
    # "A Rejected Invoice/Debit Note can subsequently be Accepted" (ya-client spec).
    S.REJECTED: frozenset({S.ACCEPTED, S.CANCELLED}),
    # An accepted document is never rejected or cancelled; it is paid or its payment fails.
    S.ACCEPTED: frozenset({S.SETTLED, S.FAILED}),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}
"""Allowed status edges of a debit note or invoice. Issued → Accepted/Rejected is there because the
provider may learn of the acceptance before it learns its own delivery succeeded."""

TERMINAL_STATUSES = terminal_states(DOCUMENT_TRANSITIONS)


def advance(kind: DocumentKind, current: DocumentStatus, target: DocumentStatus) -> DocumentStatus:
    """``target`` if the table allows ``current -> target``; raises ``InvalidTransition`` otherwise."""
    return transition(kind.value, DOCUMENT_TRANSITIONS, current, target)


def is_accepted(status: DocumentStatus) -> bool:
    """True once a requestor has committed to pay the document."""
    return status in (S.ACCEPTED, S.SETTLED)


def check_acceptable(kind: DocumentKind, document_id: str, status: DocumentStatus) -> None:
    """Refuse acceptance of a document in a state that does not allow it (Cancelled, Failed)."""
    if status not in (S.RECEIVED, S.REJECTED, S.ISSUED):
        raise DocumentNotAcceptableError(
            f"{kind.value} {document_id} is {status.value} and cannot be accepted"
        )


def check_amount(document_id: str, due: Decimal, accepted: Decimal) -> None:
    """An acceptance must name exactly the document's amount, compared as decimals (``"1.0" == "1"``)."""
    if due != accepted:
        raise AmountMismatchError(document_id, due, accepted)


def debit_note_commitment(total_amount_due: Decimal, accepted_for_activity: Decimal) -> Decimal:
    """What accepting a cumulative debit note adds: never negative (an older note commits nothing)."""
    return max(subtract(total_amount_due, accepted_for_activity), Decimal(0))


def invoice_commitment(document_id: str, amount: Decimal, accepted_for_agreement: Decimal) -> Decimal:
    """What accepting an invoice adds to the agreement's accepted total.

    An invoice smaller than what its debit notes already committed is refused, as yagna does.
    """
    if amount < accepted_for_agreement:
        raise DocumentNotAcceptableError(
            f"Invoice {document_id} amount {format_amount(amount)} is less than the "
            f"{format_amount(accepted_for_agreement)} already accepted for its agreement"
        )
    return subtract(amount, accepted_for_agreement)
