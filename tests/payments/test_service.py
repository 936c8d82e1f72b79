"""The two payment façades over real SQLite files, a fake clock and the dummy driver.

The provider issues documents and the requestor receives them, exactly as the two daemons' relay
would hand them over; acceptance flows back to the provider and the dummy payment settles both sides.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from market.core.clock import FakeClock
from payments.documents import DocumentKind
from payments.driver import DummyDriver, ScheduledPayment
from payments.errors import (
    AllocationError,
    AllocationReleasedError,
    AmountMismatchError,
    DocumentNotAcceptableError,
    DriverError,
    InsufficientFundsError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
)
from payments.models import (
    Acceptance,
    DebitNote,
    DebitNoteAcceptedEvent,
    DebitNoteReceivedEvent,
    DocumentStatus,
    InvoiceReceivedEvent,
    InvoiceRejectedEvent,
    Payment,
    PaymentPlatform,
    Rejection,
    RejectionReason,
)
from payments.service import EventKind, ProviderPayments, RequestorPayments, resolve_platform
from payments.store import PaymentStore

from .conftest import (
    PLATFORM,
    PROVIDER_ID,
    REQUESTOR_ID,
    TERMS,
    YAPAPI_BUDGET,
    issue_debit_note,
    issue_invoice,
    new_allocation,
)


def accept(amount: str | Decimal, allocation_id: str) -> Acceptance:
    return Acceptance(total_amount_accepted=Decimal(amount), allocation_id=allocation_id)


# --- allocations ------------------------------------------------------------------------------------


async def test_allocation_from_yapapis_body(requestor: RequestorPayments) -> None:
    allocation = await requestor.create_allocation(new_allocation(YAPAPI_BUDGET))

    assert allocation.total == Decimal(YAPAPI_BUDGET)
    assert allocation.remaining == Decimal(YAPAPI_BUDGET)
    assert allocation.address == REQUESTOR_ID
    assert [a.allocation_id for a in requestor.allocations()] == [allocation.allocation_id]


async def test_allocation_refusals_store_nothing(requestor: RequestorPayments, driver: DummyDriver) -> None:
    with pytest.raises(AllocationError, match="erc20-holesky-tglm is not available"):
        await requestor.create_allocation(new_allocation(platform="erc20-holesky-tglm"))
    with pytest.raises(InsufficientFundsError):
        await requestor.create_allocation(new_allocation(str(driver.initial_balance + 1)))
    await requestor.create_allocation(new_allocation(str(driver.initial_balance - 1)))
    with pytest.raises(InsufficientFundsError, match="reserved"):
        await requestor.create_allocation(new_allocation("2"))
    assert len(requestor.allocations()) == 1


def test_platform_object_form_is_resolved() -> None:
    assert resolve_platform(PaymentPlatform(driver="erc20", network="polygon"), "x") == "erc20-polygon-glm"
    assert resolve_platform(PaymentPlatform(network="hoodi"), "x") == "erc20-hoodi-tglm"
    assert resolve_platform(None, "dummy-glm") == "dummy-glm"


async def test_release(requestor: RequestorPayments) -> None:
    allocation = await requestor.create_allocation(new_allocation())
    requestor.release_allocation(allocation.allocation_id)

    assert requestor.allocations() == []
    with pytest.raises(AllocationReleasedError):
        requestor.allocation(allocation.allocation_id)
    with pytest.raises(AllocationReleasedError):
        requestor.release_allocation(allocation.allocation_id)
    with pytest.raises(NotFoundError):
        requestor.release_allocation("nope")


async def test_demand_decoration(requestor: RequestorPayments) -> None:
    allocation = await requestor.create_allocation(new_allocation())
    decoration = requestor.demand_decoration([allocation.allocation_id])

    assert decoration.to_wire() == {
        "properties": [
            {"key": f"golem.com.payment.platform.{PLATFORM}.address", "value": REQUESTOR_ID},
            {"key": "golem.com.payment.protocol.version", "value": "3"},
        ],
        "constraints": [
            f"(|(golem.com.payment.platform.{PLATFORM}.address=*))",
            "(golem.com.payment.protocol.version>1)",
        ],
    }
    with pytest.raises(NotFoundError):
        requestor.demand_decoration([allocation.allocation_id, "unknown"])


# --- the whole flow ---------------------------------------------------------------------------------


async def test_debit_notes_then_invoice_end_to_end(
    requestor: RequestorPayments, provider: ProviderPayments, driver: DummyDriver, clock: FakeClock
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    first = issue_debit_note(provider, requestor, "0.1")
    clock.advance(1)
    second = issue_debit_note(provider, requestor, "0.25")
    assert second.previous_debit_note_id == first.debit_note_id
    assert second.status is DocumentStatus.RECEIVED

    await requestor.accept_debit_note(second.debit_note_id, accept("0.25", allocation.allocation_id))
    # The older note commits nothing more: notes are cumulative per activity.
    await requestor.accept_debit_note(first.debit_note_id, accept("0.1", allocation.allocation_id))
    assert requestor.allocation(allocation.allocation_id).spent == Decimal("0.25")
    # Every accepted note is paid for, as in yagna's payment cycles, due date or not: here the
    # 0.25 the activity reached (the older note adds nothing).
    [note_transfer] = driver.transfers.values()
    assert note_transfer.amount == Decimal("0.25")

    invoice = issue_invoice(provider, requestor, "0.4")
    await requestor.accept_invoice(invoice.invoice_id, accept("0.4", allocation.allocation_id))

    assert requestor.allocation(allocation.allocation_id).spent == Decimal("0.4")
    assert requestor.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
    assert requestor.debit_note(second.debit_note_id).status is DocumentStatus.SETTLED
    # The invoice pays only what the notes' payment did not.
    amounts = sorted((t.amount, t.payee) for t in driver.transfers.values())
    assert amounts == [(Decimal("0.15"), PROVIDER_ID), (Decimal("0.25"), PROVIDER_ID)]
    payments = requestor.payments()
    assert sorted(p.details for p in payments) == sorted(f"dummy:{t}" for t in driver.transfers)

    # The daemon relays what the requestor owes the provider; the provider records it.
    settled: list[str] = []
    for seq, kind, document_id, body in requestor.undelivered():
        if kind == "DebitNoteAccepted":
            provider.record_acceptance(DocumentKind.DEBIT_NOTE, document_id, Acceptance.model_validate(body))
        elif kind == "InvoiceAccepted":
            provider.record_acceptance(DocumentKind.INVOICE, document_id, Acceptance.model_validate(body))
        elif kind == "Payment":
            settled += await provider.record_payment(Payment.model_validate(body))
        assert requestor.mark_delivered(seq)
    assert set(settled) == {invoice.invoice_id, first.debit_note_id, second.debit_note_id}
    assert requestor.undelivered() == []
    assert provider.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
    assert provider.debit_note(first.debit_note_id).status is DocumentStatus.SETTLED
    kinds = [e.event_type for e in provider.invoice_events()]
    assert kinds == ["InvoiceAcceptedEvent", "InvoiceSettledEvent"]
    # A replayed payment message changes nothing.
    assert await provider.record_payment(payments[0]) == []


async def test_payable_debit_note_is_paid_mid_agreement(
    requestor: RequestorPayments, provider: ProviderPayments, driver: DummyDriver, clock: FakeClock
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    note = issue_debit_note(provider, requestor, "0.3", payment_due_date=clock.now() + timedelta(seconds=120))
    await requestor.accept_debit_note(note.debit_note_id, accept("0.3", allocation.allocation_id))
    invoice = issue_invoice(provider, requestor, "0.5")
    await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))

    assert sorted(t.amount for t in driver.transfers.values()) == [Decimal("0.2"), Decimal("0.3")]
    assert requestor.allocation(allocation.allocation_id).spent == Decimal("0.5")


async def test_overspending_acceptance_changes_nothing(
    requestor: RequestorPayments, provider: ProviderPayments, driver: DummyDriver
) -> None:
    allocation = await requestor.create_allocation(new_allocation(YAPAPI_BUDGET))
    invoice = issue_invoice(provider, requestor, "0.1000000000000000055511151231257827021181583404541015626")
    events_before = requestor.invoice_events(kinds=list(EventKind))

    with pytest.raises(InsufficientFundsError):
        await requestor.accept_invoice(invoice.invoice_id, accept(invoice.amount, allocation.allocation_id))

    assert requestor.invoice(invoice.invoice_id).status is DocumentStatus.RECEIVED
    assert requestor.allocation(allocation.allocation_id).spent == 0
    assert requestor.invoice_events(kinds=list(EventKind)) == events_before
    assert requestor.undelivered() == [] and requestor.payments() == [] and driver.transfers == {}


async def test_acceptance_refusals(requestor: RequestorPayments, provider: ProviderPayments) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.5")

    with pytest.raises(AmountMismatchError):
        await requestor.accept_invoice(invoice.invoice_id, accept("0.4", allocation.allocation_id))
    with pytest.raises(InvalidInputError, match="not found"):
        await requestor.accept_invoice(invoice.invoice_id, accept("0.5", "unknown"))
    with pytest.raises(NotFoundError):
        await requestor.accept_invoice("unknown", accept("0.5", allocation.allocation_id))
    # "0.50" is the same amount as "0.5".
    await requestor.accept_invoice(invoice.invoice_id, accept("0.50", allocation.allocation_id))
    # Accepting again is a no-op, as in yagna.
    await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))
    assert requestor.allocation(allocation.allocation_id).spent == Decimal("0.5")
    with pytest.raises(InvalidStateError):
        requestor.reject_invoice(
            invoice.invoice_id,
            Rejection(rejection_reason=RejectionReason.BAD_SERVICE, total_amount_accepted=Decimal(0)),
        )


async def test_cancelled_invoice_cannot_be_accepted(
    requestor: RequestorPayments, provider: ProviderPayments
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.5")
    provider.cancel_invoice(invoice.invoice_id)
    [(_, _, document_id, _)] = [item for item in provider.undelivered() if item[1] == "InvoiceCancelled"]
    requestor.receive_cancellation(DocumentKind.INVOICE, document_id)

    with pytest.raises(DocumentNotAcceptableError):
        await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))
    assert [e.event_type for e in requestor.invoice_events()] == [
        "InvoiceReceivedEvent",
        "InvoiceCancelledEvent",
    ]


async def test_rejection_then_acceptance(requestor: RequestorPayments, provider: ProviderPayments) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.5")
    rejection = Rejection(
        rejection_reason=RejectionReason.INCORRECT_AMOUNT,
        total_amount_accepted=Decimal("0.4"),
        message="too much",
    )
    requestor.reject_invoice(invoice.invoice_id, rejection)
    [event] = requestor.invoice_events(kinds=[EventKind.REJECTED])
    assert isinstance(event, InvoiceRejectedEvent) and event.rejection.message == "too much"

    await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))
    assert requestor.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED

    note = issue_debit_note(provider, requestor, "0.1")
    with pytest.raises(NotSupportedError):
        requestor.reject_debit_note(note.debit_note_id, rejection)


async def test_debit_note_after_the_accepted_invoice_is_ignored(
    requestor: RequestorPayments, provider: ProviderPayments, driver: DummyDriver
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.5")
    await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))
    late = issue_debit_note(provider, requestor, "0.5")

    await requestor.accept_debit_note(late.debit_note_id, accept("0.5", allocation.allocation_id))

    assert requestor.allocation(allocation.allocation_id).spent == Decimal("0.5")
    assert requestor.debit_note(late.debit_note_id).status is DocumentStatus.RECEIVED
    assert len(driver.transfers) == 1


def test_redelivered_document_is_stored_once(
    requestor: RequestorPayments, provider: ProviderPayments
) -> None:
    note = issue_debit_note(provider, requestor, "0.1")
    again = requestor.receive_debit_note(provider.debit_note(note.debit_note_id))

    assert again == note
    assert len(requestor.debit_note_events()) == 1


def test_provider_outbox_delivery_marks_documents_received(
    provider: ProviderPayments, requestor: RequestorPayments
) -> None:
    note = provider.issue_debit_note(TERMS, "activity-1", Decimal("0.1"))
    [(seq, kind, document_id, body)] = provider.undelivered()
    assert (kind, document_id) == ("DebitNote", note.debit_note_id)
    assert provider.debit_note(note.debit_note_id).status is DocumentStatus.ISSUED

    # The relay hands the body to the requestor and reports delivery.
    requestor.receive_debit_note(DebitNote.model_validate(body))
    assert provider.mark_delivered(seq)
    assert not provider.mark_delivered(seq)
    assert provider.undelivered() == []
    assert provider.debit_note(note.debit_note_id).status is DocumentStatus.RECEIVED
    assert requestor.debit_note(note.debit_note_id).total_amount_due == Decimal("0.1")


def test_provider_refuses_a_shrinking_debit_note(
    provider: ProviderPayments, requestor: RequestorPayments
) -> None:
    issue_debit_note(provider, requestor, "0.3")
    with pytest.raises(InvalidInputError, match="cumulative"):
        issue_debit_note(provider, requestor, "0.2")


# --- event feeds ------------------------------------------------------------------------------------


def test_after_timestamp_is_strictly_after(
    requestor: RequestorPayments, provider: ProviderPayments, clock: FakeClock
) -> None:
    # Three notes in the same instant of a frozen clock still get distinct, increasing dates.
    notes = [issue_debit_note(provider, requestor, "0.1", activity_id=f"act-{i}") for i in range(3)]
    events = requestor.debit_note_events()
    assert [e.debit_note_id for e in events] == [n.debit_note_id for n in notes]
    dates = [e.event_date for e in events]
    assert dates == sorted(set(dates))

    assert [e.debit_note_id for e in requestor.debit_note_events(after=dates[0])] == [
        n.debit_note_id for n in notes[1:]
    ]
    assert requestor.debit_note_events(after=dates[-1]) == []
    # Paging by the last seen date, one at a time, visits every event exactly once.
    seen, after = [], None
    while page := requestor.debit_note_events(after=after, max_events=1):
        seen.append(page[0].debit_note_id)
        after = page[0].event_date
    assert seen == [n.debit_note_id for n in notes]
    # An instant before everything sees everything.
    assert len(requestor.debit_note_events(after=clock.now() - timedelta(microseconds=1))) == 3


async def test_requestor_feed_defaults_to_received_and_cancelled(
    requestor: RequestorPayments, provider: ProviderPayments
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    note = issue_debit_note(provider, requestor, "0.1")
    await requestor.accept_debit_note(note.debit_note_id, accept("0.1", allocation.allocation_id))

    assert [type(e) for e in requestor.debit_note_events()] == [DebitNoteReceivedEvent]
    assert [type(e) for e in requestor.debit_note_events(kinds=[EventKind.ACCEPTED])] == [
        DebitNoteAcceptedEvent
    ]


async def test_long_poll_wakes_on_a_new_document(
    requestor: RequestorPayments, provider: ProviderPayments
) -> None:
    waiting = asyncio.create_task(requestor.wait_invoice_events(after=None, timeout=10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    invoice = issue_invoice(provider, requestor, "0.5")

    [event] = await asyncio.wait_for(waiting, 2)
    assert isinstance(event, InvoiceReceivedEvent) and event.invoice_id == invoice.invoice_id
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await requestor.wait_invoice_events(after=event.event_date, timeout=0.2) == []
    assert loop.time() - started >= 0.19


# --- persistence ------------------------------------------------------------------------------------


class FlakyDriver(DummyDriver):
    """A dummy that fails while ``down`` is set, as a chain outage would."""

    down: bool = True

    async def schedule_payment(self, **kwargs: object) -> ScheduledPayment:  # type: ignore[override]
        if self.down:
            raise DriverError("chain unreachable")
        return await super().schedule_payment(**kwargs)  # type: ignore[arg-type]


async def test_nothing_owed_is_lost_across_a_restart(
    tmp_path: Path, provider: ProviderPayments, clock: FakeClock
) -> None:
    path = tmp_path / "restart.db"
    flaky = FlakyDriver(clock=clock)
    store = PaymentStore.open(path)
    requestor = RequestorPayments(store, [flaky], identity=REQUESTOR_ID, clock=clock)
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.7")
    await requestor.accept_invoice(invoice.invoice_id, accept("0.7", allocation.allocation_id))
    assert requestor.owed() == Decimal("0.7")
    assert requestor.payments() == []  # ordered, never scheduled
    store.close()

    # A new process: same file, the chain is back.
    flaky.down = False
    reopened = RequestorPayments(PaymentStore.open(path), [flaky], identity=REQUESTOR_ID, clock=clock)
    assert reopened.invoice(invoice.invoice_id).status is DocumentStatus.ACCEPTED
    assert reopened.allocation(allocation.allocation_id).spent == Decimal("0.7")
    assert [kind for _, kind, _, _ in reopened.undelivered()] == ["InvoiceAccepted"]
    assert await reopened.resume() == 1
    assert reopened.owed() == 0
    assert [t.amount for t in flaky.transfers.values()] == [Decimal("0.7")]
    assert reopened.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
    # Resuming again pays nothing twice.
    assert await reopened.resume() == 0
    assert len(flaky.transfers) == 1
    reopened.store.close()


async def test_provider_refuses_a_payment_not_backed_by_a_transfer(
    requestor: RequestorPayments, provider: ProviderPayments
) -> None:
    allocation = await requestor.create_allocation(new_allocation("1"))
    invoice = issue_invoice(provider, requestor, "0.5")
    await requestor.accept_invoice(invoice.invoice_id, accept("0.5", allocation.allocation_id))
    provider.record_acceptance(
        DocumentKind.INVOICE, invoice.invoice_id, accept("0.5", allocation.allocation_id)
    )
    [payment] = requestor.payments()

    share = payment.agreement_payments[0].model_copy(update={"amount": Decimal("0.6")})
    forged = payment.model_copy(
        update={"payment_id": "forged", "amount": Decimal("0.6"), "agreement_payments": [share]}
    )
    with pytest.raises(InvalidInputError, match=r"less than the 0\.6 claimed"):
        await provider.record_payment(forged)
    # The same transfer claimed twice under two payment ids is a double claim.
    await provider.record_payment(payment)
    with pytest.raises(InvalidInputError, match=r"less than the 1\.0 claimed"):
        await provider.record_payment(payment.model_copy(update={"payment_id": "again"}))
    assert provider.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
