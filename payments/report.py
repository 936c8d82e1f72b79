"""Read-only summaries of one node's ``payments.db``: what ``golem payments status`` and ``list`` show.

Pure functions over a :class:`~payments.store.PaymentStore`; nothing here writes, talks to a chain or
formats for a terminal. A database may hold rows of both roles (a node can be requestor and provider
at once), so every summary says which role it is about.

Billed, accepted and settled totals follow the documents' own arithmetic: debit notes are cumulative
per activity, so an agreement's amount is its live invoice's amount if it has one, otherwise the sum
over its activities of the largest debit note in the state asked about. Summing every debit note
would count the same work several times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from payments.allocation import AllocationState, add
from payments.documents import DocumentKind
from payments.driver import PaymentState
from payments.models import DocumentStatus
from payments.store import DocumentRow, PaymentStore

ROLES = ("requestor", "provider")
KINDS = tuple(kind.value for kind in DocumentKind)
_ACCEPTED = frozenset({DocumentStatus.ACCEPTED.value, DocumentStatus.SETTLED.value})
_SETTLED = frozenset({DocumentStatus.SETTLED.value})


@dataclass(frozen=True)
class AllocationLine:
    allocation_id: str
    platform: str
    address: str
    total: Decimal
    spent: Decimal
    remaining: Decimal
    state: str
    """``Active``, ``Expired`` or ``Released``."""
    timeout: datetime | None


@dataclass(frozen=True)
class PaymentTotals:
    """Payment orders of one role on one platform, summed by state."""

    role: str
    platform: str
    owed: Decimal = Decimal(0)
    """Ordered: written, not yet taken by a driver."""
    pending: Decimal = Decimal(0)
    """Scheduled: a driver took it, the transfer is not confirmed yet."""
    paid: Decimal = Decimal(0)
    """Confirmed: on chain (a provider's rows are payments it received and verified)."""
    failed: Decimal = Decimal(0)
    count: int = 0


@dataclass(frozen=True)
class DocumentTotals:
    """One role's debit notes and invoices: amounts billed, accepted and settled, and counts."""

    role: str
    billed: Decimal = Decimal(0)
    accepted: Decimal = Decimal(0)
    settled: Decimal = Decimal(0)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """``{kind: {status: n}}``."""


@dataclass(frozen=True)
class DocumentLine:
    role: str
    kind: str
    document_id: str
    agreement_id: str
    activity_id: str | None
    amount: Decimal
    """``totalAmountDue`` of a debit note (cumulative), ``amount`` of an invoice."""
    status: str
    platform: str


@dataclass(frozen=True)
class PaymentLine:
    role: str
    payment_id: str
    amount: Decimal
    payer_addr: str
    payee_addr: str
    platform: str
    state: str
    details: str
    document_ids: tuple[str, ...]

    @property
    def tx_hash(self) -> str | None:
        """The transaction hash when ``details`` is one (ERC-20); ``None`` for dummy or unsent payments."""
        text = self.details
        if len(text) == 66 and text.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in text[2:]):
            return text
        return None


def roles(store: PaymentStore) -> list[str]:
    """The roles this database holds any documents or payments of, in :data:`ROLES` order."""
    found = {
        row[0]
        for table in ("documents", "payments")
        for row in store.conn.execute(f"SELECT DISTINCT role FROM {table}")
    }
    return [role for role in ROLES if role in found]


def allocations(store: PaymentStore, now: datetime) -> list[AllocationLine]:
    """Every allocation, released ones included, oldest first."""
    return [
        AllocationLine(
            allocation_id=a.allocation_id,
            platform=a.platform,
            address=a.address,
            total=a.total,
            spent=a.spent,
            remaining=a.remaining,
            state=a.state(now).value,
            timeout=a.timeout,
        )
        for a in store.allocations()
    ]


def active_remaining(lines: Iterable[AllocationLine], platform: str) -> Decimal:
    """What active allocations on ``platform`` still reserve of the account's balance."""
    return add(
        *(a.remaining for a in lines if a.platform == platform and a.state == AllocationState.ACTIVE.value)
    )


def payment_totals(store: PaymentStore, role: str) -> list[PaymentTotals]:
    """One :class:`PaymentTotals` per platform the role has payments on, sorted by platform."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for row in store.payments(role):
        platform = str(row.body.get("paymentPlatform", ""))
        sums[platform][row.state] = add(sums[platform][row.state], _amount(row.body.get("amount")))
        counts[platform] += 1
    return [
        PaymentTotals(
            role=role,
            platform=platform,
            owed=by_state[PaymentState.ORDERED.value],
            pending=by_state[PaymentState.SCHEDULED.value],
            paid=by_state[PaymentState.CONFIRMED.value],
            failed=by_state[PaymentState.FAILED.value],
            count=counts[platform],
        )
        for platform, by_state in sorted(sums.items())
    ]


def document_totals(store: PaymentStore, role: str) -> DocumentTotals:
    """Billed, accepted and settled amounts of one role's documents (see the module docstring)."""
    rows = [row for kind in KINDS for row in store.documents(role, kind)]
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        by_status = counts.setdefault(row.kind, {})
        by_status[row.status] = by_status.get(row.status, 0) + 1
    # A rejected document still asks for its amount (it may be accepted later); a cancelled or
    # failed one no longer does.
    live = frozenset(s.value for s in DocumentStatus) - {
        DocumentStatus.CANCELLED.value,
        DocumentStatus.FAILED.value,
    }
    return DocumentTotals(
        role=role,
        billed=_billed(rows, live),
        accepted=_billed(rows, _ACCEPTED),
        settled=_billed(rows, _SETTLED),
        counts=counts,
    )


def _billed(rows: Iterable[DocumentRow], statuses: Collection[str]) -> Decimal:
    invoiced: dict[str, Decimal] = {}
    noted: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in rows:
        if row.status not in statuses:
            continue
        amount = _document_amount(row)
        if row.kind == "Invoice":
            invoiced[row.agreement_id] = max(invoiced.get(row.agreement_id, Decimal(0)), amount)
        else:
            per_activity = noted[row.agreement_id]
            key = row.activity_id or ""
            per_activity[key] = max(per_activity.get(key, Decimal(0)), amount)
    agreements = set(invoiced) | set(noted)
    return add(*(invoiced[a] if a in invoiced else add(*noted[a].values()) for a in agreements))


def documents(store: PaymentStore, role_filter: Collection[str] = ROLES) -> list[DocumentLine]:
    """Every debit note and invoice of the given roles, oldest first within each role and kind."""
    return [
        DocumentLine(
            role=role,
            kind=row.kind,
            document_id=row.document_id,
            agreement_id=row.agreement_id,
            activity_id=row.activity_id,
            amount=_document_amount(row),
            status=row.status,
            platform=str(row.body.get("paymentPlatform", "")),
        )
        for role in ROLES
        if role in role_filter
        for kind in KINDS
        for row in store.documents(role, kind)
    ]


def payments(store: PaymentStore, role_filter: Collection[str] = ROLES) -> list[PaymentLine]:
    """Every payment order (requestor) and verified payment (provider), oldest first."""
    return [
        PaymentLine(
            role=role,
            payment_id=row.payment_id,
            amount=_amount(row.body.get("amount")),
            payer_addr=str(row.body.get("payerAddr", "")),
            payee_addr=str(row.body.get("payeeAddr", "")),
            platform=str(row.body.get("paymentPlatform", "")),
            state=row.state,
            details=str(row.body.get("details", "")),
            document_ids=row.document_ids,
        )
        for role in ROLES
        if role in role_filter
        for row in store.payments(role)
    ]


def _document_amount(row: DocumentRow) -> Decimal:
    return _amount(row.body.get("totalAmountDue" if row.kind == "DebitNote" else "amount"))


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)
