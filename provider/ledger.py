"""The provider's ledger view: its issued documents and what they earned, for the status API.

Pure functions over the debit notes and invoices :class:`~payments.service.ProviderPayments` holds
(with their current status). Amounts follow the documents' own arithmetic: debit notes are
cumulative per activity, so an activity counts with its latest note (accepted: its latest accepted
note; settled: its latest settled one), and an agreement's invoice, once issued, replaces its notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from payments.models import DebitNote, DocumentStatus, Invoice
from provider.status_api import DocumentInfo, PlatformEarnings

_ACCEPTED = frozenset({DocumentStatus.ACCEPTED, DocumentStatus.SETTLED})


def document_infos(notes: Iterable[DebitNote], invoices: Iterable[Invoice]) -> list[DocumentInfo]:
    """Every document as the status API shows it, oldest first."""
    infos = [
        DocumentInfo(
            kind="DebitNote",
            document_id=n.debit_note_id,
            agreement_id=n.agreement_id,
            activity_ids=[n.activity_id],
            status=n.status,
            amount=n.total_amount_due,
            platform=n.payment_platform,
            issued_at=n.timestamp,
            payment_due_date=n.payment_due_date,
        )
        for n in notes
    ]
    infos += [
        DocumentInfo(
            kind="Invoice",
            document_id=i.invoice_id,
            agreement_id=i.agreement_id,
            activity_ids=list(i.activity_ids),
            status=i.status,
            amount=i.amount,
            platform=i.payment_platform,
            issued_at=i.timestamp,
            payment_due_date=i.payment_due_date,
        )
        for i in invoices
    ]
    return sorted(infos, key=lambda d: (d.issued_at, d.document_id))


@dataclass
class _Agreement:
    platform: str = ""
    invoice: Invoice | None = None
    notes: defaultdict[str, list[DebitNote]] = field(default_factory=lambda: defaultdict(list))


def earnings(notes: Iterable[DebitNote], invoices: Iterable[Invoice]) -> list[PlatformEarnings]:
    """Totals issued, accepted and settled per payment platform, sorted by platform."""
    agreements: defaultdict[str, _Agreement] = defaultdict(_Agreement)
    for note in notes:
        entry = agreements[note.agreement_id]
        entry.platform = note.payment_platform
        entry.notes[note.activity_id].append(note)
    for invoice in invoices:
        if invoice.status is DocumentStatus.CANCELLED:
            continue
        entry = agreements[invoice.agreement_id]
        entry.platform = invoice.payment_platform
        entry.invoice = invoice
    totals: dict[str, list[Decimal]] = {}
    counts: defaultdict[str, int] = defaultdict(int)
    for entry in agreements.values():
        issued, accepted, settled = _agreement_totals(entry)
        sums = totals.setdefault(entry.platform, [Decimal(0), Decimal(0), Decimal(0)])
        sums[0] += issued
        sums[1] += accepted
        sums[2] += settled
        counts[entry.platform] += 1
    return [
        PlatformEarnings(
            platform=platform,
            agreements=counts[platform],
            issued=sums[0],
            accepted=sums[1],
            settled=sums[2],
        )
        for platform, sums in sorted(totals.items())
    ]


def _agreement_totals(entry: _Agreement) -> tuple[Decimal, Decimal, Decimal]:
    by_activity = [sorted(n, key=lambda note: note.timestamp) for n in entry.notes.values()]
    issued = sum((n[-1].total_amount_due for n in by_activity), Decimal(0))
    accepted = sum((_latest(n, _ACCEPTED) for n in by_activity), Decimal(0))
    settled = sum((_latest(n, frozenset({DocumentStatus.SETTLED})) for n in by_activity), Decimal(0))
    invoice = entry.invoice
    if invoice is not None:
        issued = invoice.amount
        if invoice.status in _ACCEPTED:
            accepted = invoice.amount
        if invoice.status is DocumentStatus.SETTLED:
            settled = invoice.amount
    return issued, accepted, settled


def _latest(notes: Sequence[DebitNote], statuses: frozenset[DocumentStatus]) -> Decimal:
    for note in reversed(notes):
        if note.status in statuses:
            return note.total_amount_due
    return Decimal(0)
