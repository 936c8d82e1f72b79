"""The read-only summaries behind ``golem payments status`` and ``list``, over real SQLite stores
filled by the payment services (dummy driver, fake clock)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from market.core.clock import FakeClock
from payments import report
from payments.documents import DocumentKind
from payments.models import Acceptance, Payment
from payments.service import ProviderPayments, RequestorPayments
from payments.store import PaymentStore

from .conftest import PLATFORM, PROVIDER_ID, issue_debit_note, issue_invoice, new_allocation

TX = "0x" + "ab" * 32


def accept(amount: str, allocation_id: str) -> Acceptance:
    return Acceptance(total_amount_accepted=Decimal(amount), allocation_id=allocation_id)


def test_an_empty_store_reports_nothing(requestor_store: PaymentStore) -> None:
    assert report.roles(requestor_store) == []
    assert report.payment_totals(requestor_store, "requestor") == []
    assert report.document_totals(requestor_store, "requestor") == report.DocumentTotals("requestor")
    assert report.documents(requestor_store) == []
    assert report.payments(requestor_store) == []


async def relay(requestor: RequestorPayments, provider: ProviderPayments) -> None:
    """What the daemons' relay does: hand the requestor's acceptances and payments to the provider."""
    for seq, kind, document_id, body in requestor.undelivered():
        if kind == "DebitNoteAccepted":
            provider.record_acceptance(DocumentKind.DEBIT_NOTE, document_id, Acceptance.model_validate(body))
        elif kind == "InvoiceAccepted":
            provider.record_acceptance(DocumentKind.INVOICE, document_id, Acceptance.model_validate(body))
        elif kind == "Payment":
            await provider.record_payment(Payment.model_validate(body))
        requestor.mark_delivered(seq)


async def test_cumulative_debit_notes_are_counted_once(
    requestor: RequestorPayments, provider: ProviderPayments, provider_store: PaymentStore
) -> None:
    allocation = await requestor.create_allocation(new_allocation("10"))
    notes = [issue_debit_note(provider, requestor, due) for due in ("1", "2", "3")]
    other = issue_debit_note(provider, requestor, "0.5", activity_id="activity-2")
    # One activity's running total: 3 is billed, not 1 + 2 + 3.
    totals = report.document_totals(provider_store, "provider")
    assert (totals.billed, totals.accepted, totals.settled) == (Decimal("3.5"), Decimal(0), Decimal(0))
    assert totals.counts == {"DebitNote": {"RECEIVED": 4}}

    await requestor.accept_debit_note(notes[1].debit_note_id, accept("2", allocation.allocation_id))
    await requestor.accept_debit_note(other.debit_note_id, accept("0.5", allocation.allocation_id))
    for seq, kind, document_id, body in requestor.undelivered():
        if kind == "DebitNoteAccepted":  # acceptances first: accepted, not yet settled
            provider.record_acceptance(DocumentKind.DEBIT_NOTE, document_id, Acceptance.model_validate(body))
            requestor.mark_delivered(seq)
    totals = report.document_totals(provider_store, "provider")
    assert (totals.billed, totals.accepted, totals.settled) == (Decimal("3.5"), Decimal("2.5"), Decimal(0))
    await relay(requestor, provider)  # then the payments
    totals = report.document_totals(provider_store, "provider")
    assert (totals.accepted, totals.settled) == (Decimal("2.5"), Decimal("2.5"))
    assert totals.counts == {"DebitNote": {"RECEIVED": 2, "SETTLED": 2}}
    [received] = report.payment_totals(provider_store, "provider")
    assert (received.paid, received.count) == (Decimal("2.5"), 2)

    # An invoice replaces the agreement's notes: its amount is what the agreement bills.
    invoice = issue_invoice(provider, requestor, "4")
    assert report.document_totals(provider_store, "provider").billed == Decimal(4)
    await requestor.accept_invoice(invoice.invoice_id, accept("4", allocation.allocation_id))
    await relay(requestor, provider)
    totals = report.document_totals(provider_store, "provider")
    assert (totals.billed, totals.accepted, totals.settled) == (Decimal(4), Decimal(4), Decimal(4))

    [line] = report.allocations(requestor.store, requestor.clock.now())
    assert (line.total, line.spent, line.remaining, line.state) == (
        Decimal(10),
        Decimal(4),
        Decimal(6),
        "Active",
    )
    assert report.active_remaining([line], PLATFORM) == Decimal(6)
    assert report.active_remaining([line], "erc20-holesky-tglm") == 0


async def test_a_cancelled_invoice_falls_back_to_the_notes(
    requestor: RequestorPayments, provider: ProviderPayments, provider_store: PaymentStore
) -> None:
    issue_debit_note(provider, requestor, "2")
    invoice = issue_invoice(provider, requestor, "5")
    assert report.document_totals(provider_store, "provider").billed == Decimal(5)
    provider.cancel_invoice(invoice.invoice_id)
    totals = report.document_totals(provider_store, "provider")
    assert totals.billed == Decimal(2)
    assert totals.counts == {"DebitNote": {"RECEIVED": 1}, "Invoice": {"CANCELLED": 1}}


async def test_payments_are_summed_by_role_platform_and_state(
    requestor: RequestorPayments,
    provider: ProviderPayments,
    requestor_store: PaymentStore,
    clock: FakeClock,
) -> None:
    allocation = await requestor.create_allocation(new_allocation("10"))
    note = issue_debit_note(provider, requestor, "1.25", payment_due_date=clock.now() + timedelta(minutes=2))
    await requestor.accept_debit_note(note.debit_note_id, accept("1.25", allocation.allocation_id))
    body = {"paymentPlatform": "erc20-holesky-tglm", "payeeAddr": PROVIDER_ID, "details": ""}
    for payment_id, state, amount, details in (
        ("owed", "Ordered", "0.5", ""),
        ("pending", "Scheduled", "0.25", ""),
        ("paid", "Confirmed", "2", TX),
        ("failed", "Failed", "7", ""),
    ):
        requestor_store.insert_payment(
            role="requestor",
            payment_id=payment_id,
            state=state,
            body={**body, "amount": amount, "details": details},
            document_ids=("doc",),
            due=None,
            created=clock.now(),
        )

    dummy, erc20 = report.payment_totals(requestor_store, "requestor")
    assert dummy == report.PaymentTotals("requestor", PLATFORM, paid=Decimal("1.25"), count=1)
    assert erc20 == report.PaymentTotals(
        "requestor",
        "erc20-holesky-tglm",
        owed=Decimal("0.5"),
        pending=Decimal("0.25"),
        paid=Decimal(2),
        failed=Decimal(7),
        count=4,
    )
    lines = {p.payment_id: p for p in report.payments(requestor_store)}
    assert lines["paid"].tx_hash == TX
    assert lines["owed"].tx_hash is None
    dummy_line = next(p for p in lines.values() if p.platform == PLATFORM)
    assert dummy_line.details.startswith("dummy:") and dummy_line.tx_hash is None
    assert report.roles(requestor_store) == ["requestor"]


async def test_document_lines_carry_kind_amount_and_status(
    requestor: RequestorPayments, provider: ProviderPayments, provider_store: PaymentStore
) -> None:
    note = issue_debit_note(provider, requestor, "0.75")
    invoice = issue_invoice(provider, requestor, "1")
    provider.record_acceptance(DocumentKind.INVOICE, invoice.invoice_id, accept("1", "allocation-x"))
    lines = report.documents(provider_store)
    assert [(d.role, d.kind, d.document_id, d.amount, d.status) for d in lines] == [
        ("provider", "DebitNote", note.debit_note_id, Decimal("0.75"), "RECEIVED"),
        ("provider", "Invoice", invoice.invoice_id, Decimal(1), "ACCEPTED"),
    ]
    assert report.documents(provider_store, role_filter=("requestor",)) == []
    assert report.roles(provider_store) == ["provider"]
