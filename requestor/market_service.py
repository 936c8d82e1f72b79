"""The requestor side of yagna's Market API, over the daemon's :class:`MarketClient` session.

:class:`RequestorMarketService` is the domain façade the REST handlers (:mod:`requestor.market_api`)
call, one method per endpoint. It keeps what the market protocol does not serve back: each demand's
buffered negotiation events (for the long-poll), the proposals seen on it (for ``GET`` and for
"already countered" checks), and the agreements this node is party to, persisted in SQLite with their
signatures. Two owned background pumps per service move events from the market session into those
buffers: one per live demand, and one for agreement events. Errors are the typed
:mod:`market.protocol.errors` (plus :class:`ApprovalTimeoutError`); the REST edge maps them to HTTP.

The activity and payment parts read agreements through :meth:`RequestorMarketService.agreement`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from market.api import models as api
from market.core.clock import Clock, SystemClock
from market.core.identity import Identity
from market.core.ids import NodeId
from market.props.errors import PropertyError
from market.props.properties import flatten
from market.protocol.errors import (
    BadRequestError,
    ConflictError,
    GoneError,
    MarketError,
    NotFoundError,
)
from market.protocol.messages import (
    Agreement,
    AgreementEvent,
    AgreementEventType,
    AgreementState,
    Party,
    ProposalEvent,
    ProposalRejectedEvent,
    SubscriptionExpiredEvent,
)
from market.protocol.signing import agreement_signing_text, termination_signing_text

log = logging.getLogger(__name__)

MARKET_SCHEMA = """
CREATE TABLE agreements (
    agreement_id TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    state TEXT NOT NULL,
    proposed_signature TEXT,
    approved_signature TEXT,
    termination_reason TEXT,
    json TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX agreements_state ON agreements (state);
CREATE TABLE agreement_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    agreement_id TEXT NOT NULL,
    event_date TEXT NOT NULL,
    json TEXT NOT NULL
)
"""
"""Migration creating the ``agreements`` and ``agreement_events`` tables (part of the daemon's
migration list): agreements with their signatures, and the ``/agreementEvents`` feed, so both
survive a restart."""

FINAL_STATES = frozenset(
    {AgreementState.REJECTED, AgreementState.CANCELLED, AgreementState.EXPIRED, AgreementState.TERMINATED}
)
FeedEvent = (
    api.AgreementApprovedEvent
    | api.AgreementRejectedEvent
    | api.AgreementCancelledEvent
    | api.AgreementTerminatedEvent
)
"""What ``/agreementEvents`` delivers."""

MAX_WAIT_SECONDS = 300.0
"""Longest any long-poll or ``wait`` holds a request, whatever ``timeout`` the caller asked for."""


class ApprovalTimeoutError(MarketError):
    """The other party did not answer within the caller's ``timeout`` (HTTP 408)."""


class MarketSession(Protocol):
    """What the service needs of a market session; :class:`market.client.MarketClient` is one."""

    @property
    def identity(self) -> Identity: ...

    @property
    def node_id(self) -> NodeId: ...

    async def subscribe_demand(
        self, properties: dict[str, Any], constraints: str, expiration: datetime
    ) -> str: ...

    async def unsubscribe(self, subscription_id: str) -> None: ...

    async def next_event(
        self, subscription_id: str, timeout: float | None = None
    ) -> ProposalEvent | ProposalRejectedEvent | SubscriptionExpiredEvent: ...

    async def counter_proposal(
        self, subscription_id: str, prev_proposal_id: str, properties: dict[str, Any], constraints: str
    ) -> str: ...

    async def reject_proposal(
        self, subscription_id: str, proposal_id: str, reason: dict[str, Any] | None = None
    ) -> None: ...

    async def create_agreement(self, proposal_id: str, valid_to: datetime) -> Agreement: ...

    async def confirm_agreement(self, agreement: Agreement) -> None: ...

    async def cancel_agreement(self, agreement_id: str, reason: dict[str, Any] | None = None) -> None: ...

    async def terminate_agreement(
        self, agreement: Agreement, reason: dict[str, Any] | None = None
    ) -> None: ...

    async def next_agreement_event(self, timeout: float | None = None) -> AgreementEvent: ...


@dataclass
class _ProposalRecord:
    proposal: api.Proposal
    ours: bool
    countered: bool = False


@dataclass
class _DemandRecord:
    demand: api.Demand
    events: deque[api.ProposalEvent | api.ProposalRejectedEvent] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    proposals: dict[str, _ProposalRecord] = field(default_factory=dict)
    ended: bool = False
    pump: asyncio.Task[None] | None = None


@dataclass
class _AgreementRecord:
    agreement: Agreement
    termination_reason: dict[str, Any] | None = None


def _reason(raw: dict[str, Any] | None) -> api.Reason | None:
    if raw is None:
        return None
    return api.Reason.model_validate({"message": "", **raw})


class RequestorMarketService:
    """The requestor's negotiations and agreements; see the module docstring."""

    def __init__(
        self,
        client: MarketSession,
        db: sqlite3.Connection,
        *,
        clock: Clock | None = None,
        demand_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self._client = client
        self._db = db
        self._clock = clock or SystemClock()
        self._demand_ttl = demand_ttl
        self._demands: dict[str, _DemandRecord] = {}
        self._proposal_subscription: dict[str, str] = {}
        self._agreements: dict[str, _AgreementRecord] = {}
        self._feed: list[FeedEvent] = []
        self._changed = asyncio.Event()
        self._agreement_pump: asyncio.Task[None] | None = None
        self._last_event_date: datetime | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load stored agreements and start listening for agreement events; idempotent."""
        if self._agreement_pump is not None:
            return
        for row in self._db.execute("SELECT json, termination_reason FROM agreements"):
            agreement = Agreement.model_validate_json(row["json"])
            reason = json.loads(row["termination_reason"]) if row["termination_reason"] else None
            self._agreements[agreement.agreement_id] = _AgreementRecord(agreement, reason)
        for row in self._db.execute("SELECT json FROM agreement_events ORDER BY seq"):
            self._feed.append(api.agreement_operation_event_adapter.validate_json(row["json"]))
        if self._feed:
            self._last_event_date = self._feed[-1].event_date
        self._agreement_pump = asyncio.create_task(self._pump_agreements(), name="requestor-agreements")

    async def close(self) -> None:
        tasks = [d.pump for d in self._demands.values() if d.pump is not None]
        if self._agreement_pump is not None:
            tasks.append(self._agreement_pump)
            self._agreement_pump = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def node_id(self) -> NodeId:
        return self._client.node_id

    # -- demands -------------------------------------------------------------------------------------

    async def subscribe_demand(self, body: api.DemandOfferBase) -> str:
        properties = _flat(body.properties)
        now = self._clock.now()
        sub_id = await self._client.subscribe_demand(properties, body.constraints, now + self._demand_ttl)
        record = _DemandRecord(
            api.Demand(
                properties=properties,
                constraints=body.constraints,
                demand_id=sub_id,
                requestor_id=self.node_id,
                timestamp=now,
            )
        )
        record.pump = asyncio.create_task(self._pump_demand(sub_id, record), name=f"demand-{sub_id}")
        self._demands[sub_id] = record
        log.info("demand %s published", sub_id)
        return sub_id

    def demands(self) -> list[api.Demand]:
        return [d.demand for d in self._demands.values() if not d.ended]

    async def unsubscribe_demand(self, subscription_id: str) -> None:
        record = self._demands.get(subscription_id)
        if record is None:
            raise NotFoundError(f"no demand {subscription_id}")
        if record.ended:
            raise GoneError(f"demand {subscription_id} already ended")
        # NotFound: the market node expired it meanwhile, which is the outcome the caller wanted.
        with contextlib.suppress(NotFoundError):
            await self._client.unsubscribe(subscription_id)
        self._end_demand(record)

    async def collect_events(
        self, subscription_id: str, timeout: float, max_events: int
    ) -> list[api.ProposalEvent | api.ProposalRejectedEvent]:
        """Wait up to ``timeout`` s for at least one negotiation event; 404 once the demand ended."""
        record = self._live_demand(subscription_id)
        if not record.events and timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout, MAX_WAIT_SECONDS)):
                    await record.wakeup.wait()
        taken = [record.events.popleft() for _ in range(min(max_events, len(record.events)))]
        if not record.events and not record.ended:
            record.wakeup.clear()
        return taken

    def get_proposal(self, subscription_id: str, proposal_id: str) -> api.Proposal:
        return self._proposal(self._live_demand(subscription_id), proposal_id).proposal

    async def counter_proposal(
        self, subscription_id: str, proposal_id: str, body: api.DemandOfferBase
    ) -> str:
        record = self._live_demand(subscription_id)
        prev = self._proposal(record, proposal_id)
        if prev.ours:
            raise BadRequestError(
                f"proposal {proposal_id} is our own; only the other party's can be countered"
            )
        if prev.countered:
            raise GoneError(f"proposal {proposal_id} was already countered")
        if prev.proposal.state not in (api.ProposalState.INITIAL, api.ProposalState.DRAFT):
            raise GoneError(f"proposal {proposal_id} is {prev.proposal.state.value}; it cannot be countered")
        properties = _flat(body.properties)
        new_id = await self._client.counter_proposal(
            subscription_id, proposal_id, properties, body.constraints
        )
        prev.countered = True
        ours = api.Proposal(
            properties=properties,
            constraints=body.constraints,
            proposal_id=new_id,
            issuer_id=self.node_id,
            state=api.ProposalState.DRAFT,
            timestamp=self._clock.now(),
            prev_proposal_id=proposal_id,
        )
        record.proposals[new_id] = _ProposalRecord(ours, ours=True)
        self._proposal_subscription[new_id] = subscription_id
        return new_id

    async def reject_proposal(
        self, subscription_id: str, proposal_id: str, reason: api.Reason | None
    ) -> None:
        record = self._live_demand(subscription_id)
        prev = self._proposal(record, proposal_id)
        if prev.ours:
            raise BadRequestError(f"proposal {proposal_id} is our own; it cannot be rejected")
        await self._client.reject_proposal(
            subscription_id, proposal_id, reason.to_wire() if reason is not None else None
        )
        prev.proposal.state = api.ProposalState.REJECTED

    # -- agreements ----------------------------------------------------------------------------------

    async def create_agreement(self, body: api.AgreementProposal) -> str:
        sub_id = self._proposal_subscription.get(body.proposal_id)
        record = self._demands.get(sub_id) if sub_id is not None else None
        if record is None or sub_id is None:
            raise NotFoundError(f"no proposal {body.proposal_id}")
        proposal = self._proposal(record, body.proposal_id)
        if proposal.ours:
            raise BadRequestError("an agreement is made from the provider's proposal, not our own")
        if proposal.proposal.state is api.ProposalState.INITIAL:
            raise BadRequestError("no negotiation took place: the proposal is Initial; counter it first")
        if proposal.countered:
            raise BadRequestError(f"proposal {body.proposal_id} was already countered")
        if body.valid_to.tzinfo is None:
            raise BadRequestError("validTo needs a timezone")
        agreement = await self._client.create_agreement(body.proposal_id, body.valid_to)
        proposal.proposal.state = api.ProposalState.ACCEPTED
        self._agreements[agreement.agreement_id] = _AgreementRecord(agreement)
        self._persist(agreement.agreement_id)
        log.info("agreement %s created with %s", agreement.agreement_id, agreement.offer.provider_id)
        return agreement.agreement_id

    def agreement(self, agreement_id: str) -> Agreement:
        """The domain record of an agreement this node is party to; for the activity/payment parts."""
        return self._record(agreement_id).agreement

    def authorize_provider(self, node_id: NodeId, token: str) -> bool:
        """The gftp share's authorizer: only a provider of an Approved agreement with us may fetch
        or upload files (``token`` does not matter: published files are not tied to one agreement)."""
        node = node_id.lower()
        return any(
            r.agreement.state is AgreementState.APPROVED and r.agreement.offer.provider_id.lower() == node
            for r in self._agreements.values()
        )

    def get_agreement(self, agreement_id: str) -> api.Agreement:
        return _api_agreement(self._record(agreement_id).agreement)

    def list_agreements(
        self,
        state: api.AgreementState | None = None,
        before: datetime | None = None,
        after: datetime | None = None,
    ) -> list[api.AgreementListEntry]:
        out = []
        for record in sorted(self._agreements.values(), key=lambda r: r.agreement.timestamp):
            a = record.agreement
            if state is not None and a.state.value != state.value:
                continue
            if before is not None and a.timestamp >= before:
                continue
            if after is not None and a.timestamp <= after:
                continue
            out.append(
                api.AgreementListEntry(
                    id=a.agreement_id,
                    timestamp=a.timestamp,
                    approved_date=a.approved_date,
                    role=api.Role.REQUESTOR,
                )
            )
        return out

    async def confirm_agreement(self, agreement_id: str) -> None:
        """Sign the agreement and send it to the provider (Proposal → Pending)."""
        record = self._record(agreement_id)
        _require(record.agreement, AgreementState.PROPOSAL, "confirmed")
        await self._client.confirm_agreement(record.agreement)
        # The client signed exactly this text; ECDSA here is deterministic (RFC 6979), so this
        # reproduces the signature the market node stored, for our own records.
        record.agreement.proposed_signature = self._client.identity.sign_text(
            agreement_signing_text(record.agreement)
        )
        if record.agreement.state is AgreementState.PROPOSAL:
            record.agreement.state = AgreementState.PENDING
        self._persist(agreement_id)
        self._notify()

    async def wait_for_approval(self, agreement_id: str, timeout: float) -> None:
        """Return once Approved; GoneError naming a final state; ApprovalTimeoutError after ``timeout``."""
        record = self._record(agreement_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
        while True:
            state = record.agreement.state
            if state is AgreementState.APPROVED:
                return
            if state in FINAL_STATES:
                raise GoneError(f"agreement {agreement_id} is {state.value}")
            if state is AgreementState.PROPOSAL:
                raise ConflictError(f"agreement {agreement_id} is still a Proposal; confirm it first")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApprovalTimeoutError(f"agreement {agreement_id} was not approved within {timeout}s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    async def cancel_agreement(self, agreement_id: str, reason: api.Reason | None) -> None:
        record = self._record(agreement_id)
        state = record.agreement.state
        if state not in (AgreementState.PROPOSAL, AgreementState.PENDING):
            raise (GoneError if state in FINAL_STATES else ConflictError)(
                f"agreement {agreement_id} is {state.value}; it cannot be cancelled"
            )
        raw = reason.to_wire() if reason is not None else None
        await self._client.cancel_agreement(agreement_id, raw)
        self._apply(
            record,
            AgreementState.CANCELLED,
            api.AgreementCancelledEvent(
                event_date=self._event_date(), agreement_id=agreement_id, reason=_reason(raw)
            ),
        )

    async def terminate_agreement(self, agreement_id: str, reason: api.Reason | None) -> None:
        """End an Approved agreement, sending our signed termination through the market node."""
        record = self._record(agreement_id)
        _require(record.agreement, AgreementState.APPROVED, "terminated")
        raw = reason.to_wire() if reason is not None else None
        await self._client.terminate_agreement(record.agreement, raw)
        signature = self._client.identity.sign_text(
            termination_signing_text(agreement_id, Party.REQUESTOR, raw)
        )
        record.termination_reason = raw or {"message": ""}
        self._apply(
            record,
            AgreementState.TERMINATED,
            api.AgreementTerminatedEvent(
                event_date=self._event_date(),
                agreement_id=agreement_id,
                terminator=api.Role.REQUESTOR,
                signature=signature,
                reason=_reason(raw),
            ),
        )

    def termination_reason(self, agreement_id: str) -> api.Reason:
        record = self._record(agreement_id)
        if record.agreement.state is not AgreementState.TERMINATED:
            raise ConflictError(f"agreement {agreement_id} is {record.agreement.state.value}, not Terminated")
        reason = _reason(record.termination_reason)
        return reason if reason is not None else api.Reason(message="")

    async def collect_agreement_events(
        self, after: datetime | None, timeout: float, max_events: int
    ) -> Sequence[FeedEvent]:
        """Agreement state changes strictly after ``after``, waiting up to ``timeout`` s for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
        while True:
            found = [e for e in self._feed if after is None or e.event_date > after]
            remaining = deadline - loop.time()
            if found or remaining <= 0:
                return found[:max_events]
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    # -- pumps ---------------------------------------------------------------------------------------

    async def _pump_demand(self, sub_id: str, record: _DemandRecord) -> None:
        while True:
            event = await self._client.next_event(sub_id)
            now = self._event_date()
            match event:
                case ProposalEvent():
                    p = event.proposal
                    proposal = api.Proposal(
                        properties=p.properties,
                        constraints=p.constraints,
                        proposal_id=p.proposal_id,
                        issuer_id=p.issuer_id,
                        state=api.ProposalState(p.state.value),
                        timestamp=p.timestamp,
                        prev_proposal_id=p.prev_proposal_id,
                    )
                    record.proposals[p.proposal_id] = _ProposalRecord(proposal, ours=False)
                    self._proposal_subscription[p.proposal_id] = sub_id
                    record.events.append(api.ProposalEvent(event_date=now, proposal=proposal))
                case ProposalRejectedEvent():
                    rejected = record.proposals.get(event.proposal_id)
                    if rejected is not None:
                        rejected.proposal.state = api.ProposalState.REJECTED
                    record.events.append(
                        api.ProposalRejectedEvent(
                            event_date=now, proposal_id=event.proposal_id, reason=_reason(event.reason)
                        )
                    )
                case SubscriptionExpiredEvent():
                    log.info("demand %s expired", sub_id)
                    self._end_demand(record, cancel_pump=False)
                    return
            record.wakeup.set()

    async def _pump_agreements(self) -> None:
        while True:
            event = await self._client.next_agreement_event()
            try:
                self._on_agreement_event(event)
            except Exception:  # one bad event must not stop the feed
                log.exception("cannot apply %s", event.event_type)

    def _on_agreement_event(self, event: AgreementEvent) -> None:
        incoming = event.agreement
        if incoming.demand.requestor_id != self.node_id:
            return  # provider-side events are the provider daemon's business
        record = self._agreements.get(incoming.agreement_id)
        if record is None:  # not created through this service (another process on this identity)
            record = _AgreementRecord(incoming.model_copy(deep=True))
            self._agreements[incoming.agreement_id] = record
            self._persist(incoming.agreement_id)
        agreement_id = incoming.agreement_id
        date = self._event_date()
        reason = _reason(event.reason)
        match event.event_type:
            case AgreementEventType.APPROVED:
                record.agreement.approved_signature = incoming.approved_signature
                record.agreement.approved_date = incoming.approved_date
                self._apply(
                    record,
                    AgreementState.APPROVED,
                    api.AgreementApprovedEvent(event_date=date, agreement_id=agreement_id),
                )
            case AgreementEventType.REJECTED:
                self._apply(
                    record,
                    AgreementState.REJECTED,
                    api.AgreementRejectedEvent(event_date=date, agreement_id=agreement_id, reason=reason),
                )
            case AgreementEventType.CANCELLED:
                self._apply(
                    record,
                    AgreementState.CANCELLED,
                    api.AgreementCancelledEvent(event_date=date, agreement_id=agreement_id, reason=reason),
                )
            case AgreementEventType.EXPIRED:
                # ya_market's feed knows no expiry event; the state change is still recorded.
                self._apply(record, AgreementState.EXPIRED, None)
            case AgreementEventType.TERMINATED:
                if record.agreement.state is not AgreementState.TERMINATED:
                    record.termination_reason = event.reason or {"message": ""}
                self._apply(
                    record,
                    AgreementState.TERMINATED,
                    api.AgreementTerminatedEvent(
                        event_date=date,
                        agreement_id=agreement_id,
                        terminator=api.Role(event.terminator.value if event.terminator else "Provider"),
                        signature=event.signature or "",
                        reason=reason,
                    ),
                )
            case _:
                pass

    # -- internals -----------------------------------------------------------------------------------

    def _apply(
        self,
        record: _AgreementRecord,
        state: AgreementState,
        feed_event: FeedEvent | None,
    ) -> None:
        """Move an agreement to ``state`` once: a repeated or stale notice changes nothing."""
        current = record.agreement.state
        if current is state or current in FINAL_STATES:
            return
        record.agreement.state = state
        self._persist(record.agreement.agreement_id)
        if feed_event is not None:
            self._db.execute(
                "INSERT INTO agreement_events (agreement_id, event_date, json) VALUES (?, ?, ?)",
                (
                    feed_event.agreement_id,
                    feed_event.event_date.isoformat(),
                    feed_event.model_dump_json(by_alias=True, exclude_none=True),
                ),
            )
            self._feed.append(feed_event)
        log.info("agreement %s is %s", record.agreement.agreement_id, state.value)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _event_date(self) -> datetime:
        # Strictly increasing, so "strictly after the last eventDate seen" never skips or repeats.
        now = self._clock.now()
        if self._last_event_date is not None and now <= self._last_event_date:
            now = self._last_event_date + timedelta(microseconds=1)
        self._last_event_date = now
        return now

    def _persist(self, agreement_id: str) -> None:
        record = self._agreements[agreement_id]
        a = record.agreement
        self._db.execute(
            "INSERT INTO agreements (agreement_id, provider_id, state, proposed_signature, "
            "approved_signature, termination_reason, json, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (agreement_id) DO UPDATE SET state = excluded.state, "
            "proposed_signature = excluded.proposed_signature, "
            "approved_signature = excluded.approved_signature, "
            "termination_reason = excluded.termination_reason, json = excluded.json, "
            "updated = excluded.updated",
            (
                agreement_id,
                a.offer.provider_id,
                a.state.value,
                a.proposed_signature,
                a.approved_signature,
                json.dumps(record.termination_reason) if record.termination_reason is not None else None,
                a.model_dump_json(by_alias=True),
                self._clock.now().isoformat(),
            ),
        )

    def _live_demand(self, subscription_id: str) -> _DemandRecord:
        record = self._demands.get(subscription_id)
        if record is None or record.ended:
            raise NotFoundError(f"no live demand {subscription_id}")
        return record

    @staticmethod
    def _proposal(record: _DemandRecord, proposal_id: str) -> _ProposalRecord:
        proposal = record.proposals.get(proposal_id)
        if proposal is None:
            raise NotFoundError(f"no proposal {proposal_id} on demand {record.demand.demand_id}")
        return proposal

    def _record(self, agreement_id: str) -> _AgreementRecord:
        record = self._agreements.get(agreement_id)
        if record is None:
            raise NotFoundError(f"no agreement {agreement_id}")
        return record

    def _end_demand(self, record: _DemandRecord, *, cancel_pump: bool = True) -> None:
        record.ended = True
        record.events.clear()
        record.wakeup.set()
        for proposal_id in record.proposals:
            self._proposal_subscription.pop(proposal_id, None)
        record.proposals.clear()
        if cancel_pump and record.pump is not None:
            record.pump.cancel()


def _flat(properties: dict[str, Any]) -> dict[str, Any]:
    try:
        return flatten(properties)
    except PropertyError as exc:
        raise BadRequestError(f"invalid properties: {exc}") from exc


def _require(agreement: Agreement, state: AgreementState, verb: str) -> None:
    if agreement.state is not state:
        error = GoneError if agreement.state in FINAL_STATES else ConflictError
        raise error(f"agreement {agreement.agreement_id} is {agreement.state.value}; it cannot be {verb}")


def _api_agreement(a: Agreement) -> api.Agreement:
    return api.Agreement(
        agreement_id=a.agreement_id,
        demand=api.Demand(
            properties=a.demand.properties,
            constraints=a.demand.constraints,
            demand_id=a.demand.demand_id,
            requestor_id=a.demand.requestor_id,
            timestamp=a.demand.timestamp,
        ),
        offer=api.Offer(
            properties=a.offer.properties,
            constraints=a.offer.constraints,
            offer_id=a.offer.offer_id,
            provider_id=a.offer.provider_id,
            timestamp=a.offer.timestamp,
        ),
        valid_to=a.valid_to,
        approved_date=a.approved_date,
        state=api.AgreementState(a.state.value),
        timestamp=a.timestamp,
        proposed_signature=a.proposed_signature,
        approved_signature=a.approved_signature,
    )
