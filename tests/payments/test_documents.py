"""The document state machine and yagna's acceptance arithmetic, table-driven."""

from __future__ import annotations

from decimal import Decimal

import pytest

from market.core.errors import InvalidTransition
from payments.documents import (
    DOCUMENT_TRANSITIONS,
    TERMINAL_STATUSES,
    DocumentKind,
    advance,
    check_acceptable,
    check_amount,
    debit_note_commitment,
    invoice_commitment,
)
from payments.driver import PAYMENT_TRANSITIONS, PaymentState, advance_payment
from payments.errors import AmountMismatchError, DocumentNotAcceptableError
from payments.models import DocumentStatus

S = DocumentStatus

ALLOWED = {
    (S.ISSUED, S.RECEIVED),
    (S.ISSUED, S.ACCEPTED),
    (S.ISSUED, S.REJECTED),
    (S.ISSUED, S.CANCELLED),
    (S.ISSUED, S.FAILED),
    (S.RECEIVED, S.ACCEPTED),
    (S.RECEIVED, S.REJECTED),
    (S.RECEIVED, S.CANCELLED),
    (S.RECEIVED, S.FAILED),
    (S.REJECTED, S.ACCEPTED),
    (S.REJECTED, S.CANCELLED),
    (S.ACCEPTED, S.SETTLED),
    (S.ACCEPTED, S.FAILED),
}


def test_every_status_has_a_row_and_the_wire_values_are_yagnas() -> None:
    assert set(DOCUMENT_TRANSITIONS) == set(DocumentStatus)
    assert [s.value for s in DocumentStatus] == [
        "ISSUED",
        "RECEIVED",
        "ACCEPTED",
        "REJECTED",
        "FAILED",
        "SETTLED",
        "CANCELLED",
    ]
    assert {S.SETTLED, S.CANCELLED, S.FAILED} == TERMINAL_STATUSES


@pytest.mark.parametrize("current", list(DocumentStatus))
@pytest.mark.parametrize("target", list(DocumentStatus))
def test_transition_table(current: DocumentStatus, target: DocumentStatus) -> None:
    if (current, target) in ALLOWED:
        assert advance(DocumentKind.INVOICE, current, target) is target
    else:
        with pytest.raises(InvalidTransition) as info:
            advance(DocumentKind.DEBIT_NOTE, current, target)
        assert info.value.kind == "DebitNote"


def test_accepted_documents_cannot_be_rejected_or_cancelled() -> None:
    for target in (S.REJECTED, S.CANCELLED, S.RECEIVED):
        with pytest.raises(InvalidTransition):
            advance(DocumentKind.INVOICE, S.ACCEPTED, target)


@pytest.mark.parametrize("status", [S.CANCELLED, S.FAILED, S.SETTLED, S.ACCEPTED])
def test_only_open_documents_are_acceptable(status: DocumentStatus) -> None:
    with pytest.raises(DocumentNotAcceptableError):
        check_acceptable(DocumentKind.INVOICE, "inv", status)
    for ok in (S.RECEIVED, S.REJECTED):
        check_acceptable(DocumentKind.INVOICE, "inv", ok)


def test_amounts_are_compared_as_decimals() -> None:
    check_amount("d", Decimal("1.0"), Decimal("1"))
    check_amount("d", Decimal("0.00020"), Decimal("2E-4"))
    with pytest.raises(AmountMismatchError) as info:
        check_amount(
            "d", Decimal("0.1000000000000000055511151231257827021181583404541015625"), Decimal("0.1")
        )
    assert "0.1000000000000000055511151231257827021181583404541015625" in str(info.value)


def test_debit_notes_are_cumulative() -> None:
    assert debit_note_commitment(Decimal("0.3"), Decimal("0.1")) == Decimal("0.2")
    # An older (smaller) note accepted late commits nothing.
    assert debit_note_commitment(Decimal("0.1"), Decimal("0.3")) == 0


def test_invoice_commits_what_the_debit_notes_did_not() -> None:
    assert invoice_commitment("i", Decimal("1"), Decimal("0.25")) == Decimal("0.75")
    with pytest.raises(DocumentNotAcceptableError):
        invoice_commitment("i", Decimal("0.2"), Decimal("0.25"))


def test_payment_table() -> None:
    assert set(PAYMENT_TRANSITIONS) == set(PaymentState)
    assert advance_payment(PaymentState.ORDERED, PaymentState.CONFIRMED) is PaymentState.CONFIRMED
    with pytest.raises(InvalidTransition):
        advance_payment(PaymentState.CONFIRMED, PaymentState.ORDERED)
    with pytest.raises(InvalidTransition):
        advance_payment(PaymentState.FAILED, PaymentState.CONFIRMED)
