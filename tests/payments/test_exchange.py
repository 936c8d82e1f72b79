"""Payment messages between two real nodes over a real market node's relay: documents go one way,
acceptances and signed payment confirmations the other; a confirmation not signed by its payer is
refused and settles nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from market.client import RelayRouter
from market.client.relay import RelayRpcError
from market.core.identity import Identity
from payments.documents import DocumentKind
from payments.driver import DummyDriver
from payments.exchange import METHOD, PaymentExchange, canonical
from payments.models import Acceptance, DocumentStatus
from payments.service import AgreementTerms, ProviderPayments, RequestorPayments
from payments.store import PaymentStore
from tests.integration.conftest import ClientFactory, connect, market_node  # noqa: F401
from tests.payments.conftest import PLATFORM, new_allocation


@dataclass
class Pair:
    requestor_id: Identity
    requestor: RequestorPayments
    requestor_router: RelayRouter
    provider: ProviderPayments
    provider_exchange: PaymentExchange
    terms: AgreementTerms


@pytest.fixture
async def pair(connect: ClientFactory, tmp_path: Path) -> AsyncIterator[Pair]:  # noqa: F811
    req_identity, prov_identity = Identity.generate(), Identity.generate()
    req_router = RelayRouter(await connect("requestor", req_identity))
    prov_router = RelayRouter(await connect("provider", prov_identity))
    requestor = RequestorPayments(
        PaymentStore.open(tmp_path / "r.db"),
        [DummyDriver(platform_names=(PLATFORM,))],
        identity=req_identity.node_id,
        default_platform=PLATFORM,
    )
    provider = ProviderPayments(
        PaymentStore.open(tmp_path / "p.db"),
        identity=prov_identity.node_id,
        drivers=[DummyDriver(platform_names=(PLATFORM,), trust_remote_claims=True)],
    )
    # The requestor's exchange does not run here: the test sends its messages by hand.
    req_exchange = PaymentExchange(req_router, requestor)
    prov_exchange = PaymentExchange(prov_router, provider)
    req_exchange.register()
    prov_exchange.register()
    await req_router.start()
    await prov_router.start()
    terms = AgreementTerms(
        agreement_id="agreement-x",
        requestor_id=req_identity.node_id,
        provider_id=prov_identity.node_id,
        payer_addr=req_identity.node_id,
        payee_addr=prov_identity.node_id,
        platform=PLATFORM,
    )
    yield Pair(req_identity, requestor, req_router, provider, prov_exchange, terms)
    await req_router.close()
    await prov_router.close()
    requestor.store.close()
    provider.store.close()


async def test_signed_confirmation_settles_and_forgeries_change_nothing(pair: Pair) -> None:
    requestor, provider = pair.requestor, pair.provider
    invoice = provider.issue_invoice(
        pair.terms, [], Decimal("0.5"), payment_due_date=provider.clock.now() + timedelta(hours=1)
    )
    assert await pair.provider_exchange.deliver_pending() == 1
    allocation = await requestor.create_allocation(new_allocation("1").model_copy(update={"address": None}))
    await requestor.accept_invoice(
        invoice.invoice_id,
        Acceptance(total_amount_accepted=Decimal("0.5"), allocation_id=allocation.allocation_id),
    )
    outbox = {kind: (document_id, body) for _, kind, document_id, body in requestor.undelivered()}
    assert set(outbox) == {"InvoiceAccepted", "Payment"}
    provider_id = pair.terms.provider_id
    accepted_id, accepted = outbox["InvoiceAccepted"]
    await pair.requestor_router.call(
        provider_id, METHOD, {"kind": "InvoiceAccepted", "documentId": accepted_id, "body": accepted}
    )
    payment_id, body = outbox["Payment"]

    async def send(**extra: object) -> None:
        params = {"kind": "Payment", "documentId": payment_id, "body": body, **extra}
        await pair.requestor_router.call(provider_id, METHOD, params)

    with pytest.raises(RelayRpcError, match="not signed by its payer"):
        await send()
    with pytest.raises(RelayRpcError, match="bad payer signature"):
        await send(signature=Identity.generate().sign_text(canonical(body)))
    tampered = dict(body, amount="5")
    with pytest.raises(RelayRpcError, match="bad payer signature"):
        await send(signature=pair.requestor_id.sign_text(canonical(tampered)))
    with pytest.raises(RelayRpcError, match="malformed signature"):
        await send(signature="0x1234")
    assert provider.invoice(invoice.invoice_id).status is DocumentStatus.ACCEPTED
    assert provider.payments() == []

    await send(signature=pair.requestor_id.sign_text(canonical(body)))
    assert provider.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
    assert [p.payment_id for p in provider.payments()] == [payment_id]
    assert provider.store.document("provider", DocumentKind.INVOICE.value, invoice.invoice_id) is not None
