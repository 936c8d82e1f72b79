"""Allocations: budgets a requestor sets aside on one payment platform, and the money arithmetic.

An allocation is purely virtual (nothing is locked on chain): ``total`` is what the requestor may
spend, ``spent`` grows when a debit note or invoice is *accepted* against it (not when it is paid),
and ``remaining = total - spent``. Amounts are :class:`~decimal.Decimal` computed in :data:`MONEY`, a
context wide enough that the long strings yapapi sends (``str(Decimal(0.1))`` has 55 digits) are
never rounded; the default 28-digit context would silently lose money.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import Enum

from market.core.statemachine import transition
from payments.errors import AllocationReleasedError, InsufficientFundsError, InvalidInputError

MONEY = Context(prec=200, Emax=999, Emin=-999, traps=[InvalidOperation, DivisionByZero, Overflow])
"""The decimal context of every money computation: exact for any amount :func:`parse_amount` admits."""

MAX_SIGNIFICANT_DIGITS = 100
MAX_INTEGER_DIGITS = 40
MAX_FRACTION_DIGITS = 60


def parse_amount(value: object) -> Decimal:
    """A non-negative finite amount from a wire value: a decimal string, or a JSON integer/number.

    Floats are taken by their shortest ``repr`` (what the sender wrote), never by their binary value.
    Absurd magnitudes are refused so that one request cannot make us format a million-digit string.
    """
    if isinstance(value, bool):
        raise ValueError("an amount is a decimal string, not a boolean")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal amount: {value!r}") from None
    else:
        raise ValueError(f"an amount is a decimal string, not {type(value).__name__}")
    if not amount.is_finite():
        raise ValueError(f"an amount must be finite: {value!r}")
    if amount < 0:
        raise ValueError(f"an amount cannot be negative: {value!r}")
    digits = amount.as_tuple()
    exponent = int(digits.exponent)
    if (
        len(digits.digits) > MAX_SIGNIFICANT_DIGITS
        or -exponent > MAX_FRACTION_DIGITS
        or amount.adjusted() >= MAX_INTEGER_DIGITS
    ):
        raise ValueError(f"amount out of range: {value!r}")
    return amount


def format_amount(amount: Decimal) -> str:
    """The wire form: plain decimal notation, never an exponent (``1E+2`` would confuse peers)."""
    return format(amount, "f")


def add(*amounts: Decimal) -> Decimal:
    """Exact sum of ``amounts``."""
    total = Decimal(0)
    for amount in amounts:
        total = MONEY.add(total, amount)
    return total


def subtract(a: Decimal, b: Decimal) -> Decimal:
    """Exact ``a - b``."""
    return MONEY.subtract(a, b)


class AllocationState(Enum):
    """Lifecycle of an allocation."""

    ACTIVE = "Active"
    """Acceptances may spend from it."""
    EXPIRED = "Expired"
    """Its timeout has passed; it is treated as released but still listed until released."""
    RELEASED = "Released"
    """The requestor released it; reads answer 410 and nothing more is spent from it."""


ALLOCATION_TRANSITIONS: dict[AllocationState, frozenset[AllocationState]] = {
    AllocationState.ACTIVE: frozenset({AllocationState.EXPIRED, AllocationState.RELEASED}),
    AllocationState.EXPIRED: frozenset({AllocationState.RELEASED}),
    AllocationState.RELEASED: frozenset(),
}
"""The allowed allocation edges."""


@dataclass(frozen=True)
class Allocation:
    """One budget on one platform; every change returns a new value (the store writes it)."""

    allocation_id: str
    owner_id: str
    """The node identity that created it (the payer)."""
    address: str
    platform: str
    total: Decimal
    spent: Decimal
    timestamp: datetime
    timeout: datetime | None
    created: datetime
    updated: datetime
    make_deposit: bool = False
    extend_timeout: int | None = None
    released: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        return subtract(self.total, self.spent)

    def state(self, now: datetime) -> AllocationState:
        if self.released is not None:
            return AllocationState.RELEASED
        if self.timeout is not None and now >= self.timeout:
            return AllocationState.EXPIRED
        return AllocationState.ACTIVE

    def spend(self, amount: Decimal, now: datetime) -> Allocation:
        """This allocation with ``amount`` more spent; raises without changing anything if it cannot."""
        state = self.state(now)
        if state is not AllocationState.ACTIVE:
            raise AllocationReleasedError(
                f"allocation {self.allocation_id} is {state.value.lower()}",
                platform=self.platform,
                address=self.address,
            )
        if amount < 0:
            raise InvalidInputError(f"cannot spend a negative amount ({format_amount(amount)})")
        if amount > self.remaining:
            raise InsufficientFundsError(
                f"Not enough funds in allocation {self.allocation_id}: "
                f"requested {format_amount(amount)}, remaining {format_amount(self.remaining)}",
                requested=amount,
                available=self.remaining,
                platform=self.platform,
                address=self.address,
            )
        return dataclasses.replace(self, spent=add(self.spent, amount), updated=now)

    def release(self, now: datetime) -> Allocation:
        """This allocation released; raises :class:`InvalidTransition` if it already was."""
        transition("Allocation", ALLOCATION_TRANSITIONS, self.state(now), AllocationState.RELEASED)
        return dataclasses.replace(self, released=now, updated=now)


def check_reservation(
    requested: Decimal,
    balance: Decimal,
    others: Iterable[Allocation],
    *,
    now: datetime,
    platform: str,
    address: str,
) -> None:
    """Refuse a new allocation larger than the account's balance minus what live allocations hold.

    Mirrors yagna's ``ValidateAllocation``: allocations are virtual, so this is the only thing that
    stops a requestor from promising the same money twice.
    """
    reserved = add(
        *(
            a.remaining
            for a in others
            if a.platform == platform and a.address == address and a.state(now) is AllocationState.ACTIVE
        )
    )
    available = subtract(balance, reserved)
    if requested > available:
        raise InsufficientFundsError(
            f"Insufficient funds to make allocation on {platform} for {address}: requested "
            f"{format_amount(requested)}, available {format_amount(max(available, Decimal(0)))} "
            f"(balance {format_amount(balance)}, reserved {format_amount(reserved)})",
            requested=requested,
            available=available,
            platform=platform,
            address=address,
        )
