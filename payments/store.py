"""SQLite persistence of the payment layer: allocations, documents, events, totals, payments, outbox.

One database per daemon, opened with :func:`market.core.storage.open_database` and brought up to
date by :data:`MIGRATIONS`. Every multi-row change runs in one :meth:`PaymentStore.transaction`, so
a refused or crashed operation leaves nothing half-written; the service writes what is owed (payment
orders, acceptances to deliver) here *before* anything is sent, and resumes from here after a crash.
Amounts are stored as decimal strings (exact), times as integer microseconds since the epoch (the
precision ``afterTimestamp`` filters at).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from market.core.storage import Transactions, open_database
from payments.allocation import Allocation, format_amount

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE allocations (
        allocation_id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        address TEXT NOT NULL,
        platform TEXT NOT NULL,
        total TEXT NOT NULL,
        spent TEXT NOT NULL,
        timestamp_us INTEGER NOT NULL,
        timeout_us INTEGER,
        make_deposit INTEGER NOT NULL,
        extend_timeout INTEGER,
        created_us INTEGER NOT NULL,
        updated_us INTEGER NOT NULL,
        released_us INTEGER
    );
    CREATE TABLE documents (
        role TEXT NOT NULL CHECK (role IN ('requestor', 'provider')),
        kind TEXT NOT NULL,
        document_id TEXT NOT NULL,
        agreement_id TEXT NOT NULL,
        activity_id TEXT,
        status TEXT NOT NULL,
        allocation_id TEXT,
        body TEXT NOT NULL,
        stored_us INTEGER NOT NULL,
        PRIMARY KEY (role, document_id)
    );
    CREATE INDEX documents_by_time ON documents (role, kind, stored_us);
    CREATE INDEX documents_by_agreement ON documents (role, agreement_id);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        role TEXT NOT NULL,
        kind TEXT NOT NULL,
        document_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        event_us INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX events_by_time ON events (role, kind, event_us);
    CREATE TABLE activity_totals (
        role TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        agreement_id TEXT NOT NULL,
        accepted TEXT NOT NULL,
        scheduled TEXT NOT NULL,
        paid TEXT NOT NULL,
        PRIMARY KEY (role, activity_id)
    );
    CREATE TABLE agreement_totals (
        role TEXT NOT NULL,
        agreement_id TEXT NOT NULL,
        accepted TEXT NOT NULL,
        scheduled TEXT NOT NULL,
        paid TEXT NOT NULL,
        PRIMARY KEY (role, agreement_id)
    );
    CREATE TABLE payments (
        role TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        state TEXT NOT NULL,
        body TEXT NOT NULL,
        document_ids TEXT NOT NULL,
        due_us INTEGER,
        created_us INTEGER NOT NULL,
        PRIMARY KEY (role, payment_id)
    );
    CREATE INDEX payments_by_time ON payments (role, created_us);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        role TEXT NOT NULL,
        kind TEXT NOT NULL,
        document_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        delivered_us INTEGER
    )
    """,
)
"""The schema, one script per version (see :func:`market.core.storage.migrate`)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class DocumentRow:
    """A stored debit note or invoice: its wire body plus the columns the service queries."""

    role: str
    kind: str
    document_id: str
    agreement_id: str
    activity_id: str | None
    status: str
    allocation_id: str | None
    body: dict[str, Any]
    stored_us: int


@dataclass(frozen=True)
class EventRow:
    seq: int
    kind: str
    document_id: str
    event_type: str
    event_date: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class Totals:
    """What was accepted, scheduled for payment and paid for one activity or agreement."""

    accepted: Decimal = Decimal(0)
    scheduled: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)


@dataclass(frozen=True)
class PaymentRow:
    role: str
    payment_id: str
    state: str
    body: dict[str, Any]
    document_ids: tuple[str, ...]
    due: datetime | None
    created_us: int


@dataclass(frozen=True)
class OutboxItem:
    """Something this node owes the other party a message about (an acceptance, a payment...)."""

    seq: int
    role: str
    kind: str
    document_id: str
    body: dict[str, Any]
    created: datetime


class PaymentStore:
    """The payment layer's tables over one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._transactions = Transactions(conn)

    @classmethod
    def open(cls, path: Path | str) -> PaymentStore:
        """Open (creating or migrating) the database at ``path``; ``":memory:"`` for a throwaway one."""
        return cls(open_database(path, MIGRATIONS))

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Run a block atomically; nested blocks join the outer transaction."""
        return self._transactions()

    # --- allocations ------------------------------------------------------------------------------

    def save_allocation(self, a: Allocation) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO allocations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                a.allocation_id, a.owner_id, a.address, a.platform, format_amount(a.total),
                format_amount(a.spent), to_us(a.timestamp), None if a.timeout is None else to_us(a.timeout),
                int(a.make_deposit), a.extend_timeout, to_us(a.created), to_us(a.updated),
                None if a.released is None else to_us(a.released),
            ),
        )  # fmt: skip

    def allocation(self, allocation_id: str) -> Allocation | None:
        row = self.conn.execute(
            "SELECT * FROM allocations WHERE allocation_id = ?", (allocation_id,)
        ).fetchone()
        return None if row is None else _allocation(row)

    def allocations(self, owner_id: str | None = None) -> list[Allocation]:
        if owner_id is None:
            rows = self.conn.execute("SELECT * FROM allocations ORDER BY created_us, allocation_id")
        else:
            rows = self.conn.execute(
                "SELECT * FROM allocations WHERE owner_id = ? ORDER BY created_us, allocation_id", (owner_id,)
            )
        return [_allocation(row) for row in rows]

    # --- documents --------------------------------------------------------------------------------

    def insert_document(
        self,
        *,
        role: str,
        kind: str,
        document_id: str,
        agreement_id: str,
        activity_id: str | None,
        status: str,
        body: dict[str, Any],
        stored: datetime,
    ) -> None:
        self.conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
            (
                role,
                kind,
                document_id,
                agreement_id,
                activity_id,
                status,
                None,
                json.dumps(body),
                to_us(stored),
            ),
        )

    def update_document(
        self, role: str, document_id: str, *, status: str, body: dict[str, Any], allocation_id: str | None
    ) -> None:
        self.conn.execute(
            "UPDATE documents SET status = ?, body = ?, allocation_id = ? WHERE role = ? AND document_id = ?",
            (status, json.dumps(body), allocation_id, role, document_id),
        )

    def document(self, role: str, kind: str, document_id: str) -> DocumentRow | None:
        row = self.conn.execute(
            "SELECT * FROM documents WHERE role = ? AND kind = ? AND document_id = ?",
            (role, kind, document_id),
        ).fetchone()
        return None if row is None else _document(row)

    def documents(
        self, role: str, kind: str, *, after: datetime | None = None, limit: int | None = None
    ) -> list[DocumentRow]:
        rows = self.conn.execute(
            "SELECT * FROM documents WHERE role = ? AND kind = ? AND stored_us > ? "
            "ORDER BY stored_us, document_id LIMIT ?",
            (role, kind, -1 if after is None else to_us(after), -1 if limit is None else limit),
        )
        return [_document(row) for row in rows]

    def documents_of_agreement(self, role: str, kind: str, agreement_id: str) -> list[DocumentRow]:
        rows = self.conn.execute(
            "SELECT * FROM documents WHERE role = ? AND kind = ? AND agreement_id = ? ORDER BY stored_us",
            (role, kind, agreement_id),
        )
        return [_document(row) for row in rows]

    def latest_debit_note(self, role: str, activity_id: str) -> DocumentRow | None:
        row = self.conn.execute(
            "SELECT * FROM documents WHERE role = ? AND kind = 'DebitNote' AND activity_id = ? "
            "ORDER BY stored_us DESC LIMIT 1",
            (role, activity_id),
        ).fetchone()
        return None if row is None else _document(row)

    # --- events -----------------------------------------------------------------------------------

    def append_event(
        self, role: str, kind: str, document_id: str, event_type: str, body: dict[str, Any], now: datetime
    ) -> datetime:
        """Record an event and return its date, strictly later than every earlier event's.

        Strictly increasing dates make ``afterTimestamp`` paging lossless: a poller that stops at an
        event's date never skips a sibling stamped in the same microsecond.
        """
        (last,) = self.conn.execute("SELECT MAX(event_us) FROM events").fetchone()
        stamp = to_us(now) if last is None else max(to_us(now), last + 1)
        self.conn.execute(
            "INSERT INTO events (role, kind, document_id, event_type, event_us, body) VALUES (?,?,?,?,?,?)",
            (role, kind, document_id, event_type, stamp, json.dumps(body)),
        )
        return from_us(stamp)

    def events(
        self, role: str, kind: str, *, after: datetime | None, types: Collection[str], limit: int
    ) -> list[EventRow]:
        if not types:
            return []
        marks = ",".join("?" * len(types))
        rows = self.conn.execute(
            f"SELECT * FROM events WHERE role = ? AND kind = ? AND event_us > ? AND event_type IN ({marks}) "
            "ORDER BY event_us, seq LIMIT ?",
            (role, kind, -(2**62) if after is None else to_us(after), *types, limit),
        )
        return [
            EventRow(
                r["seq"],
                r["kind"],
                r["document_id"],
                r["event_type"],
                from_us(r["event_us"]),
                json.loads(r["body"]),
            )
            for r in rows
        ]

    # --- totals -----------------------------------------------------------------------------------

    def activity_totals(self, role: str, activity_id: str) -> Totals:
        row = self.conn.execute(
            "SELECT * FROM activity_totals WHERE role = ? AND activity_id = ?", (role, activity_id)
        ).fetchone()
        return Totals() if row is None else _totals(row)

    def save_activity_totals(self, role: str, activity_id: str, agreement_id: str, totals: Totals) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO activity_totals VALUES (?,?,?,?,?,?)",
            (role, activity_id, agreement_id, *_amounts(totals)),
        )

    def activities_of_agreement(self, role: str, agreement_id: str) -> dict[str, Totals]:
        rows = self.conn.execute(
            "SELECT * FROM activity_totals WHERE role = ? AND agreement_id = ?", (role, agreement_id)
        )
        return {row["activity_id"]: _totals(row) for row in rows}

    def agreement_totals(self, role: str, agreement_id: str) -> Totals:
        row = self.conn.execute(
            "SELECT * FROM agreement_totals WHERE role = ? AND agreement_id = ?", (role, agreement_id)
        ).fetchone()
        return Totals() if row is None else _totals(row)

    def save_agreement_totals(self, role: str, agreement_id: str, totals: Totals) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO agreement_totals VALUES (?,?,?,?,?)",
            (role, agreement_id, *_amounts(totals)),
        )

    # --- payments ---------------------------------------------------------------------------------

    def insert_payment(
        self,
        *,
        role: str,
        payment_id: str,
        state: str,
        body: dict[str, Any],
        document_ids: tuple[str, ...],
        due: datetime | None,
        created: datetime,
    ) -> None:
        self.conn.execute(
            "INSERT INTO payments VALUES (?,?,?,?,?,?,?)",
            (
                role, payment_id, state, json.dumps(body), json.dumps(list(document_ids)),
                None if due is None else to_us(due), to_us(created),
            ),
        )  # fmt: skip

    def update_payment(self, role: str, payment_id: str, *, state: str, body: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE payments SET state = ?, body = ? WHERE role = ? AND payment_id = ?",
            (state, json.dumps(body), role, payment_id),
        )

    def payment(self, role: str, payment_id: str) -> PaymentRow | None:
        row = self.conn.execute(
            "SELECT * FROM payments WHERE role = ? AND payment_id = ?", (role, payment_id)
        ).fetchone()
        return None if row is None else _payment(row)

    def payments(
        self,
        role: str,
        *,
        after: datetime | None = None,
        states: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[PaymentRow]:
        wanted = list(states) if states is not None else None
        state_filter = "" if wanted is None else f"AND state IN ({','.join('?' * len(wanted))}) "
        rows = self.conn.execute(
            f"SELECT * FROM payments WHERE role = ? AND created_us > ? {state_filter}"
            "ORDER BY created_us, payment_id LIMIT ?",
            (
                role,
                -(2**62) if after is None else to_us(after),
                *(wanted or ()),
                -1 if limit is None else limit,
            ),
        )
        return [_payment(row) for row in rows]

    def payments_with_details(self, role: str, details: str) -> list[PaymentRow]:
        rows = self.conn.execute(
            "SELECT * FROM payments WHERE role = ? AND json_extract(body, '$.details') = ?", (role, details)
        )
        return [_payment(row) for row in rows]

    # --- outbox -----------------------------------------------------------------------------------

    def enqueue(self, role: str, kind: str, document_id: str, body: dict[str, Any], now: datetime) -> int:
        cursor = self.conn.execute(
            "INSERT INTO outbox (role, kind, document_id, body, created_us) VALUES (?,?,?,?,?)",
            (role, kind, document_id, json.dumps(body), to_us(now)),
        )
        return int(cursor.lastrowid or 0)

    def undelivered(self, role: str) -> list[OutboxItem]:
        rows = self.conn.execute(
            "SELECT * FROM outbox WHERE role = ? AND delivered_us IS NULL ORDER BY seq", (role,)
        )
        return [
            OutboxItem(
                r["seq"],
                r["role"],
                r["kind"],
                r["document_id"],
                json.loads(r["body"]),
                from_us(r["created_us"]),
            )
            for r in rows
        ]

    def mark_delivered(self, seq: int, now: datetime) -> bool:
        cursor = self.conn.execute(
            "UPDATE outbox SET delivered_us = ? WHERE seq = ? AND delivered_us IS NULL", (to_us(now), seq)
        )
        return cursor.rowcount > 0


def _allocation(row: sqlite3.Row) -> Allocation:
    return Allocation(
        allocation_id=row["allocation_id"],
        owner_id=row["owner_id"],
        address=row["address"],
        platform=row["platform"],
        total=Decimal(row["total"]),
        spent=Decimal(row["spent"]),
        timestamp=from_us(row["timestamp_us"]),
        timeout=None if row["timeout_us"] is None else from_us(row["timeout_us"]),
        created=from_us(row["created_us"]),
        updated=from_us(row["updated_us"]),
        make_deposit=bool(row["make_deposit"]),
        extend_timeout=row["extend_timeout"],
        released=None if row["released_us"] is None else from_us(row["released_us"]),
    )


def _document(row: sqlite3.Row) -> DocumentRow:
    return DocumentRow(
        role=row["role"],
        kind=row["kind"],
        document_id=row["document_id"],
        agreement_id=row["agreement_id"],
        activity_id=row["activity_id"],
        status=row["status"],
        allocation_id=row["allocation_id"],
        body=json.loads(row["body"]),
        stored_us=row["stored_us"],
    )


def _totals(row: sqlite3.Row) -> Totals:
    return Totals(Decimal(row["accepted"]), Decimal(row["scheduled"]), Decimal(row["paid"]))


def _amounts(totals: Totals) -> tuple[str, str, str]:
    return format_amount(totals.accepted), format_amount(totals.scheduled), format_amount(totals.paid)


def _payment(row: sqlite3.Row) -> PaymentRow:
    return PaymentRow(
        role=row["role"],
        payment_id=row["payment_id"],
        state=row["state"],
        body=json.loads(row["body"]),
        document_ids=tuple(json.loads(row["document_ids"])),
        due=None if row["due_us"] is None else from_us(row["due_us"]),
        created_us=row["created_us"],
    )
