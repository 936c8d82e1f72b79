"""The pure logic of a payment cycle: what to pay whom in which transaction, and when to run.

A cycle takes the orders waiting on one platform, sums them per payee (one entry per payee,
however many documents it covers) and splits the entries into transactions: a single payee is paid
with the token's own ``transfer``; two or more go through the batch contract in chunks of at most
``max_batch`` payees. A network without a batch contract pays every payee with its own
``transfer``, and so does an entry too large for the contract's 12-byte amount field.

:class:`CycleTimer` decides when the next cycle runs: every ``cycle_interval``, or earlier when the
nearest due date minus ``due_margin`` comes first, or at a retry time after a cycle could not send.
Nothing here touches the chain, the database or the clock; the sender feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from payments.erc20.units import normalize_address

PACKED_AMOUNT_LIMIT = 2**96
"""Amounts the batch contract can carry: the low 12 bytes of each packed word."""


class TxKind(StrEnum):
    """What a transaction of ours does."""

    TRANSFER = "transfer"
    """``token.transfer(payee, amount)``: one payee."""
    BATCH = "batch"
    """``multi.golemTransferDirectPacked(entries)``: several payees, one ``Transfer`` log each."""
    APPROVE = "approve"
    """``token.approve(multi, 2**256-1)``: the one-time allowance the batch contract needs."""


@dataclass(frozen=True)
class PendingOrder:
    """One order waiting to be paid, as the planner needs it."""

    order_id: str
    payee: str
    amount_wei: int
    due: datetime | None = None


@dataclass(frozen=True)
class Entry:
    """Everything owed to one payee in this cycle: one ``Transfer`` on chain."""

    payee: str
    amount_wei: int
    order_ids: tuple[str, ...]


@dataclass(frozen=True)
class PlannedTx:
    """One transaction of a cycle and the entries it pays."""

    kind: TxKind
    entries: tuple[Entry, ...]

    @property
    def amount_wei(self) -> int:
        return sum(e.amount_wei for e in self.entries)

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(o for e in self.entries for o in e.order_ids)


def sum_per_payee(orders: Iterable[PendingOrder]) -> list[Entry]:
    """One entry per payee (addresses compared case-insensitively), in payee order."""
    totals: dict[str, int] = {}
    ids: dict[str, list[str]] = {}
    for order in orders:
        if order.amount_wei <= 0:
            raise ValueError(f"order {order.order_id} has a non-positive amount")
        payee = normalize_address(order.payee)
        totals[payee] = totals.get(payee, 0) + order.amount_wei
        ids.setdefault(payee, []).append(order.order_id)
    return [Entry(payee, totals[payee], tuple(ids[payee])) for payee in sorted(totals)]


def plan_cycle(entries: Sequence[Entry], *, batch_available: bool, max_batch: int) -> list[PlannedTx]:
    """The transactions that pay ``entries``: ``transfer`` for one payee, batches for several.

    An entry whose amount does not fit the batch contract's 12-byte field goes alone in a
    ``transfer``. If what is left for batching is a single payee, that one is a ``transfer`` too.
    """
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    packable = [e for e in entries if e.amount_wei < PACKED_AMOUNT_LIMIT]
    singles = [e for e in entries if e.amount_wei >= PACKED_AMOUNT_LIMIT]
    plan: list[PlannedTx] = []
    if batch_available and len(packable) >= 2 and max_batch >= 2:
        for start in range(0, len(packable), max_batch):
            chunk = tuple(packable[start : start + max_batch])
            kind = TxKind.BATCH if len(chunk) >= 2 else TxKind.TRANSFER
            plan.append(PlannedTx(kind, chunk))
    else:
        singles = packable + singles
    plan += [PlannedTx(TxKind.TRANSFER, (e,)) for e in singles]
    return plan


def needs_batch(entries: Sequence[Entry], *, batch_available: bool, max_batch: int) -> bool:
    """Whether paying ``entries`` uses the batch contract (and so needs its allowance)."""
    return any(
        p.kind is TxKind.BATCH
        for p in plan_cycle(entries, batch_available=batch_available, max_batch=max_batch)
    )


def pack_entry(payee: str, amount_wei: int) -> bytes:
    """One batch-contract word: ``address (20 bytes) ‖ amount (12 bytes)``."""
    if not 0 < amount_wei < PACKED_AMOUNT_LIMIT:
        raise ValueError(f"amount {amount_wei} does not fit a packed entry")
    return bytes.fromhex(normalize_address(payee)[2:]) + amount_wei.to_bytes(12, "big")


def unpack_entry(word: bytes) -> tuple[str, int]:
    """The inverse of :func:`pack_entry`."""
    if len(word) != 32:
        raise ValueError("a packed entry is 32 bytes")
    return "0x" + word[:20].hex(), int.from_bytes(word[20:], "big")


@dataclass
class CycleTimer:
    """When the next payment cycle of one platform runs.

    Regular cycles follow ``interval`` from the last one; an order due at ``d`` pulls the next cycle
    to ``d - margin``. After a cycle that could not send, :meth:`hold` pins the next try to a retry
    time regardless of due dates (a past due date would otherwise retry on every poll).
    """

    interval: float
    margin: float
    last: datetime
    hold_until: datetime | None = None

    def next_at(self, earliest_due: datetime | None) -> datetime:
        if self.hold_until is not None:
            return self.hold_until
        at = self.last + timedelta(seconds=self.interval)
        if earliest_due is not None:
            at = min(at, earliest_due - timedelta(seconds=self.margin))
        return at

    def is_due(self, now: datetime, earliest_due: datetime | None) -> bool:
        return now >= self.next_at(earliest_due)

    def ran(self, now: datetime) -> None:
        """A cycle handed everything it found to transactions."""
        self.last = now
        self.hold_until = None

    def hold(self, until: datetime) -> None:
        """A cycle could not send (or waits for an approval); try again at ``until``."""
        self.hold_until = until
