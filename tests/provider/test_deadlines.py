"""Debit-note deadlines and earnings, as pure functions over stored documents (table-driven)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from payments.models import DebitNote, DocumentStatus, Invoice
from provider.deadlines import BreakCode, check_deadlines, payment_due_date
from provider.ledger import document_infos, earnings
from tests.provider.factories import NOW

S = DocumentStatus
PLATFORM = "erc20-holesky-tglm"


def note(
    note_id: str,
    at: float,
    status: DocumentStatus = S.RECEIVED,
    *,
    activity: str = "act-1",
    agreement: str = "agr-1",
    due: float | None = None,
    amount: str = "1",
    platform: str = PLATFORM,
) -> DebitNote:
    return DebitNote(
        debit_note_id=note_id,
        issuer_id="0xp",
        recipient_id="0xr",
        payee_addr="0xp",
        payer_addr="0xr",
        payment_platform=platform,
        timestamp=NOW + timedelta(seconds=at),
        agreement_id=agreement,
        activity_id=activity,
        total_amount_due=Decimal(amount),
        payment_due_date=None if due is None else NOW + timedelta(seconds=due),
        status=status,
    )


def invoice(agreement: str, amount: str, status: DocumentStatus, platform: str = PLATFORM) -> Invoice:
    return Invoice(
        invoice_id=f"inv-{agreement}",
        issuer_id="0xp",
        recipient_id="0xr",
        payee_addr="0xp",
        payer_addr="0xr",
        payment_platform=platform,
        timestamp=NOW + timedelta(seconds=100),
        agreement_id=agreement,
        activity_ids=["act-1"],
        amount=Decimal(amount),
        payment_due_date=NOW + timedelta(days=1),
        status=status,
    )


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("notes", "accept_timeout", "now", "breach", "next_deadline"),
    [
        # No notes, or no accept timeout negotiated and nothing payable: never a deadline.
        ([], 10, 100, None, None),
        ([note("n1", 0)], None, 1000, None, None),
        # Not accepted: the deadline is issue + timeout; at it, the agreement is broken.
        ([note("n1", 0)], 10, 9.9, None, 10),
        ([note("n1", 0)], 10, 10, ("DebitNotesDeadline", "n1"), None),
        # Accepted (or settled) in time: no deadline left.
        ([note("n1", 0, S.ACCEPTED)], 10, 1000, None, None),
        ([note("n1", 0, S.SETTLED)], 10, 1000, None, None),
        # Cumulative notes: a later accepted note of the same activity covers an earlier one...
        ([note("n1", 0), note("n2", 5, S.ACCEPTED)], 10, 1000, None, None),
        # ... but not a later unaccepted one, nor another activity's notes.
        ([note("n1", 0, S.ACCEPTED), note("n2", 5)], 10, 14, None, 15),
        ([note("n1", 0, S.ACCEPTED), note("n2", 5)], 10, 15, ("DebitNotesDeadline", "n2"), None),
        (
            [note("a", 0, S.ACCEPTED), note("b", 0, activity="act-2")],
            10,
            10,
            ("DebitNotesDeadline", "b"),
            None,
        ),
        # The earliest breach is reported.
        (
            [note("n1", 3, activity="x"), note("n2", 1, activity="y")],
            10,
            20,
            ("DebitNotesDeadline", "n2"),
            None,
        ),
        # A payable note must be settled by its due date, accepted or not.
        ([note("n1", 0, S.ACCEPTED, due=30)], 10, 29, None, 30),
        ([note("n1", 0, S.ACCEPTED, due=30)], 10, 30, ("DebitNoteNotPaid", "n1"), None),
        ([note("n1", 0, S.SETTLED, due=30)], 10, 1000, None, None),
        ([note("n1", 0, S.ACCEPTED, due=30), note("n2", 20, S.SETTLED, due=50)], 10, 1000, None, None),
        # Without an accept timeout, an unaccepted payable note still has its payment deadline.
        ([note("n1", 0, due=30)], None, 30, ("DebitNoteNotPaid", "n1"), None),
        # Both deadlines pending: the next one is the earlier.
        ([note("n1", 0, due=30)], 10, 5, None, 10),
    ],
)
def test_check_deadlines(
    notes: list[DebitNote],
    accept_timeout: float | None,
    now: float,
    breach: tuple[str, str] | None,
    next_deadline: float | None,
) -> None:
    check = check_deadlines(notes, accept_timeout, at(now))
    if breach is None:
        assert check.breach is None
    else:
        assert check.breach is not None
        assert (check.breach.code.value, check.breach.debit_note_id) == breach
    assert check.next_deadline == (None if next_deadline is None else at(next_deadline))


def test_breach_reason_is_a_provider_reason_object() -> None:
    check = check_deadlines([note("n1", 0, activity="act-9")], 10, at(60))
    assert check.breach is not None and check.breach.code is BreakCode.DEBIT_NOTES_DEADLINE
    reason = check.breach.reason()
    assert reason["golem.provider.code"] == "DebitNotesDeadline"
    assert "n1" in reason["message"] and "act-9" in reason["message"] and "not accepted" in reason["message"]
    unpaid = check_deadlines([note("n2", 0, S.ACCEPTED, due=5)], None, at(6)).breach
    assert unpaid is not None and unpaid.reason()["golem.provider.code"] == "DebitNoteNotPaid"


@pytest.mark.parametrize(
    ("last_payable", "timeout", "now", "due"),
    [
        (0, None, 1000, None),  # no payment timeout negotiated: never payable
        (0, 120, 119, None),  # too soon after the last payable note (or the start)
        (0, 120, 120, 240),  # payable: due one timeout after issue
        (100, 120, 500, 620),
    ],
)
def test_payment_due_date(last_payable: float, timeout: float | None, now: float, due: float | None) -> None:
    assert payment_due_date(at(last_payable), timeout, at(now)) == (None if due is None else at(due))


def test_earnings_per_platform() -> None:
    notes = [
        # agr-1, two activities, no invoice yet: latest note per activity counts.
        note("a1", 0, S.ACCEPTED, amount="1"),
        note("a2", 10, S.RECEIVED, amount="3"),
        note("b1", 0, S.SETTLED, activity="act-2", amount="2"),
        # agr-2: its invoice replaces the notes.
        note("c1", 0, S.ACCEPTED, agreement="agr-2", activity="act-3", amount="4"),
        # agr-3 on another platform.
        note("d1", 0, S.RECEIVED, agreement="agr-3", activity="act-4", amount="7", platform="dummy-glm"),
    ]
    invoices = [
        invoice("agr-2", "5", S.SETTLED),
        invoice("agr-3", "9", S.CANCELLED, platform="dummy-glm"),  # a cancelled invoice does not count
    ]
    totals = {e.platform: e for e in earnings(notes, invoices)}
    assert set(totals) == {PLATFORM, "dummy-glm"}
    main = totals[PLATFORM]
    assert (main.agreements, main.issued, main.accepted, main.settled) == (
        2,
        Decimal(3 + 2 + 5),
        Decimal(1 + 2 + 5),
        Decimal(0 + 2 + 5),
    )
    other = totals["dummy-glm"]
    assert (other.agreements, other.issued, other.accepted, other.settled) == (
        1,
        Decimal(7),
        Decimal(0),
        Decimal(0),
    )
    assert earnings([], []) == []


def test_document_infos_oldest_first() -> None:
    infos = document_infos([note("n2", 20), note("n1", 10, due=40)], [invoice("agr-1", "2", S.ISSUED)])
    assert [(d.kind, d.document_id) for d in infos] == [
        ("DebitNote", "n1"),
        ("DebitNote", "n2"),
        ("Invoice", "inv-agr-1"),
    ]
    assert infos[0].payment_due_date == at(40) and infos[0].activity_ids == ["act-1"]
    assert infos[2].amount == Decimal(2) and infos[2].status is S.ISSUED


def test_notes_from_before_a_restart_get_a_grace() -> None:
    # Restarted at t=100 with 30 s of grace: an old unaccepted note (deadline t=10) waits until t=130,
    # since the requestor's acceptance may still be on its way; a note issued after the restart does not.
    resumed = (at(100), at(130))
    old = note("old", 0)
    check = check_deadlines([old], 10, at(101), resumed=resumed)
    assert check.breach is None and check.next_deadline == at(130)
    late = check_deadlines([old], 10, at(130), resumed=resumed).breach
    assert late is not None and late.debit_note_id == "old"
    fresh = check_deadlines([note("new", 105, activity="act-2")], 10, at(115), resumed=resumed).breach
    assert fresh is not None and fresh.debit_note_id == "new"
