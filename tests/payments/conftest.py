"""Shared fixtures of the payment tests: a fake clock, real SQLite files, the dummy driver, both sides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from market.core.clock import FakeClock
from payments.documents import DocumentKind
from payments.driver import DummyDriver
from payments.models import DebitNote, Invoice, NewAllocation
from payments.service import AgreementTerms, ProviderPayments, RequestorPayments
from payments.store import PaymentStore

REQUESTOR_ID = "0x" + "aa" * 20
PROVIDER_ID = "0x" + "bb" * 20
PLATFORM = "dummy-glm"
YAPAPI_BUDGET = "0.1000000000000000055511151231257827021181583404541015625"
"""What yapapi sends for ``Golem(budget=0.1)``: ``str(Decimal(0.1))``."""

TERMS = AgreementTerms(
    agreement_id="agreement-1",
    requestor_id=REQUESTOR_ID,
    provider_id=PROVIDER_ID,
    payer_addr=REQUESTOR_ID,
    payee_addr=PROVIDER_ID,
    platform=PLATFORM,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


@pytest.fixture
def driver(clock: FakeClock) -> DummyDriver:
    return DummyDriver(clock=clock)


@pytest.fixture
def requestor_store(tmp_path: Path) -> Iterator[PaymentStore]:
    store = PaymentStore.open(tmp_path / "requestor.db")
    yield store
    store.close()


@pytest.fixture
def provider_store(tmp_path: Path) -> Iterator[PaymentStore]:
    store = PaymentStore.open(tmp_path / "provider.db")
    yield store
    store.close()


@pytest.fixture
def requestor(requestor_store: PaymentStore, driver: DummyDriver, clock: FakeClock) -> RequestorPayments:
    return RequestorPayments(
        requestor_store, [driver], identity=REQUESTOR_ID, clock=clock, default_platform=PLATFORM
    )


@pytest.fixture
def provider(provider_store: PaymentStore, driver: DummyDriver, clock: FakeClock) -> ProviderPayments:
    return ProviderPayments(provider_store, identity=PROVIDER_ID, clock=clock, drivers=[driver])


def new_allocation(total: str = "1", platform: str = PLATFORM) -> NewAllocation:
    """The body yapapi 0.13.1 POSTs (empty-string ids and amounts included)."""
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    return NewAllocation.model_validate(
        {
            "allocationId": "",
            "address": REQUESTOR_ID,
            "paymentPlatform": platform,
            "totalAmount": total,
            "spentAmount": "",
            "remainingAmount": "",
            "timestamp": now.isoformat(),
            "timeout": (now + timedelta(days=3650)).isoformat(),
            "makeDeposit": False,
        }
    )


def issue_debit_note(
    provider: ProviderPayments,
    requestor: RequestorPayments,
    due: str,
    *,
    activity_id: str = "activity-1",
    payment_due_date: datetime | None = None,
) -> DebitNote:
    """Issue on the provider and deliver to the requestor, as the two daemons' relay would."""
    note = provider.issue_debit_note(
        TERMS, activity_id, Decimal(due), usage_counter_vector=[1.0, 2.0], payment_due_date=payment_due_date
    )
    received = requestor.receive_debit_note(note)
    provider.mark_sent(provider_kind(note), note.debit_note_id)
    return received


def issue_invoice(provider: ProviderPayments, requestor: RequestorPayments, amount: str) -> Invoice:
    invoice = provider.issue_invoice(
        TERMS, ["activity-1"], Decimal(amount), payment_due_date=provider.clock.now() + timedelta(hours=1)
    )
    received = requestor.receive_invoice(invoice)
    provider.mark_sent(provider_kind(invoice), invoice.invoice_id)
    return received


def provider_kind(document: DebitNote | Invoice) -> DocumentKind:
    return DocumentKind.DEBIT_NOTE if isinstance(document, DebitNote) else DocumentKind.INVOICE
