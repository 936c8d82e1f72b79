"""The daemon side of the market protocol.

:class:`MarketClient` keeps one authenticated WebSocket to a market node alive: it dials out (so a
node behind NAT works), answers the challenge with its key, and after any drop reconnects with
capped exponential backoff, re-publishes its live subscriptions under the same ids and re-publishes
the approved agreements it is party to. Requests are correlated with replies and raise the typed
:mod:`market.protocol.errors`; events arrive on per-subscription queues, one agreement queue and
relay queues. The provider and requestor daemons build on this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from market.core.clock import Clock, SystemClock
from market.core.errors import SignatureError
from market.core.identity import Identity, verify_signature
from market.core.ids import NodeId, new_id
from market.protocol.errors import (
    MarketError,
    MarketTimeoutError,
    MarketUnavailableError,
    UnauthorizedError,
    error_for_code,
)
from market.protocol.messages import (
    Agreement,
    AgreementEvent,
    AgreementEventType,
    AgreementState,
    ApproveAgreement,
    CancelAgreement,
    Challenge,
    ConfirmAgreement,
    CounterProposal,
    CreateAgreement,
    ErrorReply,
    Hello,
    Party,
    Ping,
    ProposalEvent,
    ProposalRejectedEvent,
    RejectAgreement,
    RejectProposal,
    Relay,
    RelayMessage,
    Reply,
    RestoreAgreement,
    SubscribeDemand,
    SubscribeOffer,
    SubscriptionExpiredEvent,
    TerminateAgreement,
    Unsubscribe,
    Welcome,
    encode,
    pack_binary,
    server_message_adapter,
    session_challenge_text,
    unpack_binary,
)
from market.protocol.signing import agreement_signing_text, termination_signing_text

log = logging.getLogger(__name__)

SubscriptionEvent = ProposalEvent | ProposalRejectedEvent | SubscriptionExpiredEvent


class BinaryMessage:
    """A relayed binary frame: the verified sender, the header's channel and the bytes."""

    __slots__ = ("body", "channel", "header", "sender")

    def __init__(self, sender: NodeId, header: dict[str, Any], body: bytes) -> None:
        self.sender = sender
        self.header = header
        self.channel = str(header.get("channel", ""))
        self.body = body


def verify_agreement(agreement: Agreement) -> None:
    """Check the signatures an agreement carries against its parties' ids; raise SignatureError."""
    text = agreement_signing_text(agreement)
    if agreement.proposed_signature is None:
        raise SignatureError("agreement carries no requestor signature")
    verify_signature(text, agreement.proposed_signature, NodeId(agreement.demand.requestor_id))
    if agreement.approved_signature is not None:
        verify_signature(text, agreement.approved_signature, NodeId(agreement.offer.provider_id))


def verify_termination(event: AgreementEvent) -> None:
    """Check that a termination was signed by the party it names as the terminator."""
    if event.terminator is None or event.signature is None:
        raise SignatureError("termination carries no terminator or signature")
    agreement = event.agreement
    signer = (
        agreement.demand.requestor_id if event.terminator is Party.REQUESTOR else agreement.offer.provider_id
    )
    text = termination_signing_text(agreement.agreement_id, event.terminator, event.reason)
    verify_signature(text, event.signature, NodeId(signer))


class MarketClient:
    """One node's session with a market node; see the module docstring."""

    def __init__(
        self,
        url: str,
        identity: Identity,
        name: str = "",
        *,
        request_timeout: float = 10.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.identity = identity
        self.node_id = identity.node_id
        self.name = name
        self.request_timeout = request_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock = clock or SystemClock()
        self.session_count = 0  # sessions opened so far; tests and status views read it
        self.agreement_events: asyncio.Queue[AgreementEvent] = asyncio.Queue()
        self.relay_messages: asyncio.Queue[RelayMessage] = asyncio.Queue()
        self.binary_messages: asyncio.Queue[BinaryMessage] = asyncio.Queue()
        self._subscription_events: defaultdict[str, asyncio.Queue[SubscriptionEvent]] = defaultdict(
            asyncio.Queue
        )
        self._subscriptions: dict[str, SubscribeOffer | SubscribeDemand] = {}
        self._agreements: dict[str, Agreement] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ready = asyncio.Event()
        self._fatal: MarketError | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; idempotent. Use :meth:`wait_ready` to wait."""
        if self._loop_task is not None:
            return
        self._http = aiohttp.ClientSession()
        self._loop_task = asyncio.create_task(self._connection_loop(), name=f"market-client-{self.node_id}")

    async def connect(self, timeout: float = 10.0) -> None:
        """Start and wait for the first authenticated, re-published session."""
        await self.start()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not self._ready.is_set():
                    if self._fatal is not None:
                        raise self._fatal
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await self._ready.wait()
        except TimeoutError:
            raise MarketUnavailableError(
                f"no session with the market node at {self.url} within {timeout}s"
            ) from None

    async def close(self) -> None:
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> MarketClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- subscriptions and proposals -----------------------------------------------------------------

    async def subscribe_offer(
        self, properties: dict[str, Any], constraints: str, expiration: datetime
    ) -> str:
        return await self._subscribe(
            SubscribeOffer(
                subscription_id=new_id(),
                properties=properties,
                constraints=constraints,
                expiration=expiration,
            )
        )

    async def subscribe_demand(
        self, properties: dict[str, Any], constraints: str, expiration: datetime
    ) -> str:
        return await self._subscribe(
            SubscribeDemand(
                subscription_id=new_id(),
                properties=properties,
                constraints=constraints,
                expiration=expiration,
            )
        )

    async def _subscribe(self, request: SubscribeOffer | SubscribeDemand) -> str:
        assert request.subscription_id is not None
        self._subscription_events[request.subscription_id]  # create the queue before events can arrive
        try:
            result = await self._request(request)
        except BaseException:
            self._subscription_events.pop(request.subscription_id, None)
            raise
        self._subscriptions[request.subscription_id] = request
        return str(result["subscriptionId"])

    async def unsubscribe(self, subscription_id: str) -> None:
        self._subscriptions.pop(subscription_id, None)
        try:
            await self._request(Unsubscribe(subscription_id=subscription_id))
        finally:
            self._subscription_events.pop(subscription_id, None)

    async def next_event(self, subscription_id: str, timeout: float | None = None) -> SubscriptionEvent:
        """The next proposal event on one of our subscriptions."""
        queue = self._subscription_events[subscription_id]
        async with asyncio.timeout(timeout):
            return await queue.get()

    async def events(self, subscription_id: str) -> AsyncIterator[SubscriptionEvent]:
        while True:
            yield await self.next_event(subscription_id)

    async def counter_proposal(
        self, subscription_id: str, prev_proposal_id: str, properties: dict[str, Any], constraints: str
    ) -> str:
        result = await self._request(
            CounterProposal(
                subscription_id=subscription_id,
                prev_proposal_id=prev_proposal_id,
                properties=properties,
                constraints=constraints,
            )
        )
        return str(result["proposalId"])

    async def reject_proposal(
        self, subscription_id: str, proposal_id: str, reason: dict[str, Any] | None = None
    ) -> None:
        await self._request(
            RejectProposal(subscription_id=subscription_id, proposal_id=proposal_id, reason=reason)
        )

    # -- agreements ----------------------------------------------------------------------------------

    async def create_agreement(self, proposal_id: str, valid_to: datetime) -> Agreement:
        result = await self._request(CreateAgreement(proposal_id=proposal_id, valid_to=valid_to))
        return Agreement.model_validate(result["agreement"])

    async def confirm_agreement(self, agreement: Agreement) -> None:
        """Sign the agreement as its requestor and send it to the provider."""
        signature = self.identity.sign_text(agreement_signing_text(agreement))
        await self._request(ConfirmAgreement(agreement_id=agreement.agreement_id, signature=signature))

    async def approve_agreement(self, agreement: Agreement) -> None:
        """Check the requestor's signature, then counter-sign as the provider."""
        verify_agreement(agreement)
        signature = self.identity.sign_text(agreement_signing_text(agreement))
        await self._request(ApproveAgreement(agreement_id=agreement.agreement_id, signature=signature))

    async def reject_agreement(self, agreement_id: str, reason: dict[str, Any] | None = None) -> None:
        await self._request(RejectAgreement(agreement_id=agreement_id, reason=reason))

    async def cancel_agreement(self, agreement_id: str, reason: dict[str, Any] | None = None) -> None:
        await self._request(CancelAgreement(agreement_id=agreement_id, reason=reason))

    async def terminate_agreement(self, agreement: Agreement, reason: dict[str, Any] | None = None) -> None:
        party = Party.REQUESTOR if agreement.demand.requestor_id == self.node_id else Party.PROVIDER
        signature = self.identity.sign_text(termination_signing_text(agreement.agreement_id, party, reason))
        await self._request(
            TerminateAgreement(agreement_id=agreement.agreement_id, reason=reason, signature=signature)
        )

    async def restore_agreements(self, agreements: Iterable[Agreement]) -> None:
        """Take back Approved agreements this node signed before a restart of its own.

        They are re-published with every new session, like the ones approved in this session, so
        the market node keeps them (also across its own restart) and relays for them. Agreements in
        another state are ignored. Call before :meth:`start`; on a live session they are sent at once.
        """
        fresh = []
        for agreement in agreements:
            if agreement.state is AgreementState.APPROVED and agreement.agreement_id not in self._agreements:
                self._agreements[agreement.agreement_id] = agreement
                fresh.append(agreement)
        if not self.ready:
            return  # the next session's set-up re-publishes them
        for agreement in fresh:
            try:
                await self._request(RestoreAgreement(agreement=agreement))
            except MarketError as exc:
                log.warning("could not restore agreement %s: %s", agreement.agreement_id, exc)

    async def next_agreement_event(self, timeout: float | None = None) -> AgreementEvent:
        async with asyncio.timeout(timeout):
            return await self.agreement_events.get()

    # -- relay ---------------------------------------------------------------------------------------

    async def send(self, to: str, payload: Any) -> None:
        """Relay a JSON payload to another node; the market node vouches for our id as the sender."""
        await self._request(Relay(to=to, payload=payload))

    async def send_bytes(self, to: str, body: bytes, channel: str = "") -> None:
        """Relay raw bytes (file chunks). Fire-and-forget at the protocol level: errors come back
        as error frames without correlation and are logged."""
        ws = await self._live_ws()
        await ws.send_bytes(pack_binary({"to": to, "channel": channel, "id": new_id()}, body))

    async def ping(self) -> None:
        await self._request(Ping())

    # -- request/reply -------------------------------------------------------------------------------

    async def _live_ws(self, *, setup: bool = False) -> aiohttp.ClientWebSocketResponse:
        if not setup:
            await self.wait_ready(self.request_timeout)
        if self._ws is None or self._ws.closed:
            raise MarketUnavailableError("no session with the market node")
        return self._ws

    async def _request(self, message: Any, *, setup: bool = False) -> dict[str, Any]:
        ws = await self._live_ws(setup=setup)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        try:
            await ws.send_str(encode(message))
            async with asyncio.timeout(self.request_timeout):
                return await future
        except TimeoutError:
            raise MarketTimeoutError(f"no reply to {message.type} within {self.request_timeout}s") from None
        except ConnectionError as exc:
            raise MarketUnavailableError(f"connection lost: {exc}") from exc
        finally:
            self._pending.pop(message.id, None)

    # -- the connection loop -------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        delay = self.backoff_initial
        while not self._closing:
            try:
                await self._run_session()
                delay = self.backoff_initial
            except UnauthorizedError as exc:
                # A key the market node refuses will be refused again: stop and say why.
                log.error("market node refused our session: %s", exc)
                self._fatal = exc
                return
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, MarketError) as exc:
                log.info("market session to %s failed: %s; retrying in %.2fs", self.url, exc, delay)
            finally:
                self._ready.clear()
                self._ws = None
                self._fail_pending(MarketUnavailableError("connection to the market node lost"))
            if self._closing:
                return
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.backoff_max)

    async def _run_session(self) -> None:
        assert self._http is not None
        async with self._http.ws_connect(self.url, heartbeat=20.0, max_msg_size=0) as ws:
            challenge = server_message_adapter.validate_json(await ws.receive_str(timeout=10))
            if not isinstance(challenge, Challenge):
                raise ValueError(f"expected a challenge, got {challenge.type}")
            signature = self.identity.sign_text(session_challenge_text(challenge.nonce))
            await ws.send_str(encode(Hello(node_id=self.node_id, name=self.name, signature=signature)))
            answer = server_message_adapter.validate_json(await ws.receive_str(timeout=10))
            if isinstance(answer, ErrorReply):
                raise error_for_code(answer.code, answer.message)
            if not isinstance(answer, Welcome):
                raise ValueError(f"expected welcome, got {answer.type}")
            self._ws = ws
            self.session_count += 1
            log.info("market session %s open as %s", answer.session_id, self.node_id)
            setup = asyncio.create_task(self._republish(), name="market-republish")
            self._tasks.add(setup)
            setup.add_done_callback(self._tasks.discard)
            try:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        self._on_text(msg.data)
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        self._on_binary(msg.data)
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        break
            finally:
                setup.cancel()
            log.info("market session closed (%s)", ws.close_code)

    async def _republish(self) -> None:
        """Bring the market node's view of us back after a new session, then mark us ready."""
        now = self.clock.now()
        for sub_id, request in list(self._subscriptions.items()):
            if request.expiration <= now:
                self._subscriptions.pop(sub_id, None)
                continue
            try:
                await self._request(request.model_copy(update={"id": new_id()}), setup=True)
            except MarketError as exc:
                log.warning("could not re-publish subscription %s: %s", sub_id, exc)
        for agreement in list(self._agreements.values()):
            try:
                await self._request(RestoreAgreement(agreement=agreement), setup=True)
            except MarketError as exc:
                log.warning("could not restore agreement %s: %s", agreement.agreement_id, exc)
        self._ready.set()

    def _fail_pending(self, error: MarketError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # -- incoming frames -----------------------------------------------------------------------------

    def _on_text(self, data: str) -> None:
        try:
            message = server_message_adapter.validate_json(data)
        except ValidationError as exc:
            log.warning("ignoring a malformed frame from the market node: %s", exc.errors()[0]["msg"])
            return
        match message:
            case Reply():
                self._resolve(message.corr, message.result, None)
            case ErrorReply():
                error = error_for_code(message.code, message.message)
                if message.corr is None or not self._resolve(message.corr, None, error):
                    log.warning("market node reported: %s", error)
            case ProposalEvent() | ProposalRejectedEvent() | SubscriptionExpiredEvent():
                if isinstance(message, SubscriptionExpiredEvent):
                    self._subscriptions.pop(message.subscription_id, None)
                if message.subscription_id in self._subscription_events:
                    self._subscription_events[message.subscription_id].put_nowait(message)
            case AgreementEvent():
                self._on_agreement_event(message)
            case RelayMessage():
                self.relay_messages.put_nowait(message)
            case _:
                log.warning("unexpected %s frame from the market node", message.type)

    def _resolve(self, corr: str, result: dict[str, Any] | None, error: MarketError | None) -> bool:
        future = self._pending.get(corr)
        if future is None or future.done():
            return False
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or {})
        return True

    def _on_agreement_event(self, event: AgreementEvent) -> None:
        agreement = event.agreement
        if event.event_type in (AgreementEventType.PROPOSED, AgreementEventType.APPROVED):
            try:
                verify_agreement(agreement)
            except SignatureError as exc:
                log.error("dropping %s for %s: %s", event.event_type, agreement.agreement_id, exc)
                return
        if event.event_type is AgreementEventType.TERMINATED:
            try:
                verify_termination(event)
            except SignatureError as exc:
                log.error("dropping a termination of %s: %s", agreement.agreement_id, exc)
                return
        if event.event_type is AgreementEventType.APPROVED:
            self._agreements[agreement.agreement_id] = agreement
        elif event.event_type is AgreementEventType.TERMINATED:
            self._agreements.pop(agreement.agreement_id, None)
        self.agreement_events.put_nowait(event)

    def _on_binary(self, data: bytes) -> None:
        try:
            header, body = unpack_binary(data)
        except ValueError as exc:
            log.warning("ignoring a malformed binary frame: %s", exc)
            return
        sender = header.get("from")
        if not isinstance(sender, str):
            log.warning("ignoring a binary frame without a sender")
            return
        self.binary_messages.put_nowait(BinaryMessage(NodeId(sender), header, body))
