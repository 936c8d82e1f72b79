"""yapapi's own payment wrapper (``yapapi.rest.payment.Payment``) against our Payment API.

The same code paths a yapapi 0.13.1 run takes: the allocation context manager, the invoice and
debit-note event loops (which start from the client's "now" and page by ``eventDate``), accept with
the echoed amount, ``Allocation.details()`` and the release at exit. The service runs on the real
clock here, because yapapi's loops compare our event dates with its own wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import ya_payment
from aiohttp import web
from yapapi.rest.payment import Payment as YapapiPayment

from market.core.clock import SystemClock
from payments.api import API_PREFIX, build_payment_api
from payments.driver import DummyDriver
from payments.models import DocumentStatus
from payments.service import ProviderPayments, RequestorPayments
from payments.store import PaymentStore

from .conftest import PLATFORM, PROVIDER_ID, REQUESTOR_ID, YAPAPI_BUDGET, issue_debit_note, issue_invoice


@pytest.fixture
async def sides(tmp_path: Path) -> AsyncIterator[tuple[RequestorPayments, ProviderPayments, YapapiPayment]]:
    clock = SystemClock()
    driver = DummyDriver(clock=clock)
    requestor = RequestorPayments(
        PaymentStore.open(tmp_path / "r.db"), [driver], identity=REQUESTOR_ID, clock=clock
    )
    provider = ProviderPayments(PaymentStore.open(tmp_path / "p.db"), identity=PROVIDER_ID, clock=clock)
    root = web.Application()
    root.add_subapp(API_PREFIX, build_payment_api(requestor))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{API_PREFIX}"
    client = ya_payment.ApiClient(ya_payment.Configuration(host=url))  # type: ignore[attr-defined]
    try:
        yield requestor, provider, YapapiPayment(client)
    finally:
        await client.close()
        await runner.cleanup()
        requestor.store.close()
        provider.store.close()


async def test_a_yapapi_payment_session(
    sides: tuple[RequestorPayments, ProviderPayments, YapapiPayment],
) -> None:
    requestor, provider, payment = sides
    async with payment.new_allocation(
        amount=Decimal(YAPAPI_BUDGET), payment_platform=PLATFORM, payment_address=REQUESTOR_ID
    ) as allocation:
        debit_note_ids = payment.incoming_debit_note_ids()
        invoices = payment.incoming_invoices()
        await asyncio.sleep(0.01)  # yapapi's loops start from "now"; the documents come later

        note = issue_debit_note(provider, requestor, "0.02")
        assert await asyncio.wait_for(debit_note_ids.__anext__(), 10) == note.debit_note_id
        debit_note = await payment.debit_note(note.debit_note_id)
        await debit_note.accept(amount=debit_note.total_amount_due, allocation=allocation)

        invoice_sent = issue_invoice(provider, requestor, "0.05")
        invoice = await asyncio.wait_for(invoices.__anext__(), 10)
        assert invoice.invoice_id == invoice_sent.invoice_id
        await invoice.accept(amount=invoice.amount, allocation=allocation)

        details = await allocation.details()
        assert details.spent_amount == Decimal("0.05")
        # Exact: the default 28-digit context would have rounded this remainder.
        assert details.remaining_amount == Decimal(
            "0.0500000000000000055511151231257827021181583404541015625"
        )
        listed = [a.id async for a in payment.allocations()]
        assert listed == [allocation.id]
        await debit_note_ids.aclose()  # type: ignore[attr-defined]
        await invoices.aclose()  # type: ignore[attr-defined]

    assert requestor.allocations() == []  # released by the context manager
    assert requestor.invoice(invoice.invoice_id).status is DocumentStatus.SETTLED
