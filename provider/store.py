"""The provider's SQLite store: every agreement it was offered, with state, signatures and terms.

Written before the daemon acts on a decision's outcome, so a restarted daemon knows which agreements
are still Approved (and re-publishes nothing it has not signed).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
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
)


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
