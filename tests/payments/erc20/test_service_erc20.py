"""Tutorial: the payment services on both sides, paying and verifying through the ERC-20 driver on anvil.

This is how the daemons wire it. The requestor's service gets an :class:`Erc20Driver` with the
paying key; the provider's gets one with no key (it only reads the chain). Documents and messages
are handed across by hand here, where the daemons' relay would carry them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from payments.devchain import ChainInfo
from payments.documents import DocumentKind
from payments.errors import InsufficientFundsError, PaymentRejectedError
from payments.models import Acceptance, DocumentStatus, NewAllocation, Payment
from payments.networks import Network
from payments.service import AgreementTerms, ProviderPayments, RequestorPayments
from payments.store import PaymentStore

from .conftest import WEI, DriverFactory, token_wei, wait_for


async def test_an_accepted_invoice_is_paid_on_chain_and_settled_on_the_provider(
    tmp_path: Path,
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    provider_account = Account.create()
    platform = holesky.platform  # "erc20-holesky-tglm", pointed at anvil by the chain's environment

    # 1. Each side: its payment store, its driver, its service. The requestor's identity is the
    #    address that pays; the driver calls the service back when a payment is confirmed.
    requestor_driver = await make_driver(
        "requestor-erc20"
    )  # default settings: 60 s cycles, pay 30 s before due
    provider_driver = await make_driver("provider-erc20", account=None)
    requestor = RequestorPayments(
        PaymentStore.open(tmp_path / "requestor.db"),
        [requestor_driver],
        identity=payer.address,
        default_platform=platform,
    )
    provider = ProviderPayments(
        PaymentStore.open(tmp_path / "provider.db"),
        identity=provider_account.address,
        drivers=[provider_driver],
    )

    # 2. The requestor sets a budget aside: checked against its on-chain tGLM balance (1000).
    with pytest.raises(InsufficientFundsError):
        await requestor.create_allocation(
            NewAllocation(address=payer.address, payment_platform=platform, total_amount=Decimal(1001))
        )
    allocation = await requestor.create_allocation(
        NewAllocation(address=payer.address, payment_platform=platform, total_amount=Decimal(10))
    )

    # 3. The provider invoices an agreement, due in 20 s; the relay delivers it.
    terms = AgreementTerms(
        agreement_id="agreement-1",
        requestor_id=payer.address,
        provider_id=provider_account.address,
        payer_addr=payer.address,
        payee_addr=provider_account.address,
        platform=platform,
    )
    invoice = provider.issue_invoice(
        terms, ["activity-1"], Decimal("1.25"), payment_due_date=provider.clock.now() + timedelta(seconds=20)
    )
    requestor.receive_invoice(invoice)
    provider.mark_sent(DocumentKind.INVOICE, invoice.invoice_id)

    # 4. Accepting it orders the payment. The due date is within the driver's 30 s margin, so the
    #    cycle runs at once: one transfer on chain, confirmed, then the service queues the Payment.
    await requestor.accept_invoice(
        invoice.invoice_id,
        Acceptance(total_amount_accepted=Decimal("1.25"), allocation_id=allocation.allocation_id),
    )
    await wait_for(
        lambda: any(kind == "Payment" for _, kind, _, _ in requestor.undelivered()), what="the payment"
    )
    assert requestor.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
    assert token_wei(w3, chain, provider_account.address) == 125 * WEI // 100

    # 5. The relay carries the acceptance and the payment; the provider checks the transaction on
    #    chain before it settles the invoice.
    settled: list[str] = []
    for seq, kind, document_id, body in requestor.undelivered():
        if kind == "InvoiceAccepted":
            provider.record_acceptance(DocumentKind.INVOICE, document_id, Acceptance.model_validate(body))
        elif kind == "Payment":
            payment = Payment.model_validate(body)
            assert payment.details.startswith("0x") and len(payment.details) == 66
            settled += await provider.record_payment(payment)
        requestor.mark_delivered(seq)
    assert settled == [invoice.invoice_id]
    assert provider.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED

    # The same transfer claimed again under another payment id is refused: it is already spoken for.
    replay = payment.model_copy(update={"payment_id": "replayed"})
    with pytest.raises(PaymentRejectedError, match=r"moved 1\.25 tGLM .* less than the 2\.50 claimed"):
        await provider.record_payment(replay)
    requestor.store.close()
    provider.store.close()
