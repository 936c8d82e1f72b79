"""A provider checks every payment confirmation against a real chain (anvil) before it settles
anything: a confirmation naming a transaction that does not exist, that paid someone else, that
moved too little, or that another confirmation already claimed is rejected with the reason, and
nothing is marked settled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from market.core.identity import Identity
from payments import devchain
from payments.contracts import load
from payments.devchain import ChainInfo
from payments.documents import DocumentKind
from payments.errors import PaymentRejectedError
from payments.factory import make_drivers
from payments.models import Acceptance, AgreementPayment, DocumentStatus, Invoice, Payment
from payments.service import AgreementTerms, ProviderPayments
from payments.store import PaymentStore

PLATFORM = "erc20-holesky-tglm"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    folder = tmp_path_factory.mktemp("chain")
    info = devchain.start(folder)
    try:
        yield info
    finally:
        devchain.stop(folder)


@pytest.fixture
async def provider(chain: ChainInfo, tmp_path: Path) -> AsyncIterator[ProviderPayments]:
    drivers = make_drivers([PLATFORM], data_dir=tmp_path, identity=None, env=chain.env())
    for driver in drivers:
        await driver.start()
    side = ProviderPayments(
        PaymentStore.open(tmp_path / "p.db"), identity=Identity.generate().node_id, drivers=drivers
    )
    yield side
    for driver in drivers:
        await driver.close()
    side.store.close()


def pay(chain: ChainInfo, key: str, to: str, amount: Decimal) -> str:
    """A real ERC-20 transfer signed by ``key``; its transaction hash."""
    w3 = devchain.connect(chain.rpc_url)
    token = w3.eth.contract(address=w3.to_checksum_address(chain.token), abi=load("TestGLM").abi)
    sender = Account.from_key(key).address
    tx = token.functions.transfer(w3.to_checksum_address(to), int(amount * 10**18)).build_transaction(
        {"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending")}
    )
    tx_hash = w3.eth.send_raw_transaction(Account.from_key(key).sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.02)["status"] == 1
    return tx_hash.to_0x_hex()


def accepted_invoice(provider: ProviderPayments, payer: str, agreement: str, amount: str) -> Invoice:
    terms = AgreementTerms(
        agreement_id=agreement,
        requestor_id=payer,
        provider_id=provider.identity,
        payer_addr=payer,
        payee_addr=provider.identity,
        platform=PLATFORM,
    )
    invoice = provider.issue_invoice(
        terms, [], Decimal(amount), payment_due_date=datetime.now(UTC) + timedelta(hours=1)
    )
    provider.mark_sent(DocumentKind.INVOICE, invoice.invoice_id)
    provider.record_acceptance(
        DocumentKind.INVOICE,
        invoice.invoice_id,
        Acceptance(total_amount_accepted=Decimal(amount), allocation_id="a"),
    )
    return invoice


def confirmation(
    provider: ProviderPayments, payer: str, agreement: str, amount: str, tx: str, pid: str
) -> Payment:
    return Payment(
        payment_id=pid,
        payer_id=payer,
        payee_id=provider.identity,
        payer_addr=payer,
        payee_addr=provider.identity,
        payment_platform=PLATFORM,
        amount=Decimal(amount),
        timestamp=datetime.now(UTC),
        agreement_payments=[AgreementPayment(agreement_id=agreement, amount=Decimal(amount))],
        activity_payments=[],
        details=tx,
    )


async def test_forged_confirmations_are_rejected_and_settle_nothing(
    chain: ChainInfo, provider: ProviderPayments
) -> None:
    payer = Account.create()
    key = payer.key.to_0x_hex()
    devchain.fund(chain, key)
    payer_id = payer.address.lower()
    invoice = accepted_invoice(provider, payer_id, "agreement-1", "0.5")
    real = pay(chain, key, provider.identity, Decimal("0.5"))
    to_someone_else = pay(chain, key, Account.create().address, Decimal("0.5"))
    too_small = pay(chain, key, provider.identity, Decimal("0.3"))

    forgeries = {
        "no such transaction": "0x" + "ab" * 32,
        "not a transaction hash": "dummy:123",
        "paid someone else": to_someone_else,
        "moved too little": too_small,
    }
    for reason, tx in forgeries.items():
        with pytest.raises(PaymentRejectedError):
            await provider.record_payment(
                confirmation(provider, payer_id, "agreement-1", "0.5", tx, f"forged-{len(reason)}")
            )
        assert provider.invoice(invoice.invoice_id).status is DocumentStatus.ACCEPTED, reason
        assert provider.payments() == [], reason

    # The real transfer settles the invoice ...
    settled = await provider.record_payment(
        confirmation(provider, payer_id, "agreement-1", "0.5", real, "real")
    )
    assert settled == [invoice.invoice_id]
    # ... and cannot be claimed a second time for another invoice of the same parties.
    second = accepted_invoice(provider, payer_id, "agreement-2", "0.5")
    with pytest.raises(PaymentRejectedError):
        await provider.record_payment(confirmation(provider, payer_id, "agreement-2", "0.5", real, "again"))
    assert provider.invoice(second.invoice_id).status is DocumentStatus.ACCEPTED
    assert [p.payment_id for p in provider.payments()] == ["real"]
