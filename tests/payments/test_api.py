"""The requestor Payment API through a real server on loopback, driven by yapapi's own client.

``ya_payment`` (ya-aioclient 0.6.4) validates every response against its models, so a call that
succeeds here proves the wire shape is acceptable to yapapi 0.13.1. Provider documents are put in
through the service, as the requestor daemon's relay does when a provider sends them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
import ya_payment
import ya_payment.models as yap
from aiohttp import web
from ya_payment import ApiException, RequestorApi

from market.core.clock import FakeClock
from payments.api import API_PREFIX, COMMITTED_PATH, build_payment_api
from payments.driver import DummyDriver
from payments.models import DocumentStatus
from payments.service import ProviderPayments, RequestorPayments

from .conftest import PLATFORM, REQUESTOR_ID, YAPAPI_BUDGET, issue_debit_note, issue_invoice


@dataclass
class Server:
    url: str
    service: RequestorPayments
    api: RequestorApi
    http: aiohttp.ClientSession


@pytest.fixture
async def server(requestor: RequestorPayments) -> AsyncIterator[Server]:
    root = web.Application()
    root.add_subapp(API_PREFIX, build_payment_api(requestor))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}{API_PREFIX}"
    client = ya_payment.ApiClient(ya_payment.Configuration(host=url))
    try:
        async with aiohttp.ClientSession() as http:
            yield Server(url, requestor, RequestorApi(client), http)
    finally:
        await client.close()
        await runner.cleanup()


def yapapi_allocation(amount: str = YAPAPI_BUDGET, platform: str = PLATFORM) -> yap.Allocation:
    """Built exactly as ``yapapi.rest.payment.Payment.new_allocation`` builds it."""
    now = datetime.now(UTC)
    return yap.Allocation(
        allocation_id="",
        payment_platform=platform,
        address=REQUESTOR_ID,
        total_amount=str(Decimal(amount)),
        timeout=now + timedelta(days=365 * 10),
        timestamp=now,
        make_deposit=False,
        spent_amount="",
        remaining_amount="",
    )


async def test_allocation_lifecycle(server: Server) -> None:
    created = await server.api.create_allocation(yapapi_allocation())
    assert created.allocation_id
    assert created.total_amount == YAPAPI_BUDGET
    assert created.payment_platform == PLATFORM and created.address == REQUESTOR_ID

    fetched = await server.api.get_allocation(created.allocation_id)
    # What yapapi's Allocation.details() does with it.
    assert Decimal(fetched.spent_amount) == 0
    assert Decimal(fetched.remaining_amount) == Decimal(YAPAPI_BUDGET)
    assert fetched.timestamp.tzinfo is not None
    assert [a.allocation_id for a in await server.api.get_allocations()] == [created.allocation_id]

    decoration = await server.api.get_demand_decorations([created.allocation_id])
    assert decoration.constraints == [
        f"(|(golem.com.payment.platform.{PLATFORM}.address=*))",
        "(golem.com.payment.protocol.version>1)",
    ]

    await server.api.release_allocation(created.allocation_id)
    for call in (server.api.get_allocation, server.api.release_allocation):
        with pytest.raises(ApiException) as info:
            await call(created.allocation_id)
        assert info.value.status == 410
    with pytest.raises(ApiException) as info:
        await server.api.get_allocation("unknown")
    assert info.value.status == 404


async def test_allocation_errors_are_problem_json(server: Server, driver: DummyDriver) -> None:
    cases = [
        (yapapi_allocation(platform="erc20-holesky-tglm"), "not available"),
        (yapapi_allocation(amount=str(driver.initial_balance + 1)), "Insufficient funds"),
    ]
    for body, text in cases:
        with pytest.raises(ApiException) as info:
            await server.api.create_allocation(body)
        assert info.value.status == 400
        assert info.value.headers["Content-Type"].startswith("application/problem+json")
        problem = json.loads(info.value.body)
        assert text in problem["detail"] and problem["type"]
    async with server.http.post(f"{server.url}/allocations", data="{not json") as response:
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        assert "malformed JSON" in (await response.json())["detail"]
    assert server.service.allocations() == []


async def test_debit_note_flow_through_yapapis_client(
    server: Server, provider: ProviderPayments, clock: FakeClock
) -> None:
    allocation = await server.api.create_allocation(yapapi_allocation("1"))
    start = clock.now() - timedelta(seconds=1)
    note = issue_debit_note(provider, server.service, "0.0002")

    # yapapi's loop: events after a timestamp, then the note, then accept with the echoed amount.
    events = await server.api.get_debit_note_events(after_timestamp=start)
    [event] = events
    assert isinstance(event, yap.DebitNoteReceivedEvent)
    assert event.debit_note_id == note.debit_note_id
    assert await server.api.get_debit_note_events(after_timestamp=event.event_date, timeout=0) == []

    fetched = await server.api.get_debit_note(event.debit_note_id)
    assert fetched.status == "RECEIVED"
    assert fetched.total_amount_due == "0.0002"
    assert (
        fetched.payer_addr == allocation.address and fetched.payment_platform == allocation.payment_platform
    )
    assert fetched.usage_counter_vector == [1.0, 2.0]
    await server.api.accept_debit_note(
        fetched.debit_note_id,
        yap.Acceptance(
            total_amount_accepted=str(fetched.total_amount_due), allocation_id=allocation.allocation_id
        ),
    )
    # Accepted, and at once paid for by the dummy driver (it confirms while scheduling).
    assert (await server.api.get_debit_note(note.debit_note_id)).status == "SETTLED"
    assert Decimal((await server.api.get_allocation(allocation.allocation_id)).spent_amount) == Decimal(
        "0.0002"
    )
    assert [n.debit_note_id for n in await server.api.get_debit_notes()] == [note.debit_note_id]


async def test_invoice_flow_through_yapapis_client(
    server: Server, provider: ProviderPayments, clock: FakeClock
) -> None:
    allocation = await server.api.create_allocation(yapapi_allocation("1"))
    invoice = issue_invoice(provider, server.service, "0.5")

    [event] = await server.api.get_invoice_events(after_timestamp=clock.now() - timedelta(seconds=1))
    assert isinstance(event, yap.InvoiceReceivedEvent) and event.invoice_id == invoice.invoice_id
    fetched = await server.api.get_invoice(invoice.invoice_id)
    assert fetched.amount == "0.5" and fetched.activity_ids == ["activity-1"]
    assert fetched.payment_due_date is not None

    await server.api.accept_invoice(
        invoice.invoice_id,
        yap.Acceptance(total_amount_accepted="0.50", allocation_id=allocation.allocation_id),
    )
    assert (await server.api.get_invoice(invoice.invoice_id)).status == "SETTLED"
    [payment] = await server.api.get_payments()
    assert payment.amount == "0.5" and payment.details.startswith("dummy:")
    assert payment.agreement_payments[0].agreement_id == invoice.agreement_id
    assert (await server.api.get_payment(payment.payment_id)).payment_id == payment.payment_id

    # Other event types are there for a client that asks for them.
    async with server.http.get(
        f"{server.url}/invoiceEvents",
        params={"timeout": "0"},
        headers={"X-Requestor-Events": "ACCEPTED,SETTLED"},
    ) as response:
        assert [e["eventType"] for e in await response.json()] == [
            "InvoiceAcceptedEvent",
            "InvoiceSettledEvent",
        ]


async def test_overspending_acceptance_is_refused_and_changes_nothing(
    server: Server, provider: ProviderPayments
) -> None:
    allocation = await server.api.create_allocation(yapapi_allocation(YAPAPI_BUDGET))
    invoice = issue_invoice(provider, server.service, "0.2")

    with pytest.raises(ApiException) as info:
        await server.api.accept_invoice(
            invoice.invoice_id,
            yap.Acceptance(total_amount_accepted="0.2", allocation_id=allocation.allocation_id),
        )
    assert info.value.status == 400
    assert "Not enough funds" in json.loads(info.value.body)["message"]
    assert (await server.api.get_invoice(invoice.invoice_id)).status == "RECEIVED"
    assert (await server.api.get_allocation(allocation.allocation_id)).spent_amount == "0"
    assert await server.api.get_payments() == []


async def test_bad_input_gets_a_message_and_changes_nothing(
    server: Server, provider: ProviderPayments
) -> None:
    allocation = await server.api.create_allocation(yapapi_allocation("1"))
    note = issue_debit_note(provider, server.service, "0.1")
    accept_url = f"{server.url}/debitNotes/{note.debit_note_id}/accept"

    bad_requests = [
        ("POST", accept_url, "{nope", 400, "malformed JSON"),
        ("POST", accept_url, json.dumps({"totalAmountAccepted": "0.1"}), 400, "allocationId"),
        (
            "POST",
            accept_url,
            json.dumps({"totalAmountAccepted": "0.1", "allocationId": allocation.allocation_id, "extra": 1}),
            400,
            "extra",
        ),
        (
            "POST",
            accept_url,
            json.dumps({"totalAmountAccepted": "0.2", "allocationId": allocation.allocation_id}),
            400,
            "Invalid amount",
        ),
        (
            "POST",
            f"{server.url}/debitNotes/unknown/accept",
            json.dumps({"totalAmountAccepted": "0.1", "allocationId": allocation.allocation_id}),
            404,
            "not found",
        ),
        ("GET", f"{server.url}/debitNotes/unknown", None, 404, "not found"),
        ("GET", f"{server.url}/invoices/unknown", None, 404, "not found"),
        ("GET", f"{server.url}/debitNoteEvents?afterTimestamp=2026-01-01T00:00:00", None, 400, "timezone"),
        ("GET", f"{server.url}/debitNoteEvents?maxEvents=0", None, 400, "maxEvents"),
        ("GET", f"{server.url}/debitNoteEvents?timeout=-1", None, 400, "timeout"),
        ("GET", f"{server.url}/nothing-here", None, 404, "Not Found"),
        (
            "POST",
            f"{server.url}/debitNotes/{note.debit_note_id}/reject",
            json.dumps({"rejectionReason": "BAD_SERVICE", "totalAmountAccepted": "0"}),
            501,
            "not implemented",
        ),
    ]
    for method, url, body, status, text in bad_requests:
        async with server.http.request(method, url, data=body) as response:
            assert response.status == status, (method, url, await response.text())
            assert response.content_type == "application/json"
            assert text in (await response.json())["message"], (url, text)

    assert server.service.debit_note(note.debit_note_id).status is DocumentStatus.RECEIVED
    assert server.service.allocation(allocation.allocation_id).spent == 0


async def test_yagna_style_timestamps_are_accepted(server: Server, provider: ProviderPayments) -> None:
    issue_debit_note(provider, server.service, "0.1")
    for stamp in ("2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.943176+00:00"):
        async with server.http.get(
            f"{server.url}/debitNoteEvents", params={"afterTimestamp": stamp, "timeout": "0"}
        ) as response:
            assert response.status == 200
            [event] = await response.json()
            assert event["eventDate"].endswith("Z")


async def test_reject_invoice(server: Server, provider: ProviderPayments) -> None:
    invoice = issue_invoice(provider, server.service, "0.5")
    await server.api.reject_invoice(
        invoice.invoice_id,
        yap.Rejection(rejection_reason="BAD_SERVICE", total_amount_accepted="0", message="no output"),
    )
    assert (await server.api.get_invoice(invoice.invoice_id)).status == "REJECTED"


async def test_served_document_is_the_committed_one(server: Server) -> None:
    async with server.http.get(f"{server.url}/openapi.json") as response:
        assert response.status == 200
        assert await response.text() == COMMITTED_PATH.read_text(encoding="utf-8")
