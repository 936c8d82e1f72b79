"""The ERC-20 payment driver: pays GLM on EVM networks (requestor) and verifies payments (provider).

:class:`Erc20Driver` implements :class:`~payments.driver.PaymentDriver`. On the requestor side it
takes payment orders (:meth:`~Erc20Driver.schedule_payment`, idempotent on the order id), keeps
them in its own SQLite file, and a background loop (:meth:`~Erc20Driver.start`) pays them in
cycles through one :class:`~payments.erc20.sender.NetworkSender` per network. When the transaction
carrying an order is confirmed, every listener is called with ``(order_id, tx_hash)``; an order
whose listeners did not all return stays "unnotified" and is announced again later, also after a
restart. On the provider side (``account=None``) it only reads the chain: balances and
:meth:`~Erc20Driver.verify_payment`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType

from eth_account.signers.local import LocalAccount

from market.core.clock import Clock, SystemClock
from payments.driver import ConfirmationListener, DriverStatus, PaymentState, ScheduledPayment
from payments.erc20.chain import Chain
from payments.erc20.sender import NetworkSender
from payments.erc20.settings import SenderSettings
from payments.erc20.store import OrderRow, OrderState, SenderStore
from payments.erc20.units import ZERO_ADDRESS, from_wei, normalize_address, to_wei
from payments.erc20.verify import verify_on_chain
from payments.errors import DriverError
from payments.networks import Network

log = logging.getLogger(__name__)

NOTIFY_RETRY_FIRST = 1.0
NOTIFY_RETRY_MAX = 60.0
"""Back-off (seconds) before telling a listener that raised about a confirmation again."""


class Erc20Driver:
    """Pays and verifies ERC-20 (GLM) payments on the given networks.

    ``database`` is the driver's own SQLite file (not shared with another store). ``account`` is the
    key that pays; ``None`` makes a driver that only reads balances and verifies payments (what a
    provider needs), whose :meth:`schedule_payment` raises :class:`DriverError`.
    """

    def __init__(
        self,
        *,
        database: Path,
        networks: Sequence[Network],
        account: LocalAccount | None,
        clock: Clock | None = None,
        settings: SenderSettings | None = None,
    ) -> None:
        if not networks:
            raise ValueError("the ERC-20 driver needs at least one network")
        self._networks: dict[str, Network] = {}
        for net in networks:
            if net.platform in self._networks:
                raise ValueError(f"network {net.name} is given twice")
            self._networks[net.platform] = net
        self._clock: Clock = clock or SystemClock()
        self._settings = settings or SenderSettings()
        self._account = account
        self._store = SenderStore.open(database)
        self._chains = {platform: Chain(net) for platform, net in self._networks.items()}
        self._senders: dict[str, NetworkSender] = {}
        if account is not None:
            self._senders = {
                platform: NetworkSender(
                    network=net,
                    chain=self._chains[platform],
                    store=self._store,
                    account=account,
                    clock=self._clock,
                    settings=self._settings,
                )
                for platform, net in self._networks.items()
            }
        self._listeners: list[ConfirmationListener] = []
        self._retry_at: dict[str, tuple[float, float]] = {}
        self._notifying = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sender (idempotent; a verify-only driver has nothing to run)."""
        if self._closed:
            raise DriverError("the ERC-20 driver is closed")
        if self._task is None and self._account is not None:
            self._task = asyncio.create_task(self._run(), name="erc20-sender")
            log.info("ERC-20 driver started: %s", self.status().description)

    async def close(self) -> None:
        """Stop the sender and release the chain connections and the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for chain in self._chains.values():
            await chain.close()
        self._store.close()

    async def __aenter__(self) -> Erc20Driver:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.tick()
            except Exception:  # a failing database must not end the loop silently; log and go on
                log.exception("ERC-20 driver round failed; retrying")
                sent = 0
            if sent:
                # On a chain that mines at once (anvil) the receipt is already there: look again now
                # rather than a poll interval later. A tick only sends what new orders brought, so
                # this cannot spin.
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)

    async def tick(self) -> int:
        """One round of the background loop: every network's sender, then the listeners; txs broadcast."""
        sent = 0
        for sender in self._senders.values():
            try:
                sent += await sender.tick()
            except Exception:
                log.exception("%s: payment sender failed; retrying", sender.network.name)
        await self._notify()
        return sent

    # --- PaymentDriver ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "erc20"

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self._networks)

    @property
    def account_address(self) -> str | None:
        return None if self._account is None else self._account.address.lower()

    def sender(self, platform: str) -> NetworkSender:
        """The sender of one platform (for tools and tests); :class:`DriverError` if there is none."""
        sender = self._senders.get(platform)
        if sender is None:
            raise DriverError(f"this ERC-20 driver sends nothing on {platform}")
        return sender

    def _network(self, platform: str) -> Network:
        net = self._networks.get(platform)
        if net is None:
            raise DriverError(f"the ERC-20 driver does not serve platform {platform}")
        return net

    def add_listener(self, listener: ConfirmationListener) -> None:
        self._listeners.append(listener)
        self._wake.set()

    async def balance(self, address: str, platform: str) -> Decimal:
        """``address``'s token balance on ``platform`` (whole tokens)."""
        self._network(platform)
        return from_wei(await self._chains[platform].token_balance(self._address(address)))

    async def gas_balance(self, address: str, platform: str) -> Decimal:
        """``address``'s balance of the network's gas coin (ETH, POL...)."""
        self._network(platform)
        return from_wei(await self._chains[platform].gas_balance(self._address(address)))

    @staticmethod
    def _address(address: str) -> str:
        try:
            return normalize_address(address)
        except ValueError as exc:
            raise DriverError(str(exc)) from None

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
        """Store an order for the next payment cycle; the same ``order_id`` again returns its state."""
        if self._account is None:
            raise DriverError("this ERC-20 driver has no account: it verifies payments but cannot pay")
        self._network(platform)
        payer_address, payee_address = self._address(payer), self._address(payee)
        if payer_address != self.account_address:
            raise DriverError(f"cannot pay from {payer}: this driver pays from {self.account_address}")
        if payee_address == ZERO_ADDRESS:
            raise DriverError("cannot pay the zero address")
        try:
            amount_wei = to_wei(amount)
        except ValueError as exc:
            raise DriverError(f"order {order_id}: {exc}") from None
        with self._store.transaction():
            known = self._store.order(order_id)
            if known is None:
                self._store.insert_order(
                    order_id=order_id,
                    platform=platform,
                    payer=payer_address,
                    payee=payee_address,
                    amount=amount,
                    amount_wei=amount_wei,
                    document_ids=document_ids,
                    due=due,
                    created=self._clock.now(),
                )
        if known is not None:
            if (known.platform, known.payee, known.amount) != (platform, payee_address, amount):
                raise DriverError(
                    f"order {order_id} was scheduled as {known.amount:f} to {known.payee} on {known.platform}"
                )
            return self._scheduled(known)
        log.info(
            "order %s: %s to %s on %s, due %s (%s)",
            order_id,
            format(amount, "f"),
            payee_address,
            platform,
            "-" if due is None else due.isoformat(),
            ", ".join(document_ids),
        )
        self._wake.set()
        return ScheduledPayment(order_id, PaymentState.SCHEDULED, "")

    @staticmethod
    def _scheduled(order: OrderRow) -> ScheduledPayment:
        if order.state is OrderState.CONFIRMED:
            return ScheduledPayment(order.order_id, PaymentState.CONFIRMED, order.tx_hash or "")
        if order.state is OrderState.FAILED:
            return ScheduledPayment(order.order_id, PaymentState.FAILED, "")
        return ScheduledPayment(order.order_id, PaymentState.SCHEDULED, "")

    async def order_state(self, order_id: str) -> ScheduledPayment | None:
        order = self._store.order(order_id)
        return None if order is None else self._scheduled(order)

    async def verify_payment(
        self, *, details: str, payer: str, payee: str, amount: Decimal, platform: str
    ) -> None:
        """Check on chain that transaction ``details`` moved ``amount`` of the token from payer to payee."""
        self._network(platform)
        await verify_on_chain(
            self._chains[platform], details=details, payer=payer, payee=payee, amount=amount
        )

    def status(self) -> DriverStatus:
        networks = ", ".join(
            f"{net.name} (chain {net.chain_id}, {self._chains[p].rpc_url})"
            for p, net in self._networks.items()
        )
        who = (
            f"paying from {self.account_address}"
            if self._account is not None
            else "verification only (no account)"
        )
        problems = tuple(text for sender in self._senders.values() for text in sender.problems.values())
        return DriverStatus(
            name=self.name,
            platforms=tuple(sorted(self._networks)),
            is_dummy=False,
            description=f"ERC-20 driver on {networks}; {who}",
            problems=problems,
        )

    # --- confirmations ----------------------------------------------------------------------------

    async def _notify(self) -> None:
        if not self._listeners:
            return
        async with self._notifying:  # one round at a time, or an order could be announced twice at once
            await self._notify_round()

    async def _notify_round(self) -> None:
        now = self._clock.monotonic()
        for order_id, tx_hash in self._store.unnotified():
            retry = self._retry_at.get(order_id)
            if retry is not None and now < retry[0]:
                continue
            try:
                for listener in list(self._listeners):
                    await listener(order_id, tx_hash)
            except Exception as exc:
                delay = NOTIFY_RETRY_FIRST if retry is None else min(retry[1] * 2, NOTIFY_RETRY_MAX)
                self._retry_at[order_id] = (now + delay, delay)
                log.warning(
                    "order %s: a listener failed on confirmation %s (%s); telling it again in %.0f s",
                    order_id,
                    tx_hash,
                    exc,
                    delay,
                )
                continue
            self._retry_at.pop(order_id, None)
            self._store.mark_notified(order_id)
