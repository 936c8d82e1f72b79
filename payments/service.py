"""The payment façades the daemons call: :class:`RequestorPayments` and :class:`ProviderPayments`.

Both sit over a :class:`~payments.store.PaymentStore` and a :class:`~market.core.clock.Clock`; they do
no networking themselves. Documents travel between the parties through the daemons' relay: the
provider daemon issues a document here, delivers what :meth:`ProviderPayments.undelivered` lists,
and the requestor daemon hands it to :meth:`RequestorPayments.receive_debit_note` /
:meth:`~RequestorPayments.receive_invoice`. Acceptances, rejections and payment confirmations flow
back the same way. Whatever one side owes the other a message about is written to the outbox in
the same transaction as the change that caused it, so nothing is lost if the process dies before it
is sent; payment orders are written before the driver is asked to pay, and :meth:`resume` re-issues
any the driver never confirmed.

Event feeds (``/debitNoteEvents``, ``/invoiceEvents``) are read with ``afterTimestamp`` semantics:
only events strictly after the given instant, oldest first. Event dates strictly increase, so a
poller that passes back the date of the last event it saw never misses or repeats one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import TypeAdapter

from market.core.clock import Clock, SystemClock
from market.core.ids import new_id, node_id
from payments.allocation import (
    Allocation,
    AllocationState,
    add,
    check_reservation,
    format_amount,
    subtract,
)
from payments.documents import (
    DocumentKind,
    advance,
    check_acceptable,
    check_amount,
    debit_note_commitment,
    invoice_commitment,
    is_accepted,
)
from payments.driver import PaymentDriver, PaymentState, advance_payment, drivers_by_platform
from payments.errors import (
    AllocationError,
    AllocationReleasedError,
    DriverError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    PaymentRejectedError,
)
from payments.models import (
    Acceptance,
    ActivityPayment,
    AgreementPayment,
    DebitNote,
    DebitNoteEvent,
    DocumentStatus,
    Invoice,
    InvoiceEvent,
    MarketDecoration,
    MarketProperty,
    NewAllocation,
    Payment,
    PaymentPlatform,
    Rejection,
)
from payments.store import DocumentRow, PaymentStore, Totals

log = logging.getLogger(__name__)

_D = TypeVar("_D", DebitNote, Invoice)
_T = TypeVar("_T")

REQUESTOR = "requestor"
PROVIDER = "provider"

DEFAULT_DRIVER = "erc20"
DEFAULT_NETWORK = "holesky"
PROTOCOL_VERSION = "3"
MAINNET_NETWORKS = frozenset({"mainnet", "polygon"})

_DEBIT_NOTE = DocumentKind.DEBIT_NOTE.value
_INVOICE = DocumentKind.INVOICE.value


class EventKind(StrEnum):
    """What happened to a document; names match yagna's ``X-Requestor-Events`` filter values."""

    RECEIVED = "RECEIVED"
    """The document reached the requestor."""
    ACCEPTED = "ACCEPTED"
    """The requestor accepted it."""
    REJECTED = "REJECTED"
    """The requestor rejected it."""
    CANCELLED = "CANCELLED"
    """The provider cancelled it."""
    SETTLED = "SETTLED"
    """It was paid."""
    FAILED = "FAILED"
    """Its payment failed."""

    def event_type(self, kind: DocumentKind) -> str:
        """The wire ``eventType``, e.g. ``DebitNoteReceivedEvent``."""
        return f"{kind.value}{self.value.capitalize()}Event"


REQUESTOR_DEFAULT_EVENTS = frozenset({EventKind.RECEIVED, EventKind.CANCELLED})
"""What a requestor's feeds show unless ``X-Requestor-Events`` says otherwise (as in yagna)."""
PROVIDER_DEFAULT_EVENTS = frozenset(
    {EventKind.ACCEPTED, EventKind.REJECTED, EventKind.SETTLED, EventKind.CANCELLED}
)
"""What a provider's feeds show by default (as in yagna)."""

_DEBIT_NOTE_EVENT: TypeAdapter[DebitNoteEvent] = TypeAdapter(DebitNoteEvent)
_INVOICE_EVENT: TypeAdapter[InvoiceEvent] = TypeAdapter(InvoiceEvent)


def resolve_platform(value: str | PaymentPlatform | None, default: str) -> str:
    """A platform string from what an allocation request names; yagna's defaults fill the gaps."""
    if value is None:
        return default
    if isinstance(value, str):
        if not value.strip():
            raise AllocationError("paymentPlatform is empty")
        return value
    driver = (value.driver or DEFAULT_DRIVER).lower()
    network = (value.network or DEFAULT_NETWORK).lower()
    token = (value.token or ("glm" if network in MAINNET_NETWORKS else "tglm")).lower()
    return f"{driver}-{network}-{token}"


@dataclass(frozen=True)
class AgreementTerms:
    """The payment terms of one agreement, as the provider daemon read them from it."""

    agreement_id: str
    requestor_id: str
    provider_id: str
    payer_addr: str
    payee_addr: str
    platform: str


class _Waiters:
    """Wakes long-polls when a feed may have grown."""

    def __init__(self) -> None:
        self._futures: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for future in self._futures:
            if not future.done():
                future.set_result(None)
        self._futures.clear()

    async def wait(self, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.add(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            pass
        finally:
            self._futures.discard(future)


class _PaymentsSide:
    """What both façades share: documents, event feeds and the outbox of one role."""

    role: str
    default_events: frozenset[EventKind]

    def __init__(self, store: PaymentStore, *, identity: str, clock: Clock | None = None) -> None:
        self.store = store
        self.identity = node_id(identity)
        self.clock: Clock = clock or SystemClock()
        self._waiters = _Waiters()

    # --- documents --------------------------------------------------------------------------------

    def _row(self, kind: DocumentKind, document_id: str) -> DocumentRow:
        row = self.store.document(self.role, kind.value, document_id)
        if row is None:
            raise NotFoundError(f"{kind.value} {document_id} not found")
        return row

    @staticmethod
    def _debit_note(row: DocumentRow) -> DebitNote:
        return DebitNote.model_validate({**row.body, "status": row.status})

    @staticmethod
    def _invoice(row: DocumentRow) -> Invoice:
        return Invoice.model_validate({**row.body, "status": row.status})

    def debit_note(self, debit_note_id: str) -> DebitNote:
        """One debit note; :class:`NotFoundError` if this node does not hold it in this role."""
        return self._debit_note(self._row(DocumentKind.DEBIT_NOTE, debit_note_id))

    def debit_notes(self, *, after: datetime | None = None, max_items: int | None = None) -> list[DebitNote]:
        """Debit notes stored strictly after ``after``, oldest first."""
        return [
            self._debit_note(r)
            for r in self.store.documents(self.role, _DEBIT_NOTE, after=after, limit=max_items)
        ]

    def invoice(self, invoice_id: str) -> Invoice:
        """One invoice; :class:`NotFoundError` if this node does not hold it in this role."""
        return self._invoice(self._row(DocumentKind.INVOICE, invoice_id))

    def invoices(self, *, after: datetime | None = None, max_items: int | None = None) -> list[Invoice]:
        """Invoices stored strictly after ``after``, oldest first."""
        return [
            self._invoice(r) for r in self.store.documents(self.role, _INVOICE, after=after, limit=max_items)
        ]

    def _set_status(
        self,
        kind: DocumentKind,
        row: DocumentRow,
        target: DocumentStatus,
        *,
        allocation_id: str | None = None,
    ) -> None:
        advance(kind, DocumentStatus(row.status), target)
        body = {**row.body, "status": target.value}
        self.store.update_document(
            self.role,
            row.document_id,
            status=target.value,
            body=body,
            allocation_id=allocation_id or row.allocation_id,
        )

    # --- events -----------------------------------------------------------------------------------

    def _event(
        self, kind: DocumentKind, document_id: str, what: EventKind, extra: dict[str, Any] | None = None
    ) -> datetime:
        id_key = "debitNoteId" if kind is DocumentKind.DEBIT_NOTE else "invoiceId"
        body = {"eventType": what.event_type(kind), id_key: document_id, **(extra or {})}
        return self.store.append_event(
            self.role, kind.value, document_id, what.event_type(kind), body, self.clock.now()
        )

    def _event_types(self, kind: DocumentKind, kinds: Collection[EventKind] | None) -> list[str]:
        return [what.event_type(kind) for what in (self.default_events if kinds is None else kinds)]

    def debit_note_events(
        self,
        *,
        after: datetime | None = None,
        max_events: int = 10,
        kinds: Collection[EventKind] | None = None,
    ) -> list[DebitNoteEvent]:
        """Debit-note events strictly after ``after`` (oldest first), of ``kinds`` (default: the role's)."""
        rows = self.store.events(
            self.role,
            _DEBIT_NOTE,
            after=after,
            types=self._event_types(DocumentKind.DEBIT_NOTE, kinds),
            limit=max_events,
        )
        return [_DEBIT_NOTE_EVENT.validate_python({**r.body, "eventDate": r.event_date}) for r in rows]

    def invoice_events(
        self,
        *,
        after: datetime | None = None,
        max_events: int = 10,
        kinds: Collection[EventKind] | None = None,
    ) -> list[InvoiceEvent]:
        """Invoice events strictly after ``after`` (oldest first), of ``kinds`` (default: the role's)."""
        rows = self.store.events(
            self.role,
            _INVOICE,
            after=after,
            types=self._event_types(DocumentKind.INVOICE, kinds),
            limit=max_events,
        )
        return [_INVOICE_EVENT.validate_python({**r.body, "eventDate": r.event_date}) for r in rows]

    async def wait_debit_note_events(
        self,
        *,
        after: datetime | None,
        timeout: float,
        max_events: int = 10,
        kinds: Collection[EventKind] | None = None,
    ) -> list[DebitNoteEvent]:
        """Long-poll: the events as soon as there is at least one, or ``[]`` after ``timeout`` seconds."""
        return await self._long_poll(
            lambda: self.debit_note_events(after=after, max_events=max_events, kinds=kinds), timeout
        )

    async def wait_invoice_events(
        self,
        *,
        after: datetime | None,
        timeout: float,
        max_events: int = 10,
        kinds: Collection[EventKind] | None = None,
    ) -> list[InvoiceEvent]:
        """Long-poll: the events as soon as there is at least one, or ``[]`` after ``timeout`` seconds."""
        return await self._long_poll(
            lambda: self.invoice_events(after=after, max_events=max_events, kinds=kinds), timeout
        )

    async def _long_poll(self, read: Callable[[], list[_T]], timeout: float) -> list[_T]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = read()
            left = deadline - loop.time()
            if found or left <= 0:
                return found
            await self._waiters.wait(left)

    def _changed(self) -> None:
        self._waiters.notify()

    # --- payments and outbox ----------------------------------------------------------------------

    def payments(self, *, after: datetime | None = None, max_items: int | None = None) -> list[Payment]:
        """Payments made (requestor) or received (provider) after ``after``; unsent orders excluded."""
        rows = self.store.payments(
            self.role,
            after=after,
            states=(PaymentState.SCHEDULED.value, PaymentState.CONFIRMED.value),
            limit=max_items,
        )
        return [Payment.model_validate(row.body) for row in rows]

    def payment(self, payment_id: str) -> Payment:
        row = self.store.payment(self.role, payment_id)
        if row is None or row.state not in (PaymentState.SCHEDULED.value, PaymentState.CONFIRMED.value):
            raise NotFoundError(f"Payment {payment_id} not found")
        return Payment.model_validate(row.body)

    def undelivered(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Messages owed to the other party: ``(seq, kind, document id, body)``, oldest first.

        Kinds: ``DebitNote``/``Invoice`` (provider → requestor), ``DebitNoteAccepted``,
        ``InvoiceAccepted``, ``InvoiceRejected``, ``Payment`` (requestor → provider),
        ``InvoiceCancelled`` (provider → requestor). Call :meth:`mark_delivered` once the peer acked.
        """
        return [(i.seq, i.kind, i.document_id, i.body) for i in self.store.undelivered(self.role)]

    def mark_delivered(self, seq: int) -> bool:
        """Record that outbox item ``seq`` reached the other party; False if it already had."""
        with self.store.transaction():
            return self.store.mark_delivered(seq, self.clock.now())


class RequestorPayments(_PaymentsSide):
    """The requestor's payment layer: allocations, received documents, acceptance, payment orders.

    The requestor daemon's Payment API (:func:`payments.api.build_payment_api`) is a thin shell over
    it; the daemon's relay calls :meth:`receive_debit_note`, :meth:`receive_invoice` and
    :meth:`receive_cancellation` when the provider sends something, and delivers :meth:`undelivered`.
    """

    role = REQUESTOR
    default_events = REQUESTOR_DEFAULT_EVENTS

    def __init__(
        self,
        store: PaymentStore,
        drivers: Iterable[PaymentDriver],
        *,
        identity: str,
        clock: Clock | None = None,
        default_platform: str | None = None,
    ) -> None:
        super().__init__(store, identity=identity, clock=clock)
        self.drivers = drivers_by_platform(drivers)
        self.default_platform = default_platform or f"{DEFAULT_DRIVER}-{DEFAULT_NETWORK}-tglm"
        for driver in {id(d): d for d in self.drivers.values()}.values():
            driver.add_listener(self.confirm_payment)

    # --- allocations ------------------------------------------------------------------------------

    async def create_allocation(self, new: NewAllocation) -> Allocation:
        """Reserve a budget; refused (nothing stored) if the platform is unknown or funds are short."""
        platform = resolve_platform(new.payment_platform, self.default_platform)
        raw_address = new.address or self.identity
        try:
            address = node_id(raw_address)
        except ValueError as exc:
            raise AllocationError(str(exc), platform=platform, address=raw_address) from None
        driver = self.drivers.get(platform)
        if driver is None:
            served = ", ".join(sorted(self.drivers)) or "none"
            raise AllocationError(
                f"payment platform {platform} is not available on this node (available: {served})",
                platform=platform,
                address=address,
            )
        if address != self.identity:
            raise AllocationError(
                f"account {address} is not an identity of this node", platform=platform, address=address
            )
        if new.make_deposit or new.deposit is not None:
            raise AllocationError("deposits are not supported", platform=platform, address=address)
        now = self.clock.now()
        if new.timeout is not None and new.timeout <= now:
            raise AllocationError("allocation timeout is in the past", platform=platform, address=address)
        if new.total_amount <= 0:
            raise AllocationError("totalAmount must be positive", platform=platform, address=address)
        balance = await driver.balance(address, platform)
        with self.store.transaction():
            check_reservation(
                new.total_amount,
                balance,
                self.store.allocations(self.identity),
                now=now,
                platform=platform,
                address=address,
            )
            allocation = Allocation(
                allocation_id=new_id(),
                owner_id=self.identity,
                address=address,
                platform=platform,
                total=new.total_amount,
                spent=Decimal(0),
                timestamp=now,
                timeout=new.timeout,
                created=now,
                updated=now,
                extend_timeout=new.extend_timeout,
            )
            self.store.save_allocation(allocation)
        log.info(
            "allocation %s: %s on %s", allocation.allocation_id, format_amount(allocation.total), platform
        )
        return allocation

    def allocations(self) -> list[Allocation]:
        """This identity's allocations that are not released, oldest first."""
        return [a for a in self.store.allocations(self.identity) if a.released is None]

    def allocation(self, allocation_id: str) -> Allocation:
        """One allocation; :class:`NotFoundError` if unknown, :class:`AllocationReleasedError` if released."""
        allocation = self.store.allocation(allocation_id)
        if allocation is None or allocation.owner_id != self.identity:
            raise NotFoundError(f"Allocation {allocation_id} not found")
        if allocation.released is not None:
            raise AllocationReleasedError(f"Allocation {allocation_id} has been released")
        return allocation

    def release_allocation(self, allocation_id: str) -> Allocation:
        """Release an allocation: what it has left is free again; spent money stays owed."""
        with self.store.transaction():
            released = self.allocation(allocation_id).release(self.clock.now())
            self.store.save_allocation(released)
        return released

    def demand_decoration(self, allocation_ids: Sequence[str]) -> MarketDecoration:
        """Properties and constraints that make a demand match providers on these allocations' platforms."""
        allocations = [self.allocation(a) for a in allocation_ids]
        properties: list[MarketProperty] = []
        alternatives: list[str] = []
        for allocation in allocations:
            key = f"golem.com.payment.platform.{allocation.platform}.address"
            if any(p.key == key for p in properties):
                continue
            properties.append(MarketProperty(key=key, value=allocation.address))
            alternatives.append(f"({key}=*)")
        constraints = []
        if allocations:
            properties.append(
                MarketProperty(key="golem.com.payment.protocol.version", value=PROTOCOL_VERSION)
            )
            constraints = [f"(|{''.join(alternatives)})", "(golem.com.payment.protocol.version>1)"]
        return MarketDecoration(properties=properties, constraints=constraints)

    # --- receiving documents ----------------------------------------------------------------------

    def receive_debit_note(self, note: DebitNote) -> DebitNote:
        """Store a debit note a provider sent us and raise ``DebitNoteReceivedEvent``.

        Idempotent: a re-delivered note (same id) is answered with what is stored, no second event.
        """
        return self._receive(
            DocumentKind.DEBIT_NOTE, note.debit_note_id, note, note.agreement_id, note.activity_id
        )

    def receive_invoice(self, invoice: Invoice) -> Invoice:
        """Store an invoice a provider sent us and raise ``InvoiceReceivedEvent`` (idempotent)."""
        return self._receive(DocumentKind.INVOICE, invoice.invoice_id, invoice, invoice.agreement_id, None)

    def _receive(
        self, kind: DocumentKind, document_id: str, document: _D, agreement_id: str, activity_id: str | None
    ) -> _D:
        if document.recipient_id.lower() != self.identity:
            raise InvalidInputError(
                f"{kind.value} {document_id} is addressed to {document.recipient_id}, not us"
            )
        with self.store.transaction():
            known = self.store.document(self.role, kind.value, document_id)
            if known is None:
                body = document.model_copy(update={"status": DocumentStatus.RECEIVED}).to_wire()
                self.store.insert_document(
                    role=self.role,
                    kind=kind.value,
                    document_id=document_id,
                    agreement_id=agreement_id,
                    activity_id=activity_id,
                    status=DocumentStatus.RECEIVED.value,
                    body=body,
                    stored=self.clock.now(),
                )
                self._event(kind, document_id, EventKind.RECEIVED)
            row = self._row(kind, document_id)
        self._changed()
        parsed = self._debit_note(row) if kind is DocumentKind.DEBIT_NOTE else self._invoice(row)
        assert isinstance(parsed, type(document))
        return parsed

    def receive_cancellation(self, kind: DocumentKind, document_id: str) -> None:
        """The provider cancelled a document; raises :class:`InvalidStateError` if it was accepted."""
        with self.store.transaction():
            row = self._row(kind, document_id)
            if row.status == DocumentStatus.CANCELLED.value:
                return
            if is_accepted(DocumentStatus(row.status)):
                raise InvalidStateError(f"{kind.value} {document_id} already accepted by requestor")
            self._set_status(kind, row, DocumentStatus.CANCELLED)
            self._event(kind, document_id, EventKind.CANCELLED)
        self._changed()

    # --- accepting and rejecting ------------------------------------------------------------------

    def _spendable(self, acceptance: Acceptance, platform: str, payer_addr: str) -> Allocation:
        allocation = self.store.allocation(acceptance.allocation_id)
        if allocation is None or allocation.owner_id != self.identity:
            raise InvalidInputError(f"Allocation {acceptance.allocation_id} not found")
        if allocation.platform != platform or allocation.address != payer_addr.lower():
            raise InvalidInputError(
                f"Allocation {allocation.allocation_id} is for {allocation.platform} {allocation.address}, "
                f"the document for {platform} {payer_addr}"
            )
        return allocation

    async def accept_debit_note(self, debit_note_id: str, acceptance: Acceptance) -> None:
        """Accept a debit note: spend what it adds from the allocation and order its payment.

        Accepting an Accepted or Settled note again changes nothing. Refused with nothing changed
        when the amount differs from ``totalAmountDue``, the allocation is unknown, released or too
        small, or the note was cancelled.
        """
        kind = DocumentKind.DEBIT_NOTE
        order: str | None = None
        with self.store.transaction():
            row = self._row(kind, debit_note_id)
            note = self._debit_note(row)
            status = DocumentStatus(row.status)
            if is_accepted(status):
                return
            check_acceptable(kind, debit_note_id, status)
            check_amount(debit_note_id, note.total_amount_due, acceptance.total_amount_accepted)
            if self._invoice_accepted(note.agreement_id):
                # As yagna: the accepted invoice already covers the agreement; a late note is ignored.
                return
            allocation = self._spendable(acceptance, note.payment_platform, note.payer_addr)
            now = self.clock.now()
            activity = self.store.activity_totals(self.role, note.activity_id)
            commit = debit_note_commitment(note.total_amount_due, activity.accepted)
            spent = allocation.spend(commit, now)
            agreement = self.store.agreement_totals(self.role, note.agreement_id)

            self.store.save_allocation(spent)
            self._set_status(kind, row, DocumentStatus.ACCEPTED, allocation_id=allocation.allocation_id)
            activity = Totals(
                max(activity.accepted, note.total_amount_due), activity.scheduled, activity.paid
            )
            agreement = Totals(add(agreement.accepted, commit), agreement.scheduled, agreement.paid)
            self._event(kind, debit_note_id, EventKind.ACCEPTED)
            self.store.enqueue(self.role, "DebitNoteAccepted", debit_note_id, acceptance.to_wire(), now)
            # As yagna's payment cycles do, every accepted note is paid for (what it adds to the
            # activity's total); a due date only makes the driver pay it sooner.
            owed = subtract(note.total_amount_due, activity.scheduled)
            if owed > 0:
                order = self._order_payment(
                    payee_id=note.issuer_id,
                    payee_addr=note.payee_addr,
                    payer_addr=note.payer_addr,
                    platform=note.payment_platform,
                    amount=owed,
                    activity_payments=[
                        ActivityPayment(
                            activity_id=note.activity_id,
                            amount=owed,
                            allocation_id=allocation.allocation_id,
                        )
                    ],
                    agreement_payments=[],
                    document_ids=(debit_note_id,),
                    due=note.payment_due_date,
                    now=now,
                )
                activity = Totals(activity.accepted, add(activity.scheduled, owed), activity.paid)
                agreement = Totals(agreement.accepted, add(agreement.scheduled, owed), agreement.paid)
            self.store.save_activity_totals(self.role, note.activity_id, note.agreement_id, activity)
            self.store.save_agreement_totals(self.role, note.agreement_id, agreement)
        self._changed()
        if order is not None:
            await self._send(order)

    def _invoice_accepted(self, agreement_id: str) -> bool:
        return any(
            is_accepted(DocumentStatus(row.status))
            for row in self.store.documents_of_agreement(self.role, _INVOICE, agreement_id)
        )

    async def accept_invoice(self, invoice_id: str, acceptance: Acceptance) -> None:
        """Accept an invoice: spend what it adds from the allocation and order its payment.

        Accepting an Accepted or Settled invoice again changes nothing. Refused with nothing changed
        when the amount differs, the allocation is unknown, released or too small, the invoice was
        cancelled, or it is smaller than what its agreement's debit notes already committed.
        """
        kind = DocumentKind.INVOICE
        order: str | None = None
        with self.store.transaction():
            row = self._row(kind, invoice_id)
            invoice = self._invoice(row)
            status = DocumentStatus(row.status)
            if is_accepted(status):
                return
            check_acceptable(kind, invoice_id, status)
            check_amount(invoice_id, invoice.amount, acceptance.total_amount_accepted)
            allocation = self._spendable(acceptance, invoice.payment_platform, invoice.payer_addr)
            now = self.clock.now()
            agreement = self.store.agreement_totals(self.role, invoice.agreement_id)
            commit = invoice_commitment(invoice_id, invoice.amount, agreement.accepted)
            spent = allocation.spend(commit, now)

            self.store.save_allocation(spent)
            self._set_status(kind, row, DocumentStatus.ACCEPTED, allocation_id=allocation.allocation_id)
            self._event(kind, invoice_id, EventKind.ACCEPTED)
            self.store.enqueue(self.role, "InvoiceAccepted", invoice_id, acceptance.to_wire(), now)
            owed = subtract(invoice.amount, agreement.scheduled)
            if owed > 0:
                covered = [
                    r.document_id
                    for r in self.store.documents_of_agreement(self.role, _DEBIT_NOTE, invoice.agreement_id)
                    if r.status == DocumentStatus.ACCEPTED.value
                ]
                order = self._order_payment(
                    payee_id=invoice.issuer_id,
                    payee_addr=invoice.payee_addr,
                    payer_addr=invoice.payer_addr,
                    platform=invoice.payment_platform,
                    amount=owed,
                    activity_payments=[],
                    agreement_payments=[
                        AgreementPayment(
                            agreement_id=invoice.agreement_id,
                            amount=owed,
                            allocation_id=allocation.allocation_id,
                        )
                    ],
                    document_ids=(invoice_id, *covered),
                    due=invoice.payment_due_date,
                    now=now,
                )
            self.store.save_agreement_totals(
                self.role,
                invoice.agreement_id,
                Totals(invoice.amount, add(agreement.scheduled, max(owed, Decimal(0))), agreement.paid),
            )
        self._changed()
        if order is not None:
            await self._send(order)

    def reject_invoice(self, invoice_id: str, rejection: Rejection) -> None:
        """Reject an invoice (it can still be accepted later); an accepted one cannot be rejected."""
        kind = DocumentKind.INVOICE
        with self.store.transaction():
            row = self._row(kind, invoice_id)
            status = DocumentStatus(row.status)
            if status is DocumentStatus.REJECTED:
                return
            if is_accepted(status) or status in (DocumentStatus.CANCELLED, DocumentStatus.FAILED):
                raise InvalidStateError(f"Invoice {invoice_id} is {status.value} and cannot be rejected")
            self._set_status(kind, row, DocumentStatus.REJECTED)
            wire = rejection.to_wire()
            self._event(kind, invoice_id, EventKind.REJECTED, {"rejection": wire})
            self.store.enqueue(self.role, "InvoiceRejected", invoice_id, wire, self.clock.now())
        self._changed()

    def reject_debit_note(self, debit_note_id: str, rejection: Rejection) -> None:
        """Not supported, as in yagna (the API answers 501); a requestor simply does not accept."""
        self._row(DocumentKind.DEBIT_NOTE, debit_note_id)
        raise NotSupportedError("Rejecting debit notes is not implemented")

    # --- payment orders ---------------------------------------------------------------------------

    def _order_payment(
        self,
        *,
        payee_id: str,
        payee_addr: str,
        payer_addr: str,
        platform: str,
        amount: Decimal,
        activity_payments: list[ActivityPayment],
        agreement_payments: list[AgreementPayment],
        document_ids: tuple[str, ...],
        due: datetime | None,
        now: datetime,
    ) -> str:
        payment_id = new_id()
        body = Payment(
            payment_id=payment_id,
            payer_id=self.identity,
            payee_id=payee_id.lower(),
            payer_addr=payer_addr.lower(),
            payee_addr=payee_addr.lower(),
            payment_platform=platform,
            amount=amount,
            timestamp=now,
            agreement_payments=agreement_payments,
            activity_payments=activity_payments,
            details="",
        )
        self.store.insert_payment(
            role=self.role,
            payment_id=payment_id,
            state=PaymentState.ORDERED.value,
            body=body.to_wire(),
            document_ids=document_ids,
            due=due,
            created=now,
        )
        return payment_id

    async def _send(self, payment_id: str) -> None:
        row = self.store.payment(self.role, payment_id)
        if row is None or row.state != PaymentState.ORDERED.value:
            return
        payment = Payment.model_validate(row.body)
        driver = self.drivers.get(payment.payment_platform)
        if driver is None:
            log.error("payment %s: no driver serves %s; it stays owed", payment_id, payment.payment_platform)
            return
        try:
            scheduled = await driver.schedule_payment(
                payer=payment.payer_addr,
                payee=payment.payee_addr,
                amount=payment.amount,
                platform=payment.payment_platform,
                document_ids=row.document_ids,
                order_id=payment_id,
                due=row.due,
            )
        except DriverError as exc:
            log.warning(
                "payment %s not scheduled (%s); it stays owed and is retried on resume", payment_id, exc
            )
            return
        if scheduled.state is PaymentState.CONFIRMED:
            await self.confirm_payment(payment_id, scheduled.details)
            return
        with self.store.transaction():
            row = self.store.payment(self.role, payment_id)
            if row is None or row.state != PaymentState.ORDERED.value:
                return  # the driver's listener confirmed it meanwhile
            state = advance_payment(PaymentState.ORDERED, scheduled.state)
            self.store.update_payment(self.role, payment_id, state=state.value, body=row.body)
        self._changed()

    async def confirm_payment(self, payment_id: str, details: str) -> None:
        """A driver confirmed order ``payment_id`` (``details`` proves it): settle what it paid and
        queue the signed payment confirmation for the provider. Idempotent."""
        with self.store.transaction():
            row = self.store.payment(self.role, payment_id)
            if row is None:
                log.error("a driver confirmed payment %s, which this node never ordered", payment_id)
                return
            current = PaymentState(row.state)
            if current is PaymentState.CONFIRMED:
                return
            advance_payment(current, PaymentState.CONFIRMED)
            payment = Payment.model_validate(row.body).model_copy(
                update={"details": details, "timestamp": self.clock.now()}
            )
            self.store.update_payment(
                self.role, payment_id, state=PaymentState.CONFIRMED.value, body=payment.to_wire()
            )
            self._settle(row.document_ids)
            self.store.enqueue(self.role, "Payment", payment_id, payment.to_wire(), self.clock.now())
        log.info("payment %s confirmed (%s)", payment_id, details)
        self._changed()

    def _settle(self, document_ids: Iterable[str]) -> None:
        for document_id in document_ids:
            for kind in DocumentKind:
                row = self.store.document(self.role, kind.value, document_id)
                if row is not None and row.status == DocumentStatus.ACCEPTED.value:
                    self._set_status(kind, row, DocumentStatus.SETTLED)
                    self._event(kind, document_id, EventKind.SETTLED)

    async def resume(self) -> int:
        """After a crash: hand the driver every order written but never scheduled, and take the
        confirmations of scheduled ones the driver finished meanwhile; how many orders were open."""
        pending = self.store.payments(self.role, states=(PaymentState.ORDERED.value,))
        for row in pending:
            await self._send(row.payment_id)
        scheduled = self.store.payments(self.role, states=(PaymentState.SCHEDULED.value,))
        for row in scheduled:
            driver = self.drivers.get(str(row.body["paymentPlatform"]))
            if driver is None:
                continue
            known = await driver.order_state(row.payment_id)
            if known is not None and known.state is PaymentState.CONFIRMED:
                await self.confirm_payment(row.payment_id, known.details)
        return len(pending) + len(scheduled)

    def owed(self) -> Decimal:
        """The total of payment orders no driver has taken yet."""
        rows = self.store.payments(self.role, states=(PaymentState.ORDERED.value,))
        return add(*(Decimal(str(r.body["amount"])) for r in rows))

    def pending(self) -> Decimal:
        """The total of payment orders a driver took but has not confirmed yet."""
        rows = self.store.payments(self.role, states=(PaymentState.SCHEDULED.value,))
        return add(*(Decimal(str(r.body["amount"])) for r in rows))


class ProviderPayments(_PaymentsSide):
    """The provider's payment layer: issuing documents, and what comes back (acceptance, payment).

    The provider daemon's billing calls :meth:`issue_debit_note` / :meth:`issue_invoice`, delivers what
    :meth:`undelivered` lists and reports delivery with :meth:`mark_sent`; its relay hands in
    acceptances, rejections and payments from the requestor.
    """

    role = PROVIDER
    default_events = PROVIDER_DEFAULT_EVENTS

    def __init__(
        self,
        store: PaymentStore,
        *,
        identity: str,
        clock: Clock | None = None,
        drivers: Iterable[PaymentDriver] = (),
    ) -> None:
        super().__init__(store, identity=identity, clock=clock)
        self.drivers = drivers_by_platform(drivers)

    def issue_debit_note(
        self,
        terms: AgreementTerms,
        activity_id: str,
        total_amount_due: Decimal,
        *,
        usage_counter_vector: Any | None = None,
        payment_due_date: datetime | None = None,
    ) -> DebitNote:
        """Issue a cumulative debit note for an activity and queue it for delivery.

        ``total_amount_due`` is the activity's total so far; it may not go down. Give
        ``payment_due_date`` only when the agreement negotiated ``payment-timeout-sec?`` (yapapi
        terminates agreements whose notes are payable without it).
        """
        kind = DocumentKind.DEBIT_NOTE
        now = self.clock.now()
        with self.store.transaction():
            previous = self.store.latest_debit_note(self.role, activity_id)
            if previous is not None:
                before = self._debit_note(previous).total_amount_due
                if total_amount_due < before:
                    raise InvalidInputError(
                        f"debit notes are cumulative: {format_amount(total_amount_due)} is less than the "
                        f"previous {format_amount(before)} for activity {activity_id}"
                    )
            note = DebitNote(
                debit_note_id=new_id(),
                issuer_id=self.identity,
                recipient_id=terms.requestor_id.lower(),
                payee_addr=terms.payee_addr.lower(),
                payer_addr=terms.payer_addr.lower(),
                payment_platform=terms.platform,
                previous_debit_note_id=None if previous is None else previous.document_id,
                timestamp=now,
                agreement_id=terms.agreement_id,
                activity_id=activity_id,
                total_amount_due=total_amount_due,
                usage_counter_vector=usage_counter_vector,
                payment_due_date=payment_due_date,
                status=DocumentStatus.ISSUED,
            )
            self._store_issued(kind, note.debit_note_id, note.to_wire(), terms.agreement_id, activity_id, now)
        return note

    def issue_invoice(
        self,
        terms: AgreementTerms,
        activity_ids: Sequence[str],
        amount: Decimal,
        *,
        payment_due_date: datetime,
    ) -> Invoice:
        """Issue the invoice for an agreement and queue it for delivery (one live invoice per agreement)."""
        kind = DocumentKind.INVOICE
        now = self.clock.now()
        with self.store.transaction():
            live = [
                r
                for r in self.store.documents_of_agreement(self.role, _INVOICE, terms.agreement_id)
                if r.status != DocumentStatus.CANCELLED.value
            ]
            if live:
                raise InvalidStateError(
                    f"agreement {terms.agreement_id} already has invoice {live[0].document_id}"
                )
            invoice = Invoice(
                invoice_id=new_id(),
                issuer_id=self.identity,
                recipient_id=terms.requestor_id.lower(),
                payee_addr=terms.payee_addr.lower(),
                payer_addr=terms.payer_addr.lower(),
                payment_platform=terms.platform,
                timestamp=now,
                agreement_id=terms.agreement_id,
                activity_ids=list(activity_ids),
                amount=amount,
                payment_due_date=payment_due_date,
                status=DocumentStatus.ISSUED,
            )
            self._store_issued(kind, invoice.invoice_id, invoice.to_wire(), terms.agreement_id, None, now)
        return invoice

    def _store_issued(
        self,
        kind: DocumentKind,
        document_id: str,
        body: dict[str, Any],
        agreement_id: str,
        activity_id: str | None,
        now: datetime,
    ) -> None:
        self.store.insert_document(
            role=self.role,
            kind=kind.value,
            document_id=document_id,
            agreement_id=agreement_id,
            activity_id=activity_id,
            status=DocumentStatus.ISSUED.value,
            body=body,
            stored=now,
        )
        # Written with the document: delivery is owed from the moment it exists.
        self.store.enqueue(self.role, kind.value, document_id, body, now)

    def mark_sent(self, kind: DocumentKind, document_id: str) -> None:
        """The requestor has the document: Issued → Received (no change if it already moved on)."""
        with self.store.transaction():
            row = self._row(kind, document_id)
            if row.status == DocumentStatus.ISSUED.value:
                self._set_status(kind, row, DocumentStatus.RECEIVED)

    def mark_delivered(self, seq: int) -> bool:
        """Record that outbox item ``seq`` reached the requestor; a delivered document becomes Received."""
        item = next((i for i in self.store.undelivered(self.role) if i.seq == seq), None)
        with self.store.transaction():
            delivered = self.store.mark_delivered(seq, self.clock.now())
            if delivered and item is not None and item.kind in (_DEBIT_NOTE, _INVOICE):
                self.mark_sent(DocumentKind(item.kind), item.document_id)
        return delivered

    def record_acceptance(self, kind: DocumentKind, document_id: str, acceptance: Acceptance) -> None:
        """The requestor accepted a document (idempotent)."""
        with self.store.transaction():
            row = self._row(kind, document_id)
            status = DocumentStatus(row.status)
            if is_accepted(status):
                return
            due = (
                self._debit_note(row).total_amount_due
                if kind is DocumentKind.DEBIT_NOTE
                else self._invoice(row).amount
            )
            check_amount(document_id, due, acceptance.total_amount_accepted)
            self._set_status(kind, row, DocumentStatus.ACCEPTED, allocation_id=acceptance.allocation_id)
            self._event(kind, document_id, EventKind.ACCEPTED)
        self._changed()

    def record_rejection(self, kind: DocumentKind, document_id: str, rejection: Rejection) -> None:
        """The requestor rejected a document (idempotent)."""
        with self.store.transaction():
            row = self._row(kind, document_id)
            if row.status == DocumentStatus.REJECTED.value:
                return
            self._set_status(kind, row, DocumentStatus.REJECTED)
            self._event(kind, document_id, EventKind.REJECTED, {"rejection": rejection.to_wire()})
        self._changed()

    def cancel_invoice(self, invoice_id: str) -> None:
        """Withdraw an invoice not yet accepted; queued for delivery. Already cancelled: no change."""
        kind = DocumentKind.INVOICE
        with self.store.transaction():
            row = self._row(kind, invoice_id)
            status = DocumentStatus(row.status)
            if status is DocumentStatus.CANCELLED:
                return
            if status not in (DocumentStatus.ISSUED, DocumentStatus.RECEIVED, DocumentStatus.REJECTED):
                raise InvalidStateError(f"Invoice {invoice_id} already accepted by requestor")
            self._set_status(kind, row, DocumentStatus.CANCELLED)
            self._event(kind, invoice_id, EventKind.CANCELLED)
            self.store.enqueue(
                self.role, "InvoiceCancelled", invoice_id, {"invoiceId": invoice_id}, self.clock.now()
            )
        self._changed()

    async def record_payment(self, payment: Payment) -> list[str]:
        """Verify a payment the requestor reports and settle the documents it covers; their ids.

        Idempotent on ``paymentId``. The transfer named by ``details`` must cover this payment plus
        every earlier one citing the same transfer (no double claims), and every agreement and
        activity it pays must be ours with the same payer, payee and platform.
        """
        if payment.payee_id.lower() != self.identity:
            raise InvalidInputError(f"payment {payment.payment_id} is for {payment.payee_id}, not us")
        if self.store.payment(self.role, payment.payment_id) is not None:
            return []
        shares = add(
            *(p.amount for p in payment.agreement_payments), *(p.amount for p in payment.activity_payments)
        )
        if (
            shares > payment.amount
            or any(p.amount <= 0 for p in payment.agreement_payments)
            or any(p.amount <= 0 for p in payment.activity_payments)
        ):
            raise InvalidInputError(f"payment {payment.payment_id}: its shares do not add up to its amount")
        for agreement_id in {p.agreement_id for p in payment.agreement_payments}:
            self._check_party(agreement_id, payment)
        earlier = add(
            *(
                Decimal(str(r.body["amount"]))
                for r in self.store.payments_with_details(self.role, payment.details)
            )
        )
        driver = self.drivers.get(payment.payment_platform)
        if driver is None:
            raise DriverError(f"no driver can verify payments on {payment.payment_platform}")
        try:
            await driver.verify_payment(
                details=payment.details,
                payer=payment.payer_addr,
                payee=payment.payee_addr,
                amount=add(earlier, payment.amount),
                platform=payment.payment_platform,
            )
        except PaymentRejectedError as exc:
            log.warning("payment %s rejected: %s", payment.payment_id, exc)
            raise PaymentRejectedError(f"payment {payment.payment_id} rejected: {exc}") from None
        settled: list[str] = []
        with self.store.transaction():
            if self.store.payment(self.role, payment.payment_id) is not None:
                return []
            self.store.insert_payment(
                role=self.role,
                payment_id=payment.payment_id,
                state=PaymentState.CONFIRMED.value,
                body=payment.to_wire(),
                document_ids=(),
                due=None,
                created=self.clock.now(),
            )
            touched: set[str] = set()
            for share in payment.activity_payments:
                note = self.store.latest_debit_note(self.role, share.activity_id)
                if note is None:
                    raise InvalidInputError(
                        f"payment {payment.payment_id} pays unknown activity {share.activity_id}"
                    )
                self._check_party(note.agreement_id, payment)
                totals = self.store.activity_totals(self.role, share.activity_id)
                self.store.save_activity_totals(
                    self.role,
                    share.activity_id,
                    note.agreement_id,
                    Totals(totals.accepted, totals.scheduled, add(totals.paid, share.amount)),
                )
                self._add_agreement_paid(note.agreement_id, share.amount)
                touched.add(note.agreement_id)
            for agreement_share in payment.agreement_payments:
                self._add_agreement_paid(agreement_share.agreement_id, agreement_share.amount)
                touched.add(agreement_share.agreement_id)
            for agreement_id in sorted(touched):
                settled += self._settle_agreement(agreement_id)
        self._changed()
        return settled

    def _check_party(self, agreement_id: str, payment: Payment) -> None:
        rows = [
            *self.store.documents_of_agreement(self.role, _INVOICE, agreement_id),
            *self.store.documents_of_agreement(self.role, _DEBIT_NOTE, agreement_id),
        ]
        if not rows:
            raise InvalidInputError(f"payment {payment.payment_id} pays unknown agreement {agreement_id}")
        body = rows[0].body
        if (
            body["payerAddr"] != payment.payer_addr.lower()
            or body["payeeAddr"] != payment.payee_addr.lower()
            or body["paymentPlatform"] != payment.payment_platform
        ):
            raise InvalidInputError(f"payment {payment.payment_id} does not match agreement {agreement_id}")

    def _add_agreement_paid(self, agreement_id: str, amount: Decimal) -> None:
        totals = self.store.agreement_totals(self.role, agreement_id)
        self.store.save_agreement_totals(
            self.role, agreement_id, Totals(totals.accepted, totals.scheduled, add(totals.paid, amount))
        )

    def _settle_agreement(self, agreement_id: str) -> list[str]:
        # An invoice is settled once its agreement is paid that much; then every note of the agreement
        # is covered too. Before that, a note is settled by its own activity's payments.
        settled = []
        agreement_paid = self.store.agreement_totals(self.role, agreement_id).paid
        invoice_paid = False
        for row in self.store.documents_of_agreement(self.role, _INVOICE, agreement_id):
            if row.status == DocumentStatus.ACCEPTED.value and self._invoice(row).amount <= agreement_paid:
                self._set_status(DocumentKind.INVOICE, row, DocumentStatus.SETTLED)
                self._event(DocumentKind.INVOICE, row.document_id, EventKind.SETTLED)
                settled.append(row.document_id)
            invoice_paid = (
                invoice_paid or row.status == DocumentStatus.SETTLED.value or row.document_id in settled
            )
        for row in self.store.documents_of_agreement(self.role, _DEBIT_NOTE, agreement_id):
            note = self._debit_note(row)
            activity_paid = self.store.activity_totals(self.role, note.activity_id).paid
            if row.status == DocumentStatus.ACCEPTED.value and (
                invoice_paid or note.total_amount_due <= activity_paid
            ):
                self._set_status(DocumentKind.DEBIT_NOTE, row, DocumentStatus.SETTLED)
                self._event(DocumentKind.DEBIT_NOTE, row.document_id, EventKind.SETTLED)
                settled.append(row.document_id)
        return settled

    # --- reads for the provider daemon's billing and status view ------------------------------------

    def agreement_debit_notes(self, agreement_id: str) -> list[DebitNote]:
        """Every debit note issued for one agreement, oldest first, with its current status."""
        rows = self.store.documents_of_agreement(self.role, _DEBIT_NOTE, agreement_id)
        return [self._debit_note(row) for row in rows]


__all__ = [
    "PROVIDER",
    "REQUESTOR",
    "AgreementTerms",
    "AllocationState",
    "EventKind",
    "ProviderPayments",
    "RequestorPayments",
    "resolve_platform",
]
