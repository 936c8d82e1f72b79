"""Billing: debit notes while an agreement's activities run, an invoice when the agreement ends, and
the agreement broken when the requestor does not accept or pay its debit notes in time.

Costs follow the agreed linear pricing: per activity, ``cpu_sec·c0 + duration_sec·c1 + fixed``, the
usage counters coming from the exe units. Debit notes are cumulative per activity and issued at the
agreed interval (the default when none was negotiated); with mid-agreement payments negotiated, a
note is made payable (given a due date) once the payment timeout has passed since the activity's
last payable one (:func:`provider.deadlines.payment_due_date`). When an exe unit stops, its final
usage and cost are stored with the agreement, and the invoice sums them. Every document is stored
by :class:`~payments.service.ProviderPayments` before the :class:`~payments.exchange.PaymentExchange`
sends it, so nothing billed is lost to a crash.

Deadlines: for each approved agreement a watcher reads its stored debit notes and sleeps until the
next deadline (or a new note); when one passes (:func:`provider.deadlines.check_deadlines`) it stops
the debit notes, destroys the agreement's activities and terminates the agreement with
``DebitNotesDeadline`` or ``DebitNoteNotPaid``. The reason is kept with the agreement (the status API
shows it) and the invoice still follows, for what was used. The check reads only stored documents,
so a restarted provider enforces the deadlines of notes it sent before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from exeunits.host import HostedActivity
from market.core.errors import GolemError
from market.protocol.messages import AgreementState
from payments.exchange import PaymentExchange
from payments.service import AgreementTerms as PaymentTerms
from payments.service import ProviderPayments
from provider.agreements import AgreementRecord, agreement_terms
from provider.daemon import ProviderDaemon
from provider.deadlines import Breach, check_deadlines, payment_due_date
from provider.execution import ProviderExecution
from provider.store import ActivityUsage

log = logging.getLogger(__name__)

DEFAULT_DEBIT_NOTE_INTERVAL = 120.0
WEI = Decimal("1e-18")
INVOICE_DUE = timedelta(hours=24)
"""How long a requestor has to pay an invoice when no shorter payment timeout was negotiated."""
TERMINATE_RETRY = 2.0
"""Seconds between attempts to terminate a broken agreement while the market node is unreachable."""
DEADLINE_SLACK = 0.05
"""Wake this long after a deadline, so the check at wake-up sees it passed."""
RESUME_GRACE = 30.0
"""After a (re)start, notes issued before it get at least this many seconds: the requestor's
acceptances and payments sent while we were down reach us only once our relay session is back."""


class ProviderBilling:
    """Issues a daemon's debit notes and invoices and enforces their deadlines;
    ``async with ProviderBilling(...)``."""

    def __init__(
        self,
        daemon: ProviderDaemon,
        execution: ProviderExecution,
        payments: ProviderPayments,
        exchange: PaymentExchange,
        *,
        default_interval: float = DEFAULT_DEBIT_NOTE_INTERVAL,
        resume_grace: float = RESUME_GRACE,
    ) -> None:
        self.daemon = daemon
        self.execution = execution
        self.payments = payments
        self.exchange = exchange
        self.default_interval = default_interval
        self.resume_grace = timedelta(seconds=resume_grace)
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._note_issued: dict[str, asyncio.Event] = {}
        self.broken: dict[str, Breach] = {}
        """Agreements this provider is breaking (or broke) in this run, with the deadline missed."""
        self.invoiced: set[str] = set()
        self._resumed: tuple[datetime, datetime] | None = None

    async def start(self) -> None:
        now = self.daemon.clock.now()
        self._resumed = (now, now + self.resume_grace)
        self.daemon.attach_payments(self.payments)
        self.execution.host.on_destroyed(self._activity_destroyed)
        self.daemon.on_agreement_approved(self._approved)
        self.daemon.on_agreement_ended(self._ended)
        for record in self.daemon.approved_agreements():
            await self._approved(record)

    async def close(self) -> None:
        tasks = [task for group in self._tasks.values() for task in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._note_issued.clear()

    async def __aenter__(self) -> ProviderBilling:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- hooks ---------------------------------------------------------------------------------------

    async def _approved(self, record: AgreementRecord) -> None:
        agreement_id = record.agreement_id
        if agreement_id in self._tasks:
            return
        self._note_issued[agreement_id] = asyncio.Event()
        self._tasks[agreement_id] = [
            asyncio.create_task(self._debit_notes(record), name=f"debit-notes-{agreement_id}"),
            asyncio.create_task(self._watch_deadlines(record), name=f"deadlines-{agreement_id}"),
        ]

    async def _ended(self, record: AgreementRecord) -> None:
        tasks = self._tasks.pop(record.agreement_id, [])
        self._note_issued.pop(record.agreement_id, None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The activities go first (their last usage counts), then the invoice.
        await self.execution.host.agreement_ended(record.agreement_id)
        await self.invoice(record)

    async def _activity_destroyed(self, hosted: HostedActivity) -> None:
        """An exe unit stopped: keep its final usage with the agreement for the invoice."""
        store = self.daemon.store
        record = self.daemon.agreement(hosted.agreement_id)
        if store is None or record is None:
            return
        activity = hosted.activity
        store.save_activity_usage(
            ActivityUsage(
                activity_id=activity.activity_id,
                agreement_id=hosted.agreement_id,
                cpu_sec=await activity.cpu_seconds(),
                duration_sec=activity.duration_seconds(),
                cost=await self._cost(record, hosted),
                ended_at=self.daemon.clock.now(),
            )
        )

    # -- documents -----------------------------------------------------------------------------------

    async def invoice(self, record: AgreementRecord) -> None:
        """Issue the agreement's invoice, once; nothing is billed for an agreement with no activity."""
        if record.agreement_id in self.invoiced:
            return
        costs: dict[str, Decimal] = {}
        if self.daemon.store is not None:
            costs = {u.activity_id: u.cost for u in self.daemon.store.activity_usages(record.agreement_id)}
        for hosted in self.execution.host.activities_of(record.agreement_id):
            if hosted.activity.activity_id not in costs:
                costs[hosted.activity.activity_id] = await self._cost(record, hosted)
        if not costs:
            return
        terms = agreement_terms(record.agreement)
        amount = sum(costs.values(), Decimal(0))
        window = timedelta(seconds=terms.payment_timeout_sec) if terms.payment_timeout_sec else INVOICE_DUE
        self.payments.issue_invoice(
            self._payment_terms(record),
            list(costs),
            amount,
            payment_due_date=self.daemon.clock.now() + window,
        )
        self.invoiced.add(record.agreement_id)
        log.info("invoiced agreement %s: %s GLM on %s", record.agreement_id, amount, terms.platform)
        self.exchange.wake()

    async def debit_note(self, record: AgreementRecord, hosted: HostedActivity) -> None:
        terms = agreement_terms(record.agreement)
        activity = hosted.activity
        cost = await self._cost(record, hosted)
        cpu = await activity.cpu_seconds()
        duration = activity.duration_seconds()
        now = self.daemon.clock.now()
        due = None
        if terms.payment_timeout_sec is not None:
            started = now - timedelta(seconds=duration)
            last = self._last_payable(record.agreement_id, activity.activity_id) or started
            due = payment_due_date(last, terms.payment_timeout_sec, now)
        self.payments.issue_debit_note(
            self._payment_terms(record),
            activity.activity_id,
            cost,
            usage_counter_vector=[cpu, duration],
            payment_due_date=due,
        )
        issued = self._note_issued.get(record.agreement_id)
        if issued is not None:
            issued.set()  # the deadline watcher takes the new note's deadlines into account
        self.exchange.wake()

    def _last_payable(self, agreement_id: str, activity_id: str) -> datetime | None:
        issued = [
            n.timestamp
            for n in self.payments.agreement_debit_notes(agreement_id)
            if n.activity_id == activity_id and n.payment_due_date is not None
        ]
        return max(issued) if issued else None

    async def _debit_notes(self, record: AgreementRecord) -> None:
        terms = agreement_terms(record.agreement)
        interval = float(terms.debit_note_interval_sec or self.default_interval)
        while True:
            await asyncio.sleep(interval)
            if record.agreement_id in self.broken:
                return
            for hosted in self.execution.host.activities_of(record.agreement_id):
                if hosted.activity.state.value != "Terminated":
                    try:
                        await self.debit_note(record, hosted)
                    except Exception:
                        log.exception("debit note for activity %s failed", hosted.activity.activity_id)

    # -- deadlines -----------------------------------------------------------------------------------

    async def _watch_deadlines(self, record: AgreementRecord) -> None:
        """Sleep until the agreement's next debit-note deadline (or a new note); break it when one
        passes unmet."""
        agreement_id = record.agreement_id
        accept_timeout = agreement_terms(record.agreement).debit_note_accept_timeout_sec
        issued = self._note_issued[agreement_id]
        while True:
            issued.clear()
            now = self.daemon.clock.now()
            notes = self.payments.agreement_debit_notes(agreement_id)
            check = check_deadlines(notes, accept_timeout, now, resumed=self._resumed)
            if check.breach is not None:
                await self._break(record, check.breach)
                return
            delay = None
            if check.next_deadline is not None:
                delay = (check.next_deadline - now).total_seconds() + DEADLINE_SLACK
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await issued.wait()

    async def _break(self, record: AgreementRecord, breach: Breach) -> None:
        """Stop billing and work on the agreement, then terminate it with the breach as reason."""
        agreement_id = record.agreement_id
        self.broken[agreement_id] = breach
        reason = breach.reason()
        log.warning("breaking agreement %s: %s", agreement_id, reason["message"])
        # Work stops now, whether or not the market node hears of it yet. Shielded: the termination
        # event cancels this task, and an exe unit must not be left half-removed.
        await asyncio.shield(self.execution.host.agreement_ended(agreement_id))
        while True:
            current = self.daemon.agreement(agreement_id)
            if current is None or current.state is not AgreementState.APPROVED:
                return
            try:
                await self.daemon.terminate_agreement(agreement_id, reason)
                return
            except GolemError as exc:
                log.warning("could not terminate agreement %s yet: %s", agreement_id, exc)
            await asyncio.sleep(TERMINATE_RETRY)

    # -- helpers -------------------------------------------------------------------------------------

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
