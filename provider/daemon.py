"""The provider daemon: offers on the market, negotiation, agreements (``golem provider run``).

:class:`ProviderDaemon` owns a :class:`~market.client.MarketClient`, publishes one offer per runtime
(or active preset) and re-publishes them before they expire, feeds every market event into the pure
:class:`~provider.agreements.ProviderNegotiations` and performs the effects it returns, one event at a
time, in one task. Agreements are persisted in :class:`~provider.store.AgreementStore` and shown on the
status API.

The seam for activities and billing: register coroutines with :meth:`ProviderDaemon.on_agreement_approved`
and :meth:`ProviderDaemon.on_agreement_ended`; read :meth:`ProviderDaemon.approved_agreements` and each
one's negotiated prices and payment terms with :func:`provider.agreements.agreement_terms`; talk to
the requestor through :attr:`ProviderDaemon.market` (relay); end an agreement with
:meth:`ProviderDaemon.terminate_agreement`; show the documents billing issues on the status API with
:meth:`ProviderDaemon.attach_payments`, and the live activities with
:meth:`ProviderDaemon.attach_activities`. Callbacks run inside the negotiation loop: they must be
quick (start their own owned tasks for long work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from exeunits.script import ActivityState
from market.client import MarketClient
from market.core.clock import Clock, SystemClock
from market.core.errors import GolemError
from market.core.identity import Identity
from market.core.logging import correlated
from market.protocol.errors import MarketError
from market.protocol.messages import (
    AgreementEvent,
    AgreementEventType,
    AgreementState,
    ProposalEvent,
    ProposalRejectedEvent,
    ProposalState,
    SubscriptionExpiredEvent,
)
from provider.agreements import (
    AgreementApprovalFailed,
    AgreementApproved,
    AgreementCancelled,
    AgreementExpired,
    AgreementProposed,
    AgreementRecord,
    AgreementRejected,
    AgreementTerminated,
    ApproveAgreement,
    CounterProposalSent,
    Effect,
    Event,
    NotifyAgreementApproved,
    NotifyAgreementEnded,
    OfferPublished,
    OfferWithdrawn,
    ProposalReceived,
    ProviderNegotiations,
    RejectAgreement,
    RejectProposal,
    SaveAgreement,
    SendCounterProposal,
)
from provider.config import ProviderConfig
from provider.hardware import Hardware, detect_hardware
from provider.ledger import document_infos, earnings
from provider.negotiator import default_negotiator
from provider.negotiator.base import NegotiatorComponent
from provider.offers import Offer, build_offer, offer_specs
from provider.presets import PresetStore
from provider.status_api import (
    API_PREFIX,
    ActivityInfo,
    AgreementInfo,
    DocumentInfo,
    Health,
    PlatformEarnings,
    PublishedOffer,
    agreement_info,
    build_status_api,
)
from provider.store import AgreementStore

if TYPE_CHECKING:
    from payments.service import ProviderPayments

log = logging.getLogger(__name__)

AgreementCallback = Callable[[AgreementRecord], Awaitable[None]]

REPUBLISH_AT = 0.8
"""Offers are re-published when this fraction of their lifetime has passed."""
RETRY_DELAY = 1.0


class LiveActivities(Protocol):
    """What runs activities now (:class:`provider.execution.ProviderExecution`), for the status API."""

    def live_activities(self) -> list[ActivityInfo]: ...


@dataclass
class _Published:
    offer: Offer
    expiration: datetime
    pump: asyncio.Task[None]


class ProviderDaemon:
    """One provider node; ``async with ProviderDaemon(config, identity) as daemon: ...``."""

    def __init__(
        self,
        config: ProviderConfig,
        identity: Identity,
        *,
        clock: Clock | None = None,
        hardware: Hardware | None = None,
        negotiator: NegotiatorComponent | None = None,
        market_request_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.identity = identity
        self.node_id = identity.node_id
        self.clock = clock or SystemClock()
        self._fixed_hardware = hardware
        self.state = ProviderNegotiations(self.node_id, negotiator or default_negotiator(config))
        self.market = MarketClient(
            config.market_url,
            identity,
            config.node_name,
            clock=self.clock,
            request_timeout=market_request_timeout,
        )
        self.store: AgreementStore | None = None
        self.status_port: int | None = None
        self.started_at: datetime | None = None
        self._inbox: asyncio.Queue[Event] = asyncio.Queue()
        self._published: dict[str, _Published] = {}
        self._offers_ready = asyncio.Event()
        self._republish_now = asyncio.Event()
        self._approved_callbacks: list[AgreementCallback] = []
        self._ended_callbacks: list[AgreementCallback] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._payments: ProviderPayments | None = None
        self._activities: LiveActivities | None = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start the market session, offers and status API; idempotent.

        Returns without waiting for the market: offers are published as soon as a session is up
        (use :meth:`wait_ready` to wait for that). Raises :class:`~market.core.errors.ConfigError`
        for an unusable preset selection.
        """
        if self._started:
            return
        # A bad preset selection is a configuration error: fail here, not in a background task.
        offer_specs(self.config, PresetStore(self.config.presets_path).all())
        self._started = True
        self.started_at = self.clock.now()
        self.store = AgreementStore(self.config.database_path)
        approved = self.store.records(AgreementState.APPROVED)
        self.state.restore(approved)
        # Agreements signed before a restart are handed back to the market session, which
        # re-publishes them with every session so the market node keeps relaying for them.
        await self.market.restore_agreements(r.agreement for r in approved)
        await self.market.start()
        self._spawn(self._negotiation_loop(), "provider-negotiation")
        self._spawn(self._agreement_pump(), "provider-agreement-events")
        self._spawn(self._offer_loop(), "provider-offers")
        if self.config.status_port is not None:
            app = web.Application()
            app.add_subapp(API_PREFIX, build_status_api(self))
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.status_host, self.config.status_port)
            await site.start()
            self.status_port = int(self._runner.addresses[0][1])
            log.info("provider status API on %s", self.status_url)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until every offer is published on the market."""
        async with asyncio.timeout(timeout):
            await self._offers_ready.wait()

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        for sub_id in list(self._published) if self.market.ready else []:
            with contextlib.suppress(MarketError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.market.unsubscribe(sub_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._published.clear()
        await self.market.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def __aenter__(self) -> ProviderDaemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def status_url(self) -> str | None:
        if self.status_port is None:
            return None
        return f"http://{self.config.status_host}:{self.status_port}{API_PREFIX}"

    # -- the seam for activities and billing ---------------------------------------------------------

    def on_agreement_approved(self, callback: AgreementCallback) -> None:
        """Call ``callback`` with each agreement once both signatures are on it."""
        self._approved_callbacks.append(callback)

    def on_agreement_ended(self, callback: AgreementCallback) -> None:
        """Call ``callback`` when an approved agreement is terminated (by either side)."""
        self._ended_callbacks.append(callback)

    def attach_payments(self, payments: ProviderPayments) -> None:
        """Show the documents ``payments`` holds (what billing issued) on the status API."""
        self._payments = payments

    def attach_activities(self, activities: LiveActivities) -> None:
        """Show the activities ``activities`` runs on the status API (beside the finished ones)."""
        self._activities = activities

    def approved_agreements(self) -> list[AgreementRecord]:
        return self.state.approved()

    def agreement(self, agreement_id: str) -> AgreementRecord | None:
        return self.state.agreements.get(agreement_id)

    async def terminate_agreement(self, agreement_id: str, reason: dict[str, Any] | None = None) -> None:
        """End an approved agreement as the provider; the termination event updates the state."""
        record = self.state.agreements.get(agreement_id)
        if record is None or record.state is not AgreementState.APPROVED:
            raise GolemError(f"agreement {agreement_id} is not approved")
        await self.market.terminate_agreement(record.agreement, reason)

    # -- offers --------------------------------------------------------------------------------------

    def _hardware(self) -> Hardware:
        if self._fixed_hardware is not None:
            return self._fixed_hardware
        c = self.config
        return detect_hardware(
            c.data_dir,
            max_threads=c.max_threads,
            max_memory_gib=c.max_memory_gib,
            max_storage_gib=c.max_storage_gib,
        )

    async def _offer_loop(self) -> None:
        lifetime = timedelta(seconds=self.config.offer_lifetime_sec)
        while True:
            try:
                await self.market.wait_ready(timeout=30.0)
                await self._publish_all(lifetime)
            except (MarketError, GolemError) as exc:
                log.warning("could not publish offers: %s; retrying", exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            self._offers_ready.set()
            self._republish_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lifetime.total_seconds() * REPUBLISH_AT):
                    await self._republish_now.wait()

    async def _publish_all(self, lifetime: timedelta) -> None:
        """Publish fresh offers, then withdraw the previous ones (so there is never a gap)."""
        specs = offer_specs(self.config, PresetStore(self.config.presets_path).all())
        hardware = self._hardware()
        old = list(self._published)
        for spec in specs:
            now = self.clock.now()
            offer = build_offer(spec, hardware, self.config, self.node_id, now)
            expiration = now + lifetime
            sub_id = await self.market.subscribe_offer(offer.properties, offer.constraints, expiration)
            self._inbox.put_nowait(OfferPublished(sub_id, offer))
            pump = self._spawn(self._subscription_pump(sub_id), f"provider-offer-{sub_id}")
            self._published[sub_id] = _Published(offer, expiration, pump)
            log.info("published %s offer %s (preset %s)", spec.runtime, sub_id, spec.preset)
        for sub_id in old:
            await self._withdraw(sub_id, unsubscribe=True)

    async def _withdraw(self, sub_id: str, *, unsubscribe: bool) -> None:
        published = self._published.pop(sub_id, None)
        if published is None:
            return
        self._inbox.put_nowait(OfferWithdrawn(sub_id))
        if published.pump is not asyncio.current_task():
            published.pump.cancel()
        if unsubscribe:
            with contextlib.suppress(MarketError):
                await self.market.unsubscribe(sub_id)

    def published_offers(self) -> list[PublishedOffer]:
        return [
            PublishedOffer(
                subscription_id=sub_id,
                runtime=p.offer.spec.runtime,
                preset=p.offer.spec.preset,
                properties=p.offer.properties,
                constraints=p.offer.constraints,
                expiration=p.expiration,
            )
            for sub_id, p in self._published.items()
        ]

    # -- market events in ----------------------------------------------------------------------------

    async def _subscription_pump(self, sub_id: str) -> None:
        while True:
            event = await self.market.next_event(sub_id)
            match event:
                case ProposalEvent():
                    proposal = event.proposal
                    if proposal.state is ProposalState.DRAFT and proposal.issuer_id != self.node_id:
                        self._inbox.put_nowait(ProposalReceived(sub_id, proposal))
                case ProposalRejectedEvent():
                    log.info("requestor rejected our draft %s: %s", event.proposal_id, event.reason)
                case SubscriptionExpiredEvent():
                    log.info("offer %s expired on the market; re-publishing", sub_id)
                    await self._withdraw(sub_id, unsubscribe=False)
                    self._republish_now.set()
                    return

    async def _agreement_pump(self) -> None:
        while True:
            event = await self.market.next_agreement_event()
            translated = _translate(event)
            if translated is not None:
                self._inbox.put_nowait(translated)

    # -- the negotiation loop: one event at a time ---------------------------------------------------

    async def _negotiation_loop(self) -> None:
        while True:
            event = await self._inbox.get()
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        effects = self.state.handle(event, self.clock.now())
        for effect in effects:
            try:
                await self._perform(effect)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("performing %s failed", type(effect).__name__)

    async def _perform(self, effect: Effect) -> None:
        match effect:
            case SendCounterProposal():
                with correlated(f"proposal:{effect.prev_proposal_id}"):
                    try:
                        proposal_id = await self.market.counter_proposal(
                            effect.subscription_id,
                            effect.prev_proposal_id,
                            effect.properties,
                            effect.constraints,
                        )
                    except MarketError as exc:
                        log.info("could not counter proposal %s: %s", effect.prev_proposal_id, exc)
                        return
                    log.info("sent draft %s to %s", proposal_id, effect.requestor_id)
                await self._handle(CounterProposalSent(proposal_id, effect))
            case RejectProposal():
                try:
                    await self.market.reject_proposal(
                        effect.subscription_id, effect.proposal_id, effect.reason
                    )
                except MarketError as exc:
                    log.info("could not reject proposal %s: %s", effect.proposal_id, exc)
            case ApproveAgreement():
                agreement_id = effect.agreement.agreement_id
                with correlated(f"agreement:{agreement_id}"):
                    try:
                        await self.market.approve_agreement(effect.agreement)
                    except GolemError as exc:  # MarketError, or SignatureError for a bad requestor signature
                        log.warning("approving agreement %s failed: %s", agreement_id, exc)
                        await self._handle(AgreementApprovalFailed(agreement_id, str(exc)))
            case RejectAgreement():
                try:
                    await self.market.reject_agreement(effect.agreement_id, effect.reason)
                except MarketError as exc:
                    log.info("could not reject agreement %s: %s", effect.agreement_id, exc)
            case SaveAgreement():
                if self.store is not None:
                    self.store.save(effect.record)
            case NotifyAgreementApproved():
                log.info("agreement %s approved", effect.record.agreement_id)
                await self._notify(self._approved_callbacks, effect.record)
            case NotifyAgreementEnded():
                log.info("agreement %s ended: %s", effect.record.agreement_id, effect.record.state.value)
                await self._notify(self._ended_callbacks, effect.record)
                # Capacity is free again: fresh offers make the market propose us anew to live
                # demands (as ya-provider does), so a requestor can make a new agreement with us.
                self._republish_now.set()

    async def _notify(self, callbacks: list[AgreementCallback], record: AgreementRecord) -> None:
        for callback in callbacks:
            try:
                await callback(record)
            except Exception:
                log.exception("agreement callback %r failed", callback)

    # -- status view ---------------------------------------------------------------------------------

    def agreement_infos(self, state: AgreementState | None = None) -> list[AgreementInfo]:
        records = self.store.records(state) if self.store is not None else []
        return [_info(r) for r in records]

    def activity_infos(self) -> list[ActivityInfo]:
        finished = [
            ActivityInfo(
                activity_id=u.activity_id,
                agreement_id=u.agreement_id,
                state=ActivityState.TERMINATED,
                duration_sec=u.duration_sec,
                cpu_sec=u.cpu_sec,
                cost=u.cost,
                ended_at=u.ended_at,
            )
            for u in (self.store.activity_usages() if self.store is not None else [])
        ]
        # A destroyed activity stays with the exe-unit host for a grace period; its stored final
        # usage is the better record.
        done = {a.activity_id for a in finished}
        live = self._activities.live_activities() if self._activities is not None else []
        return finished + [a for a in live if a.activity_id not in done]

    def documents(self) -> list[DocumentInfo]:
        if self._payments is None:
            return []
        return document_infos(self._payments.debit_notes(), self._payments.invoices())

    def earnings(self) -> list[PlatformEarnings]:
        if self._payments is None:
            return []
        return earnings(self._payments.debit_notes(), self._payments.invoices())

    def health(self) -> Health:
        connected = self.market.ready
        return Health(
            status="ok" if connected else "degraded",
            node_id=self.node_id,
            node_name=self.config.node_name,
            market_connected=connected,
            offers=len(self._published),
            active_agreements=self.state.active_agreements,
            max_agreements=self.config.max_concurrent_agreements,
            started_at=self.started_at or self.clock.now(),
        )


def _translate(event: AgreementEvent) -> Event | None:
    agreement = event.agreement
    match event.event_type:
        case AgreementEventType.PROPOSED:
            return AgreementProposed(agreement)
        case AgreementEventType.APPROVED:
            return AgreementApproved(agreement)
        case AgreementEventType.REJECTED:
            return AgreementRejected(agreement, event.reason)
        case AgreementEventType.CANCELLED:
            return AgreementCancelled(agreement, event.reason)
        case AgreementEventType.EXPIRED:
            return AgreementExpired(agreement)
        case AgreementEventType.TERMINATED:
            return AgreementTerminated(agreement, event.terminator, event.reason)
    return None  # pragma: no cover - the match is exhaustive


def _info(record: AgreementRecord) -> AgreementInfo:
    a = record.agreement
    return agreement_info(
        agreement_id=a.agreement_id,
        state=record.state,
        requestor_id=a.demand.requestor_id,
        runtime=record.runtime,
        valid_to=a.valid_to,
        approved_date=a.approved_date,
        created_at=record.created_at,
        updated_at=record.updated_at,
        reason=record.reason,
        terminator=record.terminator.value if record.terminator else None,
        proposed_signature=a.proposed_signature,
        approved_signature=a.approved_signature,
        demand_properties=a.demand.properties,
        offer_properties=a.offer.properties,
    )
