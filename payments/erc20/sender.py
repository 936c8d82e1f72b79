"""The requestor-side sender of one network: payment cycles, nonces, broadcasting, confirmation.

Each :meth:`NetworkSender.tick` (the driver calls it every ``poll_interval``) does two things:

1. **Reconcile** what is in flight. For every live send (one nonce of ours): if the chain's
   ``latest`` nonce has passed it, find which of its attempts was mined; status 1 with enough
   confirmations confirms its orders, status 0 puts them back to pending (and reports it), and a
   nonce taken by a transaction none of ours is releases them after ``transaction_timeout``. If
   it is not mined yet, make sure the node still has it (anvil drops underpriced transactions, and a
   restarted node forgets its pool: re-broadcast the stored raw bytes) and, once it has waited
   ``replacement_timeout``, replace it with the same nonce and both fees raised by at least 10 %.
2. **Run a payment cycle** when :class:`~payments.erc20.batching.CycleTimer` says so: sum the
   pending orders per payee, plan transfers and batches, check the allowance, the token balance,
   the fee cap and the gas coin, then — in one SQLite transaction — take nonces, sign, store the
   raw transactions and assign the orders; only then broadcast.

Anything that keeps payments from going out is kept in :attr:`NetworkSender.problems` (and logged
once each time it changes), which the driver's status shows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from market.core.clock import Clock
from payments.erc20.batching import CycleTimer, PendingOrder, PlannedTx, TxKind, plan_cycle, sum_per_payee
from payments.erc20.calls import ALLOWANCE_ENOUGH, approve_call, batch_call, transfer_call
from payments.erc20.chain import Chain, ChainCallError, ChainUnavailableError, RefusalKind, TxRefusedError
from payments.erc20.fees import BumpBlockedError, FeeCapError, Fees, initial_fees, replacement_fees
from payments.erc20.settings import SenderSettings
from payments.erc20.store import AttemptRow, SenderStore, SendRow, SendState
from payments.erc20.units import format_tokens, gwei_to_wei
from payments.networks import Network

log = logging.getLogger(__name__)


@dataclass
class _Draft:
    """A transaction of a cycle before it has a nonce."""

    kind: TxKind
    to: str
    data: bytes
    amount_wei: int
    order_ids: tuple[str, ...]
    payees: int
    gas: int = 0


class NetworkSender:
    """Pays the orders of one network from one account."""

    def __init__(
        self,
        *,
        network: Network,
        chain: Chain,
        store: SenderStore,
        account: LocalAccount,
        clock: Clock,
        settings: SenderSettings,
    ) -> None:
        self.network = network
        self.platform = network.platform
        self.chain = chain
        self.store = store
        self.account = account
        self.address = account.address.lower()
        self.clock = clock
        self.settings = settings
        self.timer = CycleTimer(settings.cycle_interval, settings.due_margin, last=clock.now())
        self.problems: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._chain_checked = False
        self._nonce_taken_since: dict[int, datetime] = {}
        self._priority_fee = gwei_to_wei(network.priority_fee_gwei)
        self._cap = gwei_to_wei(network.max_fee_gwei)

    # --- problems ---------------------------------------------------------------------------------

    def _problem(self, key: str, text: str) -> None:
        if self.problems.get(key) != text:
            log.warning("%s", text)
            self.problems[key] = text

    def _clear(self, *keys: str) -> None:
        for key in keys:
            if self.problems.pop(key, None) is not None:
                log.info("%s: resolved: %s", self.network.name, key)

    def _clear_send(self, send_id: int) -> None:
        self._clear(*[k for k in self.problems if k.endswith(f":{send_id}")])

    # --- the tick ---------------------------------------------------------------------------------

    def has_work(self) -> bool:
        """Whether anything waits or is in flight (answered from SQLite alone, no chain call)."""
        count, _ = self.store.pending_summary(self.platform)
        return count > 0 or bool(self.store.live_sends(self.platform))

    async def tick(self) -> int:
        """Reconcile in-flight transactions and run a cycle if one is due; how many were broadcast."""
        if not self.has_work():
            return 0
        async with self._lock:
            try:
                if not await self._check_chain():
                    return 0
                await self._reconcile()
                count, earliest_due = self.store.pending_summary(self.platform)
                sent = 0
                if count and self.timer.is_due(self.clock.now(), earliest_due):
                    for attempt in await self._prepare():
                        sent += await self._broadcast(attempt)
                self._clear("rpc")
                return sent
            except (ChainUnavailableError, ChainCallError) as exc:
                self._problem("rpc", str(exc))
                return 0

    async def prepare_cycle(self) -> list[AttemptRow]:
        """Run a cycle now up to storing its signed transactions, without broadcasting them.

        The next :meth:`tick` broadcasts them, exactly as after a crash between the two steps; tests
        and tools use this to see (or simulate) that state.
        """
        async with self._lock:
            return await self._prepare()

    async def _check_chain(self) -> bool:
        if self._chain_checked:
            return True
        chain_id = await self.chain.chain_id()
        if chain_id != self.network.chain_id:
            self._problem(
                "chain",
                f"{self.network.name}: the RPC at {self.chain.rpc_url} serves chain id {chain_id}, "
                f"not {self.network.chain_id}; nothing is sent",
            )
            return False
        self._clear("chain")
        self._chain_checked = True
        return True

    # --- reconciling ------------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        live = self.store.live_sends(self.platform)
        if not live:
            return
        mined_nonce = await self.chain.nonce(self.address, "latest")
        head: int | None = None
        for send in live:
            if send.nonce < mined_nonce:
                head = await self._settle(send, head)
            else:
                self._nonce_taken_since.pop(send.send_id, None)
                await self._keep_alive(send)

    async def _settle(self, send: SendRow, head: int | None) -> int | None:
        """The nonce of ``send`` is spent: find out by which transaction and act on it."""
        receipt = None
        for attempt in reversed(self.store.attempts(send.send_id)):
            receipt = await self.chain.receipt(attempt.tx_hash)
            if receipt is not None:
                break
        now = self.clock.now()
        if receipt is None:
            since = self._nonce_taken_since.setdefault(send.send_id, now)
            timeout = self.network.transaction_timeout
            if (now - since).total_seconds() < timeout:
                self._problem(
                    f"nonce:{send.send_id}",
                    f"{self.network.name}: nonce {send.nonce} was taken by a transaction that is not one of "
                    f"ours; its payments are planned again if that is still so after {timeout:.0f} s",
                )
                return head
            self.store.finish_send(send.send_id, SendState.LOST, tx_hash=None, block=None, at=now)
            self._nonce_taken_since.pop(send.send_id, None)
            self._clear_send(send.send_id)
            log.warning(
                "%s: nonce %d was used by another transaction; the orders of send %d wait for the next cycle",
                self.network.name,
                send.nonce,
                send.send_id,
            )
            return head
        self._nonce_taken_since.pop(send.send_id, None)
        if receipt.status != 1:
            orders = self.store.orders_of_send(send.send_id)
            self.store.finish_send(
                send.send_id, SendState.REVERTED, tx_hash=receipt.tx_hash, block=receipt.block_number, at=now
            )
            self._clear_send(send.send_id)
            self._problem(
                "reverted",
                f"{self.network.name}: {send.kind} transaction {receipt.tx_hash} (nonce {send.nonce}) "
                f"reverted on chain; its {len(orders)} payment(s) wait for the next cycle",
            )
            return head
        if self.network.confirmations:
            if head is None:
                head = await self.chain.block_number()
            if head - receipt.block_number < self.network.confirmations:
                return head
        orders = self.store.orders_of_send(send.send_id)
        self.store.finish_send(
            send.send_id, SendState.CONFIRMED, tx_hash=receipt.tx_hash, block=receipt.block_number, at=now
        )
        self._clear_send(send.send_id)
        self._clear("reverted")
        log.info(
            "%s: %s %s confirmed in block %d (%d gas): orders %s",
            self.network.name,
            send.kind,
            receipt.tx_hash,
            receipt.block_number,
            receipt.gas_used,
            ", ".join(o.order_id for o in orders) or "-",
        )
        return head

    async def _keep_alive(self, send: SendRow) -> None:
        """``send`` is not mined: keep it in the node's pool, replace it when it has waited too long."""
        attempts = self.store.attempts(send.send_id)
        attempt = attempts[-1]
        if attempt.broadcast is None:
            await self._broadcast(attempt)
        elif not await self.chain.knows(attempt.tx_hash):
            log.info(
                "%s: the node does not know %s (nonce %d); broadcasting it again",
                self.network.name,
                attempt.tx_hash,
                send.nonce,
            )
            await self._broadcast(attempt)
        now = self.clock.now()
        if (now - attempt.created).total_seconds() >= self.settings.replacement_timeout:
            await self._replace(send, attempt)
        elif (now - attempts[0].created).total_seconds() >= self.network.transaction_timeout:
            self._problem(
                f"stuck:{send.send_id}",
                f"{self.network.name}: stuck: {send.kind} transaction {attempt.tx_hash} (nonce {send.nonce}) "
                f"unmined for over {self.network.transaction_timeout:.0f} s",
            )

    async def _replace(self, send: SendRow, attempt: AttemptRow) -> None:
        old = Fees(max_fee=attempt.max_fee, priority_fee=attempt.priority_fee)
        head = await self.chain.head()
        waited = self.settings.replacement_timeout
        try:
            fees = replacement_fees(old, head.base_fee, self._priority_fee, self._cap)
        except (FeeCapError, BumpBlockedError) as exc:
            self._problem(
                f"stuck:{send.send_id}",
                f"{self.network.name}: stuck: {send.kind} transaction {attempt.tx_hash} (nonce {send.nonce}) "
                f"unmined for over {waited:.0f} s and cannot be replaced: {exc}",
            )
            return
        raw, tx_hash = self._sign(send.nonce, send.to_address, send.data, send.gas, fees)
        now = self.clock.now()
        with self.store.transaction():
            attempt_id = self.store.insert_attempt(
                send_id=send.send_id,
                tx_hash=tx_hash,
                raw=raw,
                max_fee=fees.max_fee,
                priority_fee=fees.priority_fee,
                created=now,
            )
        log.info(
            "%s: %s (nonce %d) unmined for %.0f s; replacing it with %s (%s, was %s)",
            self.network.name,
            attempt.tx_hash,
            send.nonce,
            (now - attempt.created).total_seconds(),
            tx_hash,
            fees,
            old,
        )
        self._clear(f"stuck:{send.send_id}")
        await self._broadcast(
            AttemptRow(attempt_id, send.send_id, tx_hash, raw, fees.max_fee, fees.priority_fee, now, None)
        )

    async def _broadcast(self, attempt: AttemptRow) -> int:
        """Hand a stored transaction to the node; 1 if it took it (or already had it), else 0."""
        try:
            await self.chain.send_raw(attempt.raw)
        except TxRefusedError as exc:
            # Known: nothing to do. Nonce used: a mined transaction took it; receipts will say which.
            if exc.kind not in (RefusalKind.KNOWN, RefusalKind.NONCE_USED):
                self._problem(
                    f"broadcast:{attempt.send_id}",
                    f"{self.network.name}: the node refused transaction {attempt.tx_hash}: {exc}",
                )
                return 0
        self.store.mark_broadcast(attempt.attempt_id, self.clock.now())
        self._clear(f"broadcast:{attempt.send_id}")
        return 1

    # --- payment cycles ---------------------------------------------------------------------------

    async def _prepare(self) -> list[AttemptRow]:
        now = self.clock.now()
        orders = self.store.pending_orders(self.platform)
        if not orders:
            self.timer.ran(now)
            return []
        entries = sum_per_payee(PendingOrder(o.order_id, o.payee, o.amount_wei, o.due) for o in orders)
        multi = self.network.multi_transfer_address
        plan = plan_cycle(entries, batch_available=multi is not None, max_batch=self.settings.max_batch)
        mined_nonce = await self.chain.nonce(self.address, "latest")
        unmined = [s for s in self.store.live_sends(self.platform) if s.nonce >= mined_nonce]
        retry_at = now + timedelta(seconds=self.settings.retry_interval)
        # Tokens first, for the whole cycle: not even the approval goes out for payments that cannot.
        if not await self._enough_tokens(sum(p.amount_wei for p in plan), unmined):
            self.timer.hold(retry_at)
            return []
        drafts = [self._draft(p) for p in plan]
        approving = False
        if multi is not None and any(p.kind is TxKind.BATCH for p in plan):
            if self.store.live_sends(self.platform, kind=TxKind.APPROVE.value):
                self.timer.hold(now)  # the approval is on its way; the batches follow once it is mined
                return []
            if await self.chain.allowance(self.address, multi) < ALLOWANCE_ENOUGH:
                # The batches cannot even be estimated before the allowance exists: approve now, pay
                # in the cycle right after the approval is mined.
                log.info("%s: approving the batch contract %s once", self.network.name, multi)
                drafts = [_Draft(TxKind.APPROVE, self.network.token_address, approve_call(multi), 0, (), 0)]
                approving = True
        fees = await self._fees_and_gas(drafts, unmined)
        if fees is None:
            self.timer.hold(retry_at)
            return []
        attempts = await self._store_signed(drafts, fees, now)
        if approving:
            self.timer.hold(now)
        else:
            self.timer.ran(now)
        return attempts

    def _draft(self, planned: PlannedTx) -> _Draft:
        multi = self.network.multi_transfer_address
        if planned.kind is TxKind.BATCH and multi is not None:
            to, data = multi, batch_call(planned.entries)
        else:
            to = self.network.token_address
            data = transfer_call(planned.entries[0].payee, planned.amount_wei)
        return _Draft(planned.kind, to, data, planned.amount_wei, planned.order_ids, len(planned.entries))

    async def _store_signed(self, drafts: list[_Draft], fees: Fees, now: datetime) -> list[AttemptRow]:
        """Take nonces, sign, store the raw transactions and assign the orders, all in one transaction."""
        pending_nonce = await self.chain.nonce(self.address, "pending")
        attempts = []
        with self.store.transaction():
            # Our counter is ahead while the node lacks transactions of ours (dropped, or never
            # broadcast before a crash); the node's is ahead if the key also sends elsewhere.
            nonce = max(self.store.next_nonce(self.network.chain_id, self.address), pending_nonce)
            for draft in drafts:
                raw, tx_hash = self._sign(nonce, draft.to, draft.data, draft.gas, fees)
                send_id = self.store.insert_send(
                    platform=self.platform,
                    chain_id=self.network.chain_id,
                    sender=self.address,
                    nonce=nonce,
                    kind=draft.kind.value,
                    to_address=draft.to.lower(),
                    data=draft.data,
                    gas=draft.gas,
                    amount_wei=draft.amount_wei,
                    created=now,
                )
                attempt_id = self.store.insert_attempt(
                    send_id=send_id,
                    tx_hash=tx_hash,
                    raw=raw,
                    max_fee=fees.max_fee,
                    priority_fee=fees.priority_fee,
                    created=now,
                )
                self.store.assign(draft.order_ids, send_id)
                attempts.append(
                    AttemptRow(attempt_id, send_id, tx_hash, raw, fees.max_fee, fees.priority_fee, now, None)
                )
                log.info(
                    "%s: %s %s (nonce %d, %d gas, %s): %s %s to %d payee(s) for orders %s",
                    self.network.name,
                    draft.kind.value,
                    tx_hash,
                    nonce,
                    draft.gas,
                    fees,
                    format_tokens(draft.amount_wei),
                    self.network.token_symbol,
                    draft.payees,
                    ", ".join(draft.order_ids) or "-",
                )
                nonce += 1
            self.store.set_next_nonce(self.network.chain_id, self.address, nonce)
        return attempts

    async def _enough_tokens(self, needed: int, unmined: list[SendRow]) -> bool:
        """Whether the balance, less what unmined sends will move, covers ``needed`` (else a problem)."""
        held = await self.chain.token_balance(self.address)
        have = max(0, held - sum(s.amount_wei for s in unmined))
        if have < needed:
            self._problem(
                "tokens",
                f"{self.network.name}: not enough {self.network.token_symbol}: have {format_tokens(have)}, "
                f"need {format_tokens(needed)}",
            )
            return False
        self._clear("tokens")
        return True

    async def _fees_and_gas(self, drafts: list[_Draft], unmined: list[SendRow]) -> Fees | None:
        """Fees for ``drafts`` and their gas filled in, or ``None`` (with a problem) if they cannot go."""
        name = self.network.name
        head = await self.chain.head()
        try:
            fees = initial_fees(head.base_fee, self._priority_fee, self._cap)
        except FeeCapError as exc:
            self._problem("fee", f"{name}: {exc}; payments wait until it falls")
            return None
        self._clear("fee")
        for draft in drafts:
            try:
                estimate = await self.chain.estimate_gas(self.address, draft.to, draft.data)
            except ChainCallError as exc:
                self._problem(
                    "estimate", f"{name}: the node cannot estimate gas for a {draft.kind.value}: {exc}"
                )
                return None
            draft.gas = estimate + self.settings.gas_margin
        self._clear("estimate")
        gas_needed = sum(d.gas for d in drafts) * fees.max_fee
        # What unmined sends may still burn is spoken for.
        reserved = sum(s.gas * self.store.attempts(s.send_id)[-1].max_fee for s in unmined)
        gas_have = max(0, await self.chain.gas_balance(self.address) - reserved)
        if gas_have < gas_needed:
            self._problem(
                "gas",
                f"{name}: not enough {self.network.gas_coin} for gas: have {format_tokens(gas_have)}, "
                f"need {format_tokens(gas_needed)}",
            )
            return None
        self._clear("gas")
        return fees

    def _sign(self, nonce: int, to: str, data: bytes, gas: int, fees: Fees) -> tuple[bytes, str]:
        signed = self.account.sign_transaction(
            {
                "type": 2,
                "chainId": self.network.chain_id,
                "nonce": nonce,
                "to": to_checksum_address(to),
                "value": 0,
                "data": data,
                "gas": gas,
                "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.priority_fee,
            }
        )
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()
