"""Payment drivers: the seam between the payment service and whatever actually moves money.

:class:`PaymentDriver` is what the service needs from a driver (which platforms it serves, a
balance, scheduling a payment, verifying one it was told about). The ERC-20 driver implements it
against an EVM chain; :class:`DummyDriver` implements it with no chain at all, for tests and for
local runs where nobody is really paid. The dummy says so everywhere it shows: its platform names
start with ``dummy-``, its :attr:`~DummyDriver.name` is ``dummy``, its log lines and
:meth:`~DummyDriver.status` name it a dummy, and its payment details read ``dummy:<id>``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Protocol, runtime_checkable

from market.core.clock import Clock, SystemClock
from market.core.ids import new_id
from market.core.statemachine import transition
from payments.allocation import add, format_amount
from payments.errors import DriverError, PaymentRejectedError

log = logging.getLogger(__name__)

DUMMY_PREFIX = "dummy-"
DUMMY_PLATFORM = "dummy-glm"
"""The dummy driver's default platform, named as yagna names its own dummy driver's."""


class PaymentState(Enum):
    """Lifecycle of one payment order on the requestor side."""

    ORDERED = "Ordered"
    """Written to the database, not yet handed to a driver (what a crash leaves to resume)."""
    SCHEDULED = "Scheduled"
    """A driver accepted it and gave it a payment id."""
    CONFIRMED = "Confirmed"
    """The driver saw it confirmed (on chain, or at once for the dummy)."""
    FAILED = "Failed"
    """The driver gave up on it."""


PAYMENT_TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    PaymentState.ORDERED: frozenset({PaymentState.SCHEDULED, PaymentState.CONFIRMED, PaymentState.FAILED}),
    PaymentState.SCHEDULED: frozenset({PaymentState.CONFIRMED, PaymentState.FAILED}),
    PaymentState.CONFIRMED: frozenset(),
    PaymentState.FAILED: frozenset(),
}
"""Allowed payment edges; Ordered → Confirmed covers drivers that confirm while scheduling."""


def advance_payment(current: PaymentState, target: PaymentState) -> PaymentState:
    return transition("Payment", PAYMENT_TRANSITIONS, current, target)


@dataclass(frozen=True)
class ScheduledPayment:
    """A driver's answer to :meth:`PaymentDriver.schedule_payment`."""

    payment_id: str
    state: PaymentState
    details: str
    """What the payee needs to verify it (a tx hash for ERC-20, ``dummy:<id>`` for the dummy)."""


ConfirmationListener = Callable[[str, str], Awaitable[None]]
"""``listener(order_id, details)``: a driver calls it once an order it scheduled is confirmed."""


@dataclass(frozen=True)
class DriverStatus:
    """What ``golem payments status`` shows for a driver."""

    name: str
    platforms: tuple[str, ...]
    is_dummy: bool
    description: str
    problems: tuple[str, ...] = ()
    """What currently keeps payments from going out (no gas coin, too few tokens, a stuck tx...)."""


@runtime_checkable
class PaymentDriver(Protocol):
    """Moves money on some set of platforms."""

    @property
    def name(self) -> str:
        """Short driver name (``erc20``, ``dummy``)."""
        ...

    @property
    def platforms(self) -> frozenset[str]:
        """The platform strings this driver serves (``erc20-holesky-tglm``...)."""
        ...

    async def balance(self, address: str, platform: str) -> Decimal:
        """The token balance ``address`` holds on ``platform``."""
        ...

    async def start(self) -> None:
        """Begin background work (sending, confirming); idempotent."""
        ...

    async def close(self) -> None:
        """Stop background work; what is in flight resumes at the next start."""
        ...

    def add_listener(self, listener: ConfirmationListener) -> None:
        """Call ``listener(order_id, details)`` for every order this driver confirms from now on.

        A driver that confirms later than :meth:`schedule_payment` returns (ERC-20) calls it once the
        transfer is confirmed on chain, and again after a restart for confirmations no listener
        acknowledged (the listener returned without raising); listeners must be idempotent.
        """
        ...

    async def order_state(self, order_id: str) -> ScheduledPayment | None:
        """What became of an order (``None`` if the driver never took it)."""
        ...

    async def schedule_payment(
        self,
        *,
        payer: str,
        payee: str,
        amount: Decimal,
        platform: str,
        document_ids: Sequence[str],
        order_id: str,
        due: datetime | None = None,
    ) -> ScheduledPayment:
        """Pay ``amount`` from ``payer`` to ``payee`` (addresses) by ``due``.

        Idempotent on ``order_id``: the service calls it again after a crash for orders it wrote but
        never saw scheduled, and the driver must not pay twice.
        """
        ...

    async def verify_payment(
        self, *, details: str, payer: str, payee: str, amount: Decimal, platform: str
    ) -> None:
        """Check that ``details`` proves transfers of at least ``amount`` from ``payer`` to ``payee``.

        Raises :class:`~payments.errors.PaymentRejectedError` saying why when it does not, and
        :class:`~payments.errors.DriverError` when it cannot tell (the chain is unreachable).
        """
        ...

    def status(self) -> DriverStatus:
        """A description for status displays."""
        ...


@dataclass
class _DummyTransfer:
    payment_id: str
    order_id: str
    payer: str
    payee: str
    amount: Decimal
    platform: str
    document_ids: tuple[str, ...]
    at: datetime


@dataclass
class DummyDriver:
    """A driver that pays nobody: it records payments in memory and confirms them at once.

    For tests and for local runs without a chain. Balances start at ``initial_balance`` for any
    address and go down as it "pays". It serves only platforms whose names start with ``dummy-``, so
    a dummy payment can never be mistaken for a real one.
    """

    platform_names: Iterable[str] = (DUMMY_PLATFORM,)
    initial_balance: Decimal = Decimal(1_000_000)
    trust_remote_claims: bool = False
    """Accept a well-formed ``dummy:`` claim this instance did not make itself. A provider's dummy
    driver runs in another process than the requestor's that "paid", and on a dummy platform no
    value moves, so there is nothing to check; only ever set for ``dummy-*`` platforms."""
    clock: Clock = field(default_factory=SystemClock)
    transfers: dict[str, _DummyTransfer] = field(default_factory=dict, init=False)
    _by_order: dict[str, str] = field(default_factory=dict, init=False)
    _spent: dict[tuple[str, str], Decimal] = field(default_factory=dict, init=False)
    _platforms: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        platforms = frozenset(self.platform_names)
        not_dummy = sorted(p for p in platforms if not p.startswith(DUMMY_PREFIX))
        if not platforms or not_dummy:
            raise ValueError(f"the dummy driver serves only platforms named dummy-*, not {not_dummy}")
        self._platforms = platforms

    @property
    def name(self) -> str:
        return "dummy"

    @property
    def platforms(self) -> frozenset[str]:
        return self._platforms

    def _check(self, platform: str) -> None:
        if platform not in self._platforms:
            raise DriverError(f"the dummy driver does not serve platform {platform}")

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing runs in the background."""

    def add_listener(self, listener: ConfirmationListener) -> None:
        """The dummy confirms while scheduling, so it never calls a listener."""

    async def order_state(self, order_id: str) -> ScheduledPayment | None:
        payment_id = self._by_order.get(order_id)
        if payment_id is None:
            return None
        return ScheduledPayment(payment_id, PaymentState.CONFIRMED, f"dummy:{payment_id}")

    async def balance(self, address: str, platform: str) -> Decimal:
        self._check(platform)
        spent = self._spent.get((address.lower(), platform), Decimal(0))
        return self.initial_balance - spent

    async def schedule_payment(
        self,
        *,
        payer: str,
        payee: str,
        amount: Decimal,
        platform: str,
        document_ids: Sequence[str],
        order_id: str,
        due: datetime | None = None,
    ) -> ScheduledPayment:
        self._check(platform)
        known = self._by_order.get(order_id)
        if known is None:
            key = (payer.lower(), platform)
            if amount > self.initial_balance - self._spent.get(key, Decimal(0)):
                raise DriverError(f"dummy driver: {payer} has too little dummy balance for {amount:f}")
            payment_id = f"dummy-{new_id()}"
            self.transfers[payment_id] = _DummyTransfer(
                payment_id,
                order_id,
                payer.lower(),
                payee.lower(),
                amount,
                platform,
                tuple(document_ids),
                self.clock.now(),
            )
            self._by_order[order_id] = payment_id
            self._spent[key] = add(self._spent.get(key, Decimal(0)), amount)
            log.info(
                "DUMMY payment (no chain, nothing is really paid) %s: %s %s from %s to %s for %s",
                payment_id,
                format_amount(amount),
                platform,
                payer,
                payee,
                ", ".join(document_ids),
            )
            known = payment_id
        return ScheduledPayment(known, PaymentState.CONFIRMED, f"dummy:{known}")

    async def verify_payment(
        self, *, details: str, payer: str, payee: str, amount: Decimal, platform: str
    ) -> None:
        if not details.startswith("dummy:"):
            raise PaymentRejectedError(f"{details!r} is not a dummy payment")
        transfer = self.transfers.get(details.removeprefix("dummy:"))
        if transfer is None and self.trust_remote_claims:
            self._check(platform)
            log.warning("DUMMY payment %s accepted on trust: no chain backs dummy payments", details)
            if amount <= 0:
                raise PaymentRejectedError("a payment must be of a positive amount")
            return
        if transfer is None:
            raise PaymentRejectedError(f"no dummy payment {details} was made here")
        if transfer.platform != platform:
            raise PaymentRejectedError(f"dummy payment {details} was on {transfer.platform}, not {platform}")
        if transfer.payer != payer.lower() or transfer.payee != payee.lower():
            raise PaymentRejectedError(f"dummy payment {details} was between other parties")
        if transfer.amount < amount:
            raise PaymentRejectedError(
                f"dummy payment {details} moved {transfer.amount:f}, less than the {amount:f} claimed"
            )

    def status(self) -> DriverStatus:
        return DriverStatus(
            name="dummy",
            platforms=tuple(sorted(self._platforms)),
            is_dummy=True,
            description="DUMMY driver: no chain, payments are only recorded in memory",
        )


def drivers_by_platform(drivers: Iterable[PaymentDriver]) -> Mapping[str, PaymentDriver]:
    """Index drivers by the platforms they serve; two drivers claiming one platform is an error."""
    table: dict[str, PaymentDriver] = {}
    for driver in drivers:
        for platform in driver.platforms:
            if platform in table:
                raise ValueError(
                    f"platform {platform} is served by both {table[platform].name} and {driver.name}"
                )
            table[platform] = driver
    return table
