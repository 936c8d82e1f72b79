"""The ERC-20 driver's own SQLite tables: orders, transactions (sends and their attempts), nonces.

* An **order** is one ``schedule_payment`` call: ``pending`` until a cycle puts it in a send,
  ``sent`` while that send is live, ``confirmed`` once the send's transaction is confirmed (with the
  hash that paid it and whether every listener has been told), ``failed`` if given up.
* A **send** is one nonce of our account and what it carries (calldata, gas, the orders). It stays
  ``live`` until a transaction with its nonce is mined: ``confirmed`` (status 1, deep enough),
  ``reverted`` (status 0; its orders go back to ``pending``) or ``lost`` (another transaction took
  the nonce; its orders go back to ``pending`` too). An order belongs to at most one live send.
* An **attempt** is one signed transaction of a send: the first, then each same-nonce replacement
  with higher fees. At most one attempt of a send can ever be mined, which is what makes replacing
  safe. The signed bytes are stored *before* they are broadcast, in the same transaction that
  assigns the orders and advances the nonce counter, so a crash at any point leaves either nothing
  or a transaction that will be broadcast on restart, never a payment made twice.

Amounts in wei are decimal strings (they exceed SQLite's 64-bit integers); times are integer
microseconds since the epoch. The file is the driver's alone: its schema version lives in
``user_version``, which another store in the same file would also claim.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from market.core.storage import Transactions, open_database
from payments.errors import DriverError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE erc20_sends (
        send_id INTEGER PRIMARY KEY AUTOINCREMENT,
        platform TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        sender TEXT NOT NULL,
        nonce INTEGER NOT NULL,
        kind TEXT NOT NULL,
        to_address TEXT NOT NULL,
        data BLOB NOT NULL,
        gas INTEGER NOT NULL,
        amount_wei TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('live', 'confirmed', 'reverted', 'lost')),
        tx_hash TEXT,
        block INTEGER,
        created_us INTEGER NOT NULL,
        finished_us INTEGER,
        UNIQUE (chain_id, sender, nonce)
    );
    CREATE INDEX erc20_sends_live ON erc20_sends (platform, state, nonce);
    CREATE TABLE erc20_attempts (
        attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
        send_id INTEGER NOT NULL REFERENCES erc20_sends (send_id),
        tx_hash TEXT NOT NULL UNIQUE,
        raw BLOB NOT NULL,
        max_fee INTEGER NOT NULL,
        priority_fee INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        broadcast_us INTEGER
    );
    CREATE INDEX erc20_attempts_by_send ON erc20_attempts (send_id, attempt_id);
    CREATE TABLE erc20_orders (
        order_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        payer TEXT NOT NULL,
        payee TEXT NOT NULL,
        amount TEXT NOT NULL,
        amount_wei TEXT NOT NULL,
        document_ids TEXT NOT NULL,
        due_us INTEGER,
        created_us INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'confirmed', 'failed')),
        send_id INTEGER REFERENCES erc20_sends (send_id),
        tx_hash TEXT,
        confirmed_us INTEGER,
        notified INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX erc20_orders_by_state ON erc20_orders (state, platform);
    CREATE INDEX erc20_orders_by_send ON erc20_orders (send_id);
    CREATE TABLE erc20_nonces (
        chain_id INTEGER NOT NULL,
        sender TEXT NOT NULL,
        next_nonce INTEGER NOT NULL,
        PRIMARY KEY (chain_id, sender)
    )
    """,
)


class OrderState(StrEnum):
    """Where one order stands."""

    PENDING = "pending"
    """Waiting for a payment cycle (again, if a send carrying it reverted or lost its nonce)."""
    SENT = "sent"
    """Carried by a live send."""
    CONFIRMED = "confirmed"
    """Paid: the transaction is mined with status 1 and has the configured confirmations."""
    FAILED = "failed"
    """Given up; it will not be paid by this driver."""


class SendState(StrEnum):
    """Where one nonce of ours stands."""

    LIVE = "live"
    """Signed (maybe not yet broadcast), not yet settled on chain."""
    CONFIRMED = "confirmed"
    """An attempt was mined with status 1 and is deep enough."""
    REVERTED = "reverted"
    """An attempt was mined with status 0: the nonce is spent, nothing moved."""
    LOST = "lost"
    """The nonce was taken by a transaction none of our attempts is."""


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _at(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=UTC)


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    platform: str
    payer: str
    payee: str
    amount: Decimal
    amount_wei: int
    document_ids: tuple[str, ...]
    due: datetime | None
    created: datetime
    state: OrderState
    send_id: int | None
    tx_hash: str | None
    notified: bool


@dataclass(frozen=True)
class SendRow:
    send_id: int
    platform: str
    chain_id: int
    sender: str
    nonce: int
    kind: str
    to_address: str
    data: bytes
    gas: int
    amount_wei: int
    state: SendState
    tx_hash: str | None
    block: int | None
    created: datetime


@dataclass(frozen=True)
class AttemptRow:
    attempt_id: int
    send_id: int
    tx_hash: str
    raw: bytes
    max_fee: int
    priority_fee: int
    created: datetime
    broadcast: datetime | None


def _order(row: sqlite3.Row) -> OrderRow:
    return OrderRow(
        order_id=row["order_id"],
        platform=row["platform"],
        payer=row["payer"],
        payee=row["payee"],
        amount=Decimal(row["amount"]),
        amount_wei=int(row["amount_wei"]),
        document_ids=tuple(json.loads(row["document_ids"])),
        due=_at(row["due_us"]),
        created=_at(row["created_us"]) or datetime.fromtimestamp(0, UTC),
        state=OrderState(row["state"]),
        send_id=row["send_id"],
        tx_hash=row["tx_hash"],
        notified=bool(row["notified"]),
    )


def _send(row: sqlite3.Row) -> SendRow:
    return SendRow(
        send_id=row["send_id"],
        platform=row["platform"],
        chain_id=row["chain_id"],
        sender=row["sender"],
        nonce=row["nonce"],
        kind=row["kind"],
        to_address=row["to_address"],
        data=bytes(row["data"]),
        gas=row["gas"],
        amount_wei=int(row["amount_wei"]),
        state=SendState(row["state"]),
        tx_hash=row["tx_hash"],
        block=row["block"],
        created=_at(row["created_us"]) or datetime.fromtimestamp(0, UTC),
    )


def _attempt(row: sqlite3.Row) -> AttemptRow:
    return AttemptRow(
        attempt_id=row["attempt_id"],
        send_id=row["send_id"],
        tx_hash=row["tx_hash"],
        raw=bytes(row["raw"]),
        max_fee=row["max_fee"],
        priority_fee=row["priority_fee"],
        created=_at(row["created_us"]) or datetime.fromtimestamp(0, UTC),
        broadcast=_at(row["broadcast_us"]),
    )


class SenderStore:
    """The driver's tables in one SQLite file; every multi-row change inside :meth:`transaction`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._transactions = Transactions(conn)

    @classmethod
    def open(cls, path: Path | str) -> SenderStore:
        conn = open_database(path, MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "erc20_orders" not in tables:
            conn.close()
            raise DriverError(f"{path} is another store's database; the ERC-20 driver needs its own file")
        return cls(conn)

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Run a block atomically; nested blocks join the outer transaction."""
        return self._transactions()

    # --- orders -----------------------------------------------------------------------------------

    def insert_order(
        self,
        *,
        order_id: str,
        platform: str,
        payer: str,
        payee: str,
        amount: Decimal,
        amount_wei: int,
        document_ids: Sequence[str],
        due: datetime | None,
        created: datetime,
    ) -> None:
        self.conn.execute(
            "INSERT INTO erc20_orders (order_id, platform, payer, payee, amount, amount_wei, document_ids,"
            " due_us, created_us, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order_id,
                platform,
                payer,
                payee,
                format(amount, "f"),
                str(amount_wei),
                json.dumps(list(document_ids)),
                None if due is None else _us(due),
                _us(created),
                OrderState.PENDING.value,
            ),
        )

    def order(self, order_id: str) -> OrderRow | None:
        row = self.conn.execute("SELECT * FROM erc20_orders WHERE order_id = ?", (order_id,)).fetchone()
        return None if row is None else _order(row)

    def pending_orders(self, platform: str) -> list[OrderRow]:
        rows = self.conn.execute(
            "SELECT * FROM erc20_orders WHERE state = 'pending' AND platform = ?"
            " ORDER BY created_us, order_id",
            (platform,),
        )
        return [_order(r) for r in rows]

    def pending_summary(self, platform: str) -> tuple[int, datetime | None]:
        """How many orders wait on ``platform``, and the nearest due date among them."""
        count, due = self.conn.execute(
            "SELECT COUNT(*), MIN(due_us) FROM erc20_orders WHERE state = 'pending' AND platform = ?",
            (platform,),
        ).fetchone()
        return int(count), _at(due)

    def orders_of_send(self, send_id: int) -> list[OrderRow]:
        rows = self.conn.execute("SELECT * FROM erc20_orders WHERE send_id = ? ORDER BY order_id", (send_id,))
        return [_order(r) for r in rows]

    def assign(self, order_ids: Sequence[str], send_id: int) -> None:
        """Put pending orders into a send; raises (rolling the caller back) if one is not pending."""
        for order_id in order_ids:
            changed = self.conn.execute(
                "UPDATE erc20_orders SET state = 'sent', send_id = ?"
                " WHERE order_id = ? AND state = 'pending'",
                (send_id, order_id),
            ).rowcount
            if changed != 1:
                raise DriverError(f"order {order_id} is no longer pending; not sending it again")

    def unnotified(self) -> list[tuple[str, str]]:
        """``(order_id, tx_hash)`` of confirmed orders some listener has not acknowledged yet."""
        rows = self.conn.execute(
            "SELECT order_id, tx_hash FROM erc20_orders WHERE state = 'confirmed' AND notified = 0"
            " ORDER BY confirmed_us, order_id"
        )
        return [(r["order_id"], r["tx_hash"]) for r in rows]

    def mark_notified(self, order_id: str) -> None:
        self.conn.execute("UPDATE erc20_orders SET notified = 1 WHERE order_id = ?", (order_id,))

    def count_orders(self, state: OrderState) -> int:
        (count,) = self.conn.execute(
            "SELECT COUNT(*) FROM erc20_orders WHERE state = ?", (state.value,)
        ).fetchone()
        return int(count)

    # --- sends and attempts -----------------------------------------------------------------------

    def insert_send(
        self,
        *,
        platform: str,
        chain_id: int,
        sender: str,
        nonce: int,
        kind: str,
        to_address: str,
        data: bytes,
        gas: int,
        amount_wei: int,
        created: datetime,
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO erc20_sends (platform, chain_id, sender, nonce, kind, to_address, data, gas,"
            " amount_wei, state, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'live', ?)",
            (platform, chain_id, sender, nonce, kind, to_address, data, gas, str(amount_wei), _us(created)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def insert_attempt(
        self, *, send_id: int, tx_hash: str, raw: bytes, max_fee: int, priority_fee: int, created: datetime
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO erc20_attempts (send_id, tx_hash, raw, max_fee, priority_fee, created_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (send_id, tx_hash, raw, max_fee, priority_fee, _us(created)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def send(self, send_id: int) -> SendRow | None:
        row = self.conn.execute("SELECT * FROM erc20_sends WHERE send_id = ?", (send_id,)).fetchone()
        return None if row is None else _send(row)

    def live_sends(self, platform: str, *, kind: str | None = None) -> list[SendRow]:
        if kind is None:
            rows = self.conn.execute(
                "SELECT * FROM erc20_sends WHERE platform = ? AND state = 'live' ORDER BY nonce", (platform,)
            )
        else:
            rows = self.conn.execute(
                "SELECT * FROM erc20_sends WHERE platform = ? AND state = 'live' AND kind = ? ORDER BY nonce",
                (platform, kind),
            )
        return [_send(r) for r in rows]

    def sends(self, platform: str) -> list[SendRow]:
        rows = self.conn.execute("SELECT * FROM erc20_sends WHERE platform = ? ORDER BY nonce", (platform,))
        return [_send(r) for r in rows]

    def attempts(self, send_id: int) -> list[AttemptRow]:
        """Every signed transaction of a send, oldest first (the last is the one to keep alive)."""
        rows = self.conn.execute(
            "SELECT * FROM erc20_attempts WHERE send_id = ? ORDER BY attempt_id", (send_id,)
        )
        return [_attempt(r) for r in rows]

    def mark_broadcast(self, attempt_id: int, at: datetime) -> None:
        self.conn.execute(
            "UPDATE erc20_attempts SET broadcast_us = ? WHERE attempt_id = ?", (_us(at), attempt_id)
        )

    def finish_send(
        self, send_id: int, state: SendState, *, tx_hash: str | None, block: int | None, at: datetime
    ) -> None:
        """Settle a live send; its orders become confirmed (with ``tx_hash``) or pending again."""
        if state is SendState.LIVE:
            raise ValueError("finishing a send needs a final state")
        with self.transaction():
            changed = self.conn.execute(
                "UPDATE erc20_sends SET state = ?, tx_hash = ?, block = ?, finished_us = ?"
                " WHERE send_id = ? AND state = 'live'",
                (state.value, tx_hash, block, _us(at), send_id),
            ).rowcount
            if changed != 1:
                return
            if state is SendState.CONFIRMED:
                self.conn.execute(
                    "UPDATE erc20_orders SET state = 'confirmed', tx_hash = ?, confirmed_us = ?, notified = 0"
                    " WHERE send_id = ? AND state = 'sent'",
                    (tx_hash, _us(at), send_id),
                )
            else:
                self.conn.execute(
                    "UPDATE erc20_orders SET state = 'pending', send_id = NULL"
                    " WHERE send_id = ? AND state = 'sent'",
                    (send_id,),
                )

    # --- nonces -----------------------------------------------------------------------------------

    def next_nonce(self, chain_id: int, sender: str) -> int:
        row = self.conn.execute(
            "SELECT next_nonce FROM erc20_nonces WHERE chain_id = ? AND sender = ?", (chain_id, sender)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def set_next_nonce(self, chain_id: int, sender: str, nonce: int) -> None:
        self.conn.execute(
            "INSERT INTO erc20_nonces (chain_id, sender, next_nonce) VALUES (?, ?, ?)"
            " ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = excluded.next_nonce",
            (chain_id, sender, nonce),
        )
