"""Billing: debit notes while an agreement's activities run, an invoice when the agreement ends.

Costs follow the agreed linear pricing: per activity, ``cpu_sec·c0 + duration_sec·c1 + fixed``, the
usage counters coming from the exe units. Debit notes are cumulative per activity and issued at the
agreed interval (the default when none was negotiated); with mid-agreement payments negotiated they
carry a payment due date. The invoice sums every activity of the agreement. Every document is stored
by :class:`~payments.service.ProviderPayments` before the :class:`~payments.exchange.PaymentExchange`
sends it, so nothing billed is lost to a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from exeunits.host import HostedActivity
from payments.exchange import PaymentExchange
from payments.service import AgreementTerms as PaymentTerms
from payments.service import ProviderPayments
from provider.agreements import AgreementRecord, agreement_terms
from provider.daemon import ProviderDaemon
from provider.execution import ProviderExecution

log = logging.getLogger(__name__)

DEFAULT_DEBIT_NOTE_INTERVAL = 120.0
WEI = Decimal("1e-18")
INVOICE_DUE = timedelta(hours=24)
"""How long a requestor has to pay an invoice when no shorter payment timeout was negotiated."""


class ProviderBilling:
    """Issues a daemon's debit notes and invoices; ``async with ProviderBilling(...)``."""

    def __init__(
        self,
        daemon: ProviderDaemon,
        execution: ProviderExecution,
        payments: ProviderPayments,
        exchange: PaymentExchange,
        *,
        default_interval: float = DEFAULT_DEBIT_NOTE_INTERVAL,
    ) -> None:
        self.daemon = daemon
        self.execution = execution
        self.payments = payments
        self.exchange = exchange
        self.default_interval = default_interval
        self._loops: dict[str, asyncio.Task[None]] = {}
        self.invoiced: set[str] = set()

    async def start(self) -> None:
        self.daemon.on_agreement_approved(self._approved)
        self.daemon.on_agreement_ended(self._ended)
        for record in self.daemon.approved_agreements():
            await self._approved(record)

    async def close(self) -> None:
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        self._loops.clear()

    async def __aenter__(self) -> ProviderBilling:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- hooks ---------------------------------------------------------------------------------------

    async def _approved(self, record: AgreementRecord) -> None:
        if record.agreement_id not in self._loops:
            self._loops[record.agreement_id] = asyncio.create_task(
                self._debit_notes(record), name=f"debit-notes-{record.agreement_id}"
            )

    async def _ended(self, record: AgreementRecord) -> None:
        loop = self._loops.pop(record.agreement_id, None)
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        # The activities go first (their last usage counts), then the invoice.
        await self.execution.host.agreement_ended(record.agreement_id)
        await self.invoice(record)

    # -- documents -----------------------------------------------------------------------------------

    async def invoice(self, record: AgreementRecord) -> None:
        """Issue the agreement's invoice, once; nothing is billed for an agreement with no activity."""
        if record.agreement_id in self.invoiced:
            return
        activities = self.execution.host.activities_of(record.agreement_id)
        if not activities:
            return
        terms = agreement_terms(record.agreement)
        amount = sum([await self._cost(record, a) for a in activities], Decimal(0))
        window = timedelta(seconds=terms.payment_timeout_sec) if terms.payment_timeout_sec else INVOICE_DUE
        self.payments.issue_invoice(
            self._payment_terms(record),
            [a.activity.activity_id for a in activities],
            amount,
            payment_due_date=self.daemon.clock.now() + window,
        )
        self.invoiced.add(record.agreement_id)
        log.info("invoiced agreement %s: %s GLM on %s", record.agreement_id, amount, terms.platform)
        self.exchange.wake()

    async def debit_note(self, record: AgreementRecord, hosted: HostedActivity) -> None:
        terms = agreement_terms(record.agreement)
        cost = await self._cost(record, hosted)
        cpu = await hosted.activity.cpu_seconds()
        due = None
        if terms.payment_timeout_sec is not None:
            due = self.daemon.clock.now() + timedelta(seconds=terms.payment_timeout_sec)
        self.payments.issue_debit_note(
            self._payment_terms(record),
            hosted.activity.activity_id,
            cost,
            usage_counter_vector=[cpu, hosted.activity.duration_seconds()],
            payment_due_date=due,
        )
        self.exchange.wake()

    async def _debit_notes(self, record: AgreementRecord) -> None:
        terms = agreement_terms(record.agreement)
        interval = float(terms.debit_note_interval_sec or self.default_interval)
        while True:
            await asyncio.sleep(interval)
            for hosted in self.execution.host.activities_of(record.agreement_id):
                if hosted.activity.state.value != "Terminated":
                    try:
                        await self.debit_note(record, hosted)
                    except Exception:
                        log.exception("debit note for activity %s failed", hosted.activity.activity_id)

    async def _cost(self, record: AgreementRecord, hosted: HostedActivity) -> Decimal:
        pricing = agreement_terms(record.agreement).pricing
        cpu = Decimal(repr(await hosted.activity.cpu_seconds()))
        duration = Decimal(repr(hosted.activity.duration_seconds()))
        # Amounts end up as ERC-20 transfers: whole wei (18 decimals), rounded down.
        return pricing.cost(cpu, duration).quantize(WEI, rounding=ROUND_DOWN)

    def _payment_terms(self, record: AgreementRecord) -> PaymentTerms:
        terms = agreement_terms(record.agreement)
        return PaymentTerms(
            agreement_id=record.agreement_id,
            requestor_id=record.requestor_id,
            provider_id=self.daemon.node_id,
            payer_addr=terms.payer_address,
            payee_addr=terms.payee_address,
            platform=terms.platform,
        )
