"""What a provider operator sees: the status API's activities and ``golem provider status`` rendering
a real provider's agreements, activities, documents and earnings (real market node, real provider
stack with wasmtime exe units, real requestor daemon, dummy payments)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from provider.cli import fetch_status, render_status
from tests.daemons.conftest import HELLO, PLATFORM, RequestorRest, StartProvider, eventually

SUCCESS = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}


def _row(frame: str, *cells: str) -> str:
    """The one line of ``frame`` holding every cell."""
    (line,) = [line for line in frame.splitlines() if all(cell in line for cell in cells)]
    return line


async def test_status_follows_an_agreement_from_work_to_payment(
    start_provider: StartProvider, requestor: RequestorRest, package: str
) -> None:
    provider = await start_provider()
    url = provider.daemon.status_url
    assert url is not None
    agreement_id = await requestor.agree(package)
    activity_id = await requestor.create_activity(agreement_id)
    await requestor.run(activity_id, HELLO)

    # While it runs: the activity is live (no final usage yet), the agreement Approved.
    (live,) = await provider.status("/activities")
    assert (live["activityId"], live["agreementId"], live["state"]) == (activity_id, agreement_id, "Ready")
    assert live["durationSec"] > 0 and (live["cpuSec"], live["cost"], live["endedAt"]) == (None, None, None)
    assert await provider.status("/activities", agreementId="elsewhere") == []
    frame = render_status(await asyncio.to_thread(fetch_status, url), datetime.now(UTC))
    assert "provider-1" in frame and "1/1 agreements active" in frame
    assert "0.1 GLM/CPU-hour, 0.02 GLM/hour, start 0 GLM" in _row(frame, "offer wasmtime")
    assert " ago" in _row(frame, agreement_id, "Approved", requestor.node_id[:6])
    assert _row(frame, activity_id, "Ready").split()[1] == agreement_id[:8] + "…"

    # The requestor ends it, accepts the invoice, and (dummy driver) pays it.
    await requestor.call("POST", f"/market-api/v1/agreements/{agreement_id}/terminate", SUCCESS)

    async def invoiced() -> bool:
        return bool(await requestor.call("GET", "/payment-api/v1/invoices"))

    await eventually(invoiced, what="the invoice")
    (invoice,) = await requestor.call("GET", "/payment-api/v1/invoices")
    allocation = await requestor.call(
        "POST",
        "/payment-api/v1/allocations",
        {"totalAmount": "10", "paymentPlatform": PLATFORM, "makeDeposit": False},
    )
    await requestor.call(
        "POST",
        f"/payment-api/v1/invoices/{invoice['invoiceId']}/accept",
        {"totalAmountAccepted": invoice["amount"], "allocationId": allocation["allocationId"]},
    )

    async def settled() -> bool:
        (earned,) = await provider.status("/earnings")
        return bool(Decimal(earned["settled"]) > 0)

    await eventually(settled, what="the invoice settled")
    snapshot = await asyncio.to_thread(fetch_status, url)
    (finished,) = snapshot["activities"]
    assert finished["state"] == "Terminated" and Decimal(finished["cost"]) == Decimal(invoice["amount"])
    frame = render_status(snapshot, datetime.now(UTC))
    amount = f"{Decimal(invoice['amount']).normalize():f} GLM"
    assert "Success" in _row(frame, agreement_id, "Terminated")
    assert amount in _row(frame, activity_id, "Terminated")
    assert amount in _row(frame, "Invoice", invoice["invoiceId"], "SETTLED")
    # Earnings per platform: issued, accepted and settled, all of the one invoice.
    assert _row(frame, PLATFORM).split()[1:] == ["1", *[amount.split()[0], "GLM"] * 3]
