"""A provider breaks agreements whose debit notes go unaccepted or unpaid, and keeps those of a
requestor that accepts and pays in time (real market node, real daemons, real wasmtime exe units)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from market.core.identity import Identity
from market.protocol.messages import AgreementState
from tests.daemons.conftest import (
    ACCEPT_TIMEOUT,
    HELLO,
    NOTE_INTERVAL,
    PAYMENT_TIMEOUT,
    PLATFORM,
    RequestorRest,
    StartProvider,
    eventually,
)

FAST_NOTES = {"debit_note_interval_sec": 1, "min_debit_note_interval_sec": 1}
"""Provider settings for debit notes every second and short deadlines (the defaults are minutes)."""
SHORT_DEADLINES = {
    **FAST_NOTES,
    "debit_note_accept_timeout_sec": 2,
    "min_debit_note_accept_timeout_sec": 1,
    "payment_timeout_sec": 2,
    "min_payment_timeout_sec": 1,
}


async def requestor_notes(rest: RequestorRest) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = await rest.call("GET", "/payment-api/v1/debitNotes")
    return notes


async def test_unaccepted_debit_notes_break_the_agreement(
    start_provider: StartProvider, requestor: RequestorRest, package: str
) -> None:
    provider = await start_provider(billing_interval=1.0, **SHORT_DEADLINES)
    # The requestor agrees to accept each debit note within 2 s ... and then never does.
    agreement_id = await requestor.agree(package, **{ACCEPT_TIMEOUT: 2})
    activity_id = await requestor.create_activity(agreement_id)
    results = await requestor.run(activity_id, HELLO)
    assert [r["result"] for r in results] == ["Ok", "Ok", "Ok"]

    async def terminated() -> bool:
        return bool((await requestor.agreement(agreement_id))["state"] == "Terminated")

    await eventually(terminated, what="the provider to terminate the agreement")
    reason = await requestor.call("GET", f"/market-api/v1/agreements/{agreement_id}/terminate/reason")
    assert reason["golem.provider.code"] == "DebitNotesDeadline" and "not accepted" in reason["message"]

    # The exe unit stopped: the requestor sees the activity Terminated, the provider holds it no more
    # than its grace.
    assert (await requestor.state(activity_id))[0] == "Terminated"
    hosted = provider.execution.host.activities.get(activity_id)
    assert hosted is None or hosted.activity.state.value == "Terminated"

    # The provider's view: the agreement with its reason (persisted), the unaccepted notes, the invoice.
    info = await provider.status(f"/agreements/{agreement_id}")
    assert info["state"] == "Terminated" and info["terminator"] == "Provider"
    assert info["terminationCode"] == "DebitNotesDeadline"
    assert info["reason"]["golem.provider.code"] == "DebitNotesDeadline"
    stored = provider.daemon.store.get(agreement_id) if provider.daemon.store else None
    assert stored is not None and stored.reason == info["reason"]

    async def invoiced() -> bool:
        return bool(await requestor.call("GET", "/payment-api/v1/invoices"))

    await eventually(invoiced, what="the invoice")
    (invoice,) = await requestor.call("GET", "/payment-api/v1/invoices")
    assert invoice["agreementId"] == agreement_id and invoice["activityIds"] == [activity_id]
    assert Decimal(invoice["amount"]) > 0
    documents = await provider.status("/documents", agreementId=agreement_id)
    kinds = [d["kind"] for d in documents]
    assert kinds.count("Invoice") == 1 and kinds.count("DebitNote") >= 1
    assert all(d["status"] == "RECEIVED" for d in documents if d["kind"] == "DebitNote")
    assert all(d["paymentDueDate"] is None for d in documents if d["kind"] == "DebitNote")
    (earned,) = await provider.status("/earnings")
    assert earned["platform"] == PLATFORM and Decimal(earned["issued"]) == Decimal(invoice["amount"])
    assert earned["accepted"] == "0" and earned["settled"] == "0"

    # No more debit notes once the agreement is broken.
    count = len(await requestor_notes(requestor))
    await asyncio.sleep(2.5)
    assert len(await requestor_notes(requestor)) == count


async def test_unpaid_payable_debit_note_breaks_the_agreement(
    start_provider: StartProvider, requestor: RequestorRest, package: str
) -> None:
    provider = await start_provider(billing_interval=1.0, **SHORT_DEADLINES)
    # Mid-agreement payments (interval and payment timeout), no accept timeout: only the payment
    # deadline applies, and nobody pays.
    agreement_id = await requestor.agree(package, **{NOTE_INTERVAL: 1, PAYMENT_TIMEOUT: 2})
    activity_id = await requestor.create_activity(agreement_id)
    await requestor.run(activity_id, HELLO[:2])

    async def terminated() -> bool:
        return bool((await requestor.agreement(agreement_id))["state"] == "Terminated")

    await eventually(terminated, what="the provider to terminate the agreement")
    reason = await requestor.call("GET", f"/market-api/v1/agreements/{agreement_id}/terminate/reason")
    assert reason["golem.provider.code"] == "DebitNoteNotPaid" and "not paid" in reason["message"]
    assert (await provider.status(f"/agreements/{agreement_id}"))["terminationCode"] == "DebitNoteNotPaid"
    notes = await requestor_notes(requestor)
    # Not every note is payable: one in each payment timeout at most (yapapi counts them).
    assert any(n.get("paymentDueDate") for n in notes) and not all(n.get("paymentDueDate") for n in notes)


async def test_a_requestor_that_accepts_and_pays_keeps_its_agreement(
    start_provider: StartProvider, requestor: RequestorRest, package: str
) -> None:
    provider = await start_provider(billing_interval=1.0, **SHORT_DEADLINES)
    agreement_id = await requestor.agree(package, **{ACCEPT_TIMEOUT: 2, NOTE_INTERVAL: 1, PAYMENT_TIMEOUT: 2})
    allocation = await requestor.call(
        "POST",
        "/payment-api/v1/allocations",
        {"totalAmount": "100", "paymentPlatform": PLATFORM, "makeDeposit": False},
    )
    accepted: list[str] = []

    async def accept_notes() -> None:
        # What yapapi does: follow the debit-note events and accept each note as it arrives.
        after = datetime.now(UTC).isoformat()
        while True:
            events = await requestor.call(
                "GET", "/payment-api/v1/debitNoteEvents", afterTimestamp=after, timeout=1
            )
            for event in events:
                after = event["eventDate"]
                if event["eventType"] != "DebitNoteReceivedEvent":
                    continue
                note = await requestor.call("GET", f"/payment-api/v1/debitNotes/{event['debitNoteId']}")
                await requestor.call(
                    "POST",
                    f"/payment-api/v1/debitNotes/{note['debitNoteId']}/accept",
                    {
                        "totalAmountAccepted": note["totalAmountDue"],
                        "allocationId": allocation["allocationId"],
                    },
                )
                accepted.append(note["debitNoteId"])

    acceptor = asyncio.create_task(accept_notes())
    try:
        activity_id = await requestor.create_activity(agreement_id)
        await requestor.run(activity_id, HELLO)
        # Several accept and payment deadlines pass; each note was accepted and paid in time.
        await asyncio.sleep(7)
        assert (await requestor.agreement(agreement_id))["state"] == "Approved"
        assert provider.daemon.agreement(agreement_id).state is AgreementState.APPROVED  # type: ignore[union-attr]
        assert provider.billing.broken == {}
        documents = await provider.status("/documents", kind="DebitNote")
        assert len(documents) >= 5
        payable = [d for d in documents if d["paymentDueDate"]]
        assert payable and any(d["status"] == "SETTLED" for d in payable)
        (earned,) = await provider.status("/earnings")
        assert Decimal(earned["settled"]) > 0 and Decimal(earned["accepted"]) >= Decimal(earned["settled"])
    finally:
        acceptor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acceptor
    await requestor.call(
        "POST",
        f"/market-api/v1/agreements/{agreement_id}/terminate",
        {"message": "Successfully finished all work", "golem.requestor.code": "Success"},
    )
    info = await provider.status(f"/agreements/{agreement_id}")
    assert info["state"] == "Terminated" and info["terminationCode"] == "Success"


async def test_deadlines_of_notes_sent_before_a_restart_are_enforced(
    start_provider: StartProvider, requestor: RequestorRest, package: str, tmp_path: Path
) -> None:
    identity, data_dir = Identity.generate(), tmp_path / "provider"
    first = await start_provider(
        identity=identity, data_dir=data_dir, billing_interval=1.0, **SHORT_DEADLINES
    )
    agreement_id = await requestor.agree(package, **{ACCEPT_TIMEOUT: 2})
    activity_id = await requestor.create_activity(agreement_id)

    async def noted() -> bool:
        return bool(await requestor_notes(requestor))

    await eventually(noted, what="a first debit note")
    await first.close()  # before its accept deadline; the exe unit goes with the process

    # The restarted provider has no activity left (so no new notes), only the stored, unaccepted
    # note: once the restart's grace is over, that note's missed deadline breaks the agreement.
    again = await start_provider(
        identity=identity, data_dir=data_dir, billing_interval=1.0, resume_grace=1.0, **SHORT_DEADLINES
    )
    assert again.execution.host.activities_of(agreement_id) == []

    async def terminated() -> bool:
        return bool((await requestor.agreement(agreement_id))["state"] == "Terminated")

    await eventually(terminated, what="the restarted provider to terminate the agreement")
    info = await again.status(f"/agreements/{agreement_id}")
    assert info["terminationCode"] == "DebitNotesDeadline" and info["terminator"] == "Provider"

    async def invoiced() -> bool:
        return bool(await requestor.call("GET", "/payment-api/v1/invoices"))

    # The first run's activity is billed from its stored usage.
    await eventually(invoiced, what="the invoice")
    (invoice,) = await requestor.call("GET", "/payment-api/v1/invoices")
    assert invoice["activityIds"] == [activity_id] and Decimal(invoice["amount"]) > 0
