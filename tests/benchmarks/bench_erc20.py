"""The ERC-20 driver on anvil: gas per payment, sustained payments per second, and latency.

* **Gas per payment** for cycles paying 1, 10 and 50 payees in one transaction (a plain ``transfer``
  for 1, the batch contract otherwise), to new holders (their balance slot goes from zero) and then
  again to the same, now existing, holders. Baseline: the single ``transfer`` of the same run.
* **Sustained payments per second** through the driver: orders to many payees scheduled as fast as
  one coroutine can, cycles every 0.5 s, automine; from the first order to the last confirmation.
* **Latency** from ``schedule_payment`` (order due now) to the confirmation listener, and from
  ``accept_invoice`` on the requestor to the invoice settled on the provider (payment verified on
  chain), with automine and with 2 s blocks.

    .venv/bin/python tests/benchmarks/bench_erc20.py [--orders 500] [--payees 50] [--samples 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

from market.core.clock import FakeClock  # noqa: E402
from payments import devchain  # noqa: E402
from payments.devchain import ChainInfo  # noqa: E402
from payments.documents import DocumentKind  # noqa: E402
from payments.erc20 import Erc20Driver, SenderSettings  # noqa: E402
from payments.models import Acceptance, NewAllocation, Payment  # noqa: E402
from payments.networks import network  # noqa: E402
from payments.service import AgreementTerms, ProviderPayments, RequestorPayments  # noqa: E402
from payments.store import PaymentStore  # noqa: E402


@asynccontextmanager
async def local_chain(folder: Path, block_time: float | None = None) -> AsyncIterator[ChainInfo]:
    info = devchain.start(folder, block_time=block_time)
    try:
        yield info
    finally:
        devchain.stop(folder)


def funded(info: ChainInfo) -> LocalAccount:
    account: LocalAccount = Account.create()
    devchain.fund(info, account.key.hex())
    return account


class Waiter:
    """A listener that timestamps each confirmation."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.hashes: dict[str, str] = {}

    async def __call__(self, order_id: str, details: str) -> None:
        self.at.setdefault(order_id, time.perf_counter())
        self.hashes[order_id] = details

    async def until(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while len(self.at) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(self.at)} of {count} confirmations")
            await asyncio.sleep(0.002)


# --- gas ------------------------------------------------------------------------------------------


async def gas_per_payment(info: ChainInfo, folder: Path, payees: int) -> tuple[float, float]:
    """Gas per payment of one cycle paying ``payees`` new holders, then the same holders again."""
    net = network("holesky", info.env())
    payer = funded(info)
    clock = FakeClock()
    driver = Erc20Driver(
        database=folder / f"gas-{payees}.db",
        networks=[net],
        account=payer,
        clock=clock,
        settings=SenderSettings(max_batch=max(payees, 2), poll_interval=0.01),
    )
    waiter = Waiter()
    driver.add_listener(waiter)
    w3 = devchain.connect(info.rpc_url)
    addresses = [Account.create().address for _ in range(payees)]
    result = []
    for round_ in range(2):
        for i, payee in enumerate(addresses):
            await driver.schedule_payment(
                payer=payer.address,
                payee=payee,
                amount=Decimal("0.001"),
                platform=net.platform,
                document_ids=[],
                order_id=f"{round_}-{i}",
            )
        clock.advance(60)
        while len(waiter.at) < payees * (round_ + 1):
            await driver.tick()
        hashes = {waiter.hashes[f"{round_}-{i}"] for i in range(payees)}
        assert len(hashes) == 1, hashes
        receipt = w3.eth.get_transaction_receipt(hashes.pop())  # type: ignore[arg-type]
        result.append(receipt["gasUsed"] / payees)
    await driver.close()
    return result[0], result[1]


# --- throughput -----------------------------------------------------------------------------------


async def throughput(info: ChainInfo, folder: Path, orders: int, payees: int) -> dict[str, float]:
    net = network("holesky", info.env())
    payer = funded(info)
    driver = Erc20Driver(
        database=folder / "throughput.db",
        networks=[net],
        account=payer,
        settings=SenderSettings(cycle_interval=0.5, poll_interval=0.02),
    )
    waiter = Waiter()
    driver.add_listener(waiter)
    await driver.start()
    addresses = [Account.create().address for _ in range(payees)]
    w3 = devchain.connect(info.rpc_url)
    nonce_before = w3.eth.get_transaction_count(payer.address)
    start = time.perf_counter()
    for i in range(orders):
        await driver.schedule_payment(
            payer=payer.address,
            payee=addresses[i % payees],
            amount=Decimal("0.0001"),
            platform=net.platform,
            document_ids=[f"doc-{i}"],
            order_id=f"order-{i}",
        )
    scheduled = time.perf_counter() - start
    await waiter.until(orders)
    total = max(waiter.at.values()) - start
    transactions = w3.eth.get_transaction_count(payer.address) - nonce_before
    await driver.close()
    return {
        "schedule": orders / scheduled,
        "end_to_end": orders / total,
        "seconds": total,
        "txs": transactions,
    }


# --- latency --------------------------------------------------------------------------------------


async def between_samples(info: ChainInfo) -> None:
    """With interval mining, start each sample at a random point of a block interval, not right after
    the block that ended the previous one (which would always wait a whole interval)."""
    if info.block_time:
        await asyncio.sleep(random.uniform(0, info.block_time))


async def schedule_latency(info: ChainInfo, folder: Path, samples: int) -> list[float]:
    """Seconds from scheduling an order due now to its confirmation listener."""
    net = network("holesky", info.env())
    payer = funded(info)
    driver = Erc20Driver(database=folder / "latency.db", networks=[net], account=payer)
    waiter = Waiter()
    driver.add_listener(waiter)
    await driver.start()
    payee = Account.create().address
    times = []
    for i in range(samples):
        await between_samples(info)
        start = time.perf_counter()
        await driver.schedule_payment(
            payer=payer.address,
            payee=payee,
            amount=Decimal("0.01"),
            platform=net.platform,
            document_ids=[],
            order_id=f"latency-{i}",
            due=datetime.now(UTC),
        )
        await waiter.until(i + 1)
        times.append(waiter.at[f"latency-{i}"] - start)
    await driver.close()
    return times


async def settle_latency(info: ChainInfo, folder: Path, samples: int) -> list[float]:
    """Seconds from accepting an invoice (due in 20 s) to the invoice settled on the provider."""
    net = network("holesky", info.env())
    payer = funded(info)
    provider_account = Account.create()
    requestor_driver = Erc20Driver(database=folder / "settle-r.db", networks=[net], account=payer)
    provider_driver = Erc20Driver(database=folder / "settle-p.db", networks=[net], account=None)
    requestor = RequestorPayments(
        PaymentStore.open(folder / "requestor.db"), [requestor_driver], identity=payer.address
    )
    provider = ProviderPayments(
        PaymentStore.open(folder / "provider.db"),
        identity=provider_account.address,
        drivers=[provider_driver],
    )
    await requestor_driver.start()
    allocation = await requestor.create_allocation(
        NewAllocation(address=payer.address, payment_platform=net.platform, total_amount=Decimal(100))
    )
    times = []
    for i in range(samples):
        terms = AgreementTerms(
            agreement_id=f"agreement-{i}",
            requestor_id=payer.address,
            provider_id=provider_account.address,
            payer_addr=payer.address,
            payee_addr=provider_account.address,
            platform=net.platform,
        )
        invoice = provider.issue_invoice(
            terms,
            [f"activity-{i}"],
            Decimal("0.5"),
            payment_due_date=datetime.now(UTC) + timedelta(seconds=20),
        )
        requestor.receive_invoice(invoice)
        provider.mark_sent(DocumentKind.INVOICE, invoice.invoice_id)
        await between_samples(info)
        start = time.perf_counter()
        acceptance = Acceptance(total_amount_accepted=Decimal("0.5"), allocation_id=allocation.allocation_id)
        await requestor.accept_invoice(invoice.invoice_id, acceptance)
        settled: list[str] = []
        while invoice.invoice_id not in settled:
            for seq, kind, document_id, body in requestor.undelivered():
                if kind == "InvoiceAccepted":
                    provider.record_acceptance(
                        DocumentKind.INVOICE, document_id, Acceptance.model_validate(body)
                    )
                elif kind == "Payment":
                    settled += await provider.record_payment(Payment.model_validate(body))
                requestor.mark_delivered(seq)
            await asyncio.sleep(0.002)
        times.append(time.perf_counter() - start)
    await requestor_driver.close()
    await provider_driver.close()
    requestor.store.close()
    provider.store.close()
    return times


def describe(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms   (n={len(ordered)})"
    )


async def main(orders: int, payees: int, samples: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with local_chain(root / "automine") as info:
            gas = {n: await gas_per_payment(info, root, n) for n in (1, 10, 50)}
            flow = await throughput(info, root, orders, payees)
            schedule_auto = await schedule_latency(info, root / "auto", samples)
            settle_auto = await settle_latency(info, root / "auto", samples)
        async with local_chain(root / "blocks", block_time=2) as info:
            few = max(5, samples // 2)
            schedule_blocks = await schedule_latency(info, root / "blocks", few)
            settle_blocks = await settle_latency(info, root / "blocks", few)

    base_new, base_existing = gas[1]
    print("ERC-20 driver on anvil 1.7.1 (chain id 17000, our TestGLM + MultiTransfer contracts)")
    print()
    print("gas per payment          new holders        existing holders")
    for n, (new, existing) in gas.items():
        what = "transfer" if n == 1 else "batch"
        print(
            f"  {n:3d} payee(s), {what:8s} {new:8.0f} ({new / base_new:4.2f}x)  "
            f"{existing:8.0f} ({existing / base_existing:4.2f}x)"
        )
    print("  (ratios against the single transfer of the same run)")
    print()
    print(f"throughput: {orders} orders to {payees} payees, cycles every 0.5 s, max 10 payees per batch")
    print(f"  scheduling       {flow['schedule']:8.0f} orders/s")
    print(
        f"  end to end       {flow['end_to_end']:8.0f} payments/s  "
        f"({flow['seconds']:.2f} s, {flow['txs']:.0f} transactions)"
    )
    print()
    print("latency                                    automine                                 2 s blocks")
    print(f"  schedule -> confirmed    {describe(schedule_auto)}   {describe(schedule_blocks)}")
    print(f"  accepted -> settled      {describe(settle_auto)}   {describe(settle_blocks)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--payees", type=int, default=50)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.payees, args.samples))
