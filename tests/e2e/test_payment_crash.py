"""Nothing owed is lost and nothing is paid twice when the requestor daemon is killed (SIGKILL):
once after it accepted an invoice but before the payment went out, once while the payment's
transaction was pending. After a restart every obligation is paid exactly once, on a real chain."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from blueprints.localnet import (
    Network,
    invoices,
    kill,
    local_network,
    provider_payments,
    restart,
    run_script,
    wait_settled,
)
from payments import devchain
from payments.devchain import ChainInfo
from tests.e2e.conftest import assert_paid_on_chain

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "hello.py"


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[ChainInfo]:
    """A chain of this test's own: the test switches mining off and drops pooled transactions."""
    info = devchain.start(tmp_path / "chain")
    try:
        yield info
    finally:
        devchain.stop(tmp_path / "chain")


async def run_hello(net: Network, busybox: object) -> dict[str, object]:
    digest = busybox.sha3_224  # type: ignore[attr-defined]
    code, text = await run_script(net, HELLO, "--image-hash", digest, "--image-url", net.image_url)
    assert code == 0, text + net.logs()
    [invoice] = await invoices(net)
    assert invoice["status"] == "ACCEPTED", invoice
    return invoice


def paid_once(net: Network, invoice: dict[str, object]) -> None:
    """One transfer on chain for the invoice's amount, and the provider recorded exactly that much."""
    assert net.chain is not None
    moved = devchain.token_transfers(net.chain, sender=net.requestor_id)
    assert [t.amount for t in moved] == [Decimal(str(invoice["amount"]))], moved
    recorded = provider_payments(net, 1)
    assert sum(Decimal(str(p["amount"])) for p in recorded) == Decimal(str(invoice["amount"])), recorded


@pytest.mark.timeout(240)
async def test_killed_after_accepting_pays_once_after_restart(
    tmp_path: Path, busybox: object, own_chain: ChainInfo
) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    # A payment cycle of an hour: the accepted invoice is owed, and nothing is sent before the kill.
    slow = {"GOLEM_PAYMENT_CYCLE_SECS": "3600"}
    async with local_network(tmp_path, image, chain=own_chain, requestor_env=slow) as net:
        invoice = await run_hello(net, busybox)
        assert devchain.token_transfers(own_chain, sender=net.requestor_id) == []
        await kill(net, "requestor")

        await restart(net, "requestor", GOLEM_PAYMENT_CYCLE_SECS="1")
        assert_paid_on_chain(net, await wait_settled(net, providers=1))
        paid_once(net, invoice)

        # Killed and restarted again: nothing more goes out.
        await kill(net, "requestor")
        await restart(net, "requestor", GOLEM_PAYMENT_CYCLE_SECS="1")
        await asyncio.sleep(3)
        paid_once(net, invoice)


@pytest.mark.timeout(240)
async def test_killed_while_the_transaction_is_pending_pays_once_after_restart(
    tmp_path: Path, busybox: object, own_chain: ChainInfo
) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    w3 = devchain.connect(own_chain.rpc_url)
    async with local_network(tmp_path, image, chain=own_chain) as net:
        payer = w3.to_checksum_address(net.requestor_id)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            invoice = await run_hello(net, busybox)
            async with asyncio.timeout(30):  # the daemon signs and sends; nothing is mined
                while w3.eth.get_transaction_count(payer, "pending") == w3.eth.get_transaction_count(payer):
                    await asyncio.sleep(0.2)
            await kill(net, "requestor")
            # The node forgets the pending transaction too (as a restarted node or an evicted pool
            # would): only the signed copy the daemon stored before sending can bring it back.
            w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
        finally:
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        assert devchain.token_transfers(own_chain, sender=net.requestor_id) == []

        await restart(net, "requestor")
        assert_paid_on_chain(net, await wait_settled(net, providers=1))
        paid_once(net, invoice)
