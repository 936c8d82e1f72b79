"""The provider's SQLite store: every agreement it was offered, with state, signatures and terms,
and the final usage of every activity that ran on them.

Written before the daemon acts on a decision's outcome, so a restarted daemon knows which agreements
are still Approved (and re-publishes nothing it has not signed). An activity's usage is written when
its exe unit stops, so the agreement's invoice counts it even if the exe unit is long gone (or the
daemon restarted) when the agreement ends.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from market.core.storage import open_database
from market.protocol.messages import Agreement, AgreementState, Party
from provider.agreements import AgreementRecord

MIGRATIONS = (
    """
    CREATE TABLE agreements (
        agreement_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        requestor_id TEXT NOT NULL,
        offer_id TEXT NOT NULL,
        runtime TEXT,
        demand_properties TEXT NOT NULL,
        offer_properties TEXT NOT NULL,
        proposed_signature TEXT,
        approved_signature TEXT,
        valid_to TEXT NOT NULL,
        approved_date TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        reason TEXT,
        terminator TEXT,
        agreement TEXT NOT NULL
    );
    CREATE INDEX agreements_state ON agreements (state)
    """,
    """
    CREATE TABLE activity_usage (
        activity_id TEXT PRIMARY KEY,
        agreement_id TEXT NOT NULL,
        cpu_sec REAL NOT NULL,
        duration_sec REAL NOT NULL,
        cost TEXT NOT NULL,
        ended_at TEXT NOT NULL
    );
    CREATE INDEX activity_usage_agreement ON activity_usage (agreement_id)
    """,
)
"""The schema, one script per version; append new ones, never edit applied ones."""


@dataclass(frozen=True)
class ActivityUsage:
    """What one finished activity used and costs (the invoice sums these)."""

    activity_id: str
    agreement_id: str
    cpu_sec: float
    duration_sec: float
    cost: Decimal
    ended_at: datetime


class AgreementStore:
    """Agreements by id; small synchronous writes (WAL, one row per change)."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    def save(self, record: AgreementRecord) -> None:
        a = record.agreement
        self._db.execute(
            """
            INSERT INTO agreements (agreement_id, state, requestor_id, offer_id, runtime, demand_properties,
                offer_properties, proposed_signature, approved_signature, valid_to, approved_date,
                created_at, updated_at, reason, terminator, agreement)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (agreement_id) DO UPDATE SET
                state = excluded.state, proposed_signature = excluded.proposed_signature,
                approved_signature = excluded.approved_signature, approved_date = excluded.approved_date,
                updated_at = excluded.updated_at, reason = excluded.reason,
                terminator = excluded.terminator, agreement = excluded.agreement
            """,
            (
                a.agreement_id,
                record.state.value,
                a.demand.requestor_id,
                a.offer.offer_id,
                record.runtime,
                json.dumps(a.demand.properties),
                json.dumps(a.offer.properties),
                a.proposed_signature,
                a.approved_signature,
                a.valid_to.isoformat(),
                a.approved_date.isoformat() if a.approved_date else None,
                record.created_at.isoformat(),
                record.updated_at.isoformat(),
                json.dumps(record.reason) if record.reason is not None else None,
                record.terminator.value if record.terminator else None,
                json.dumps(a.to_wire()),
            ),
        )

    def get(self, agreement_id: str) -> AgreementRecord | None:
        row = self._db.execute("SELECT * FROM agreements WHERE agreement_id = ?", (agreement_id,)).fetchone()
        return _record(row) if row is not None else None

    def records(self, state: AgreementState | None = None) -> list[AgreementRecord]:
        if state is None:
            rows = self._db.execute("SELECT * FROM agreements ORDER BY created_at, agreement_id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM agreements WHERE state = ? ORDER BY created_at, agreement_id", (state.value,)
            ).fetchall()
        return [_record(row) for row in rows]

    def save_activity_usage(self, usage: ActivityUsage) -> None:
        """Record a finished activity's usage; the first record wins (an exe unit stops once)."""
        self._db.execute(
            "INSERT OR IGNORE INTO activity_usage (activity_id, agreement_id, cpu_sec, duration_sec, cost, "
            "ended_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                usage.activity_id,
                usage.agreement_id,
                usage.cpu_sec,
                usage.duration_sec,
                str(usage.cost),
                usage.ended_at.isoformat(),
            ),
        )

    def activity_usages(self, agreement_id: str | None = None) -> list[ActivityUsage]:
        """The finished activities of ``agreement_id`` (of every agreement when ``None``), oldest first."""
        where, params = ("WHERE agreement_id = ?", (agreement_id,)) if agreement_id is not None else ("", ())
        rows = self._db.execute(
            f"SELECT * FROM activity_usage {where} ORDER BY ended_at, activity_id", params
        ).fetchall()
        return [
            ActivityUsage(
                activity_id=row["activity_id"],
                agreement_id=row["agreement_id"],
                cpu_sec=float(row["cpu_sec"]),
                duration_sec=float(row["duration_sec"]),
                cost=Decimal(row["cost"]),
                ended_at=datetime.fromisoformat(row["ended_at"]),
            )
            for row in rows
        ]


def _record(row: sqlite3.Row) -> AgreementRecord:
    reason: Any = json.loads(row["reason"]) if row["reason"] else None
    return AgreementRecord(
        agreement=Agreement.model_validate_json(row["agreement"]),
        state=AgreementState(row["state"]),
        runtime=row["runtime"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        reason=reason,
        terminator=Party(row["terminator"]) if row["terminator"] else None,
    )
