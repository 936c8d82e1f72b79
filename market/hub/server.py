"""The market node process: WebSocket sessions around the pure :class:`~market.hub.market.Market`.

Each daemon holds one WebSocket on ``/ws``. The session opens with a signed challenge (the node id is
the recovered address), then every text frame is parsed into a request model, checked against the
session's rate limit, handed to the market, and answered; the effects the market returns are queued
to the sessions they address. Binary frames are relayed as they are, with the verified sender put
in their header. The REST API (``/market/v1``) and the web console (``/``) read the same market
object; the package registry (``/packages``, ``/v1/image/info``) sits beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel, Field, SecretStr, ValidationError

from market.core.clock import Clock, SystemClock
from market.core.config import data_dir
from market.core.errors import SignatureError
from market.core.identity import recover_signer
from market.core.ids import NodeId, node_id
from market.core.logging import correlated
from market.core.wire import WireModel
from market.hub.market import Deliver, Limits, Market, SubscriptionKind
from market.hub.registry import PackageRegistry
from market.protocol.errors import (
    BadRequestError,
    FrameTooLargeError,
    MarketError,
    NodeNotConnectedError,
    RateLimitedError,
)
from market.protocol.messages import (
    ApproveAgreement,
    CancelAgreement,
    Challenge,
    ConfirmAgreement,
    CounterProposal,
    CreateAgreement,
    ErrorReply,
    Hello,
    Ping,
    RejectAgreement,
    RejectProposal,
    Relay,
    RelayMessage,
    Reply,
    RestoreAgreement,
    SubscribeDemand,
    SubscribeOffer,
    TerminateAgreement,
    Unsubscribe,
    Welcome,
    client_request_adapter,
    encode,
    pack_binary,
    session_challenge_text,
    unpack_binary,
)
from market.protocol.messages import Limits as WireLimits

log = logging.getLogger(__name__)

# Close codes in the private range (4000-4999), so a client can tell why it was dropped.
CLOSE_AUTH_FAILED = 4001
CLOSE_REPLACED = 4002
CLOSE_TOO_SLOW = 4003


class MarketNodeConfig(BaseModel):
    """Settings of ``golem market serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=7470, ge=0, le=65535)
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_subscriptions_per_node: int = Field(default=100, ge=1)
    max_messages_per_second: float = Field(default=1000.0, gt=0)
    rate_burst: int = Field(default=2000, ge=1)
    hello_timeout: float = Field(default=10.0, gt=0)
    sweep_interval: float = Field(default=1.0, gt=0)
    send_queue_limit: int = Field(default=10_000, ge=10)
    data_dir: Path | None = None
    """Where the package registry keeps its files (``<data_dir>/packages``); default
    ``$GOLEM_DATA_DIR/market``. Nothing is written there until the first upload."""
    upload_token: SecretStr | None = None
    """Required (as ``Authorization: Bearer``) for package uploads; unset: uploads from loopback only."""
    max_package_bytes: int = Field(default=2 * 1024**3, ge=1)
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+(/\S*)?$")
    """How providers reach this node (``https://market.example.org``), for the registry's download
    URLs; unset: the scheme and ``Host`` of each request."""


@dataclass
class Session:
    node_id: NodeId
    name: str
    connected_since: datetime
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | bytes | None]
    tokens: float
    last_refill: float
    session_id: str = field(default_factory=lambda: secrets.token_hex(8))


class NodeInfo(WireModel):
    node_id: str
    name: str
    connected_since: datetime


class MarketNode:
    """A market node server; ``async with MarketNode(config) as node: ...`` or start()/close()."""

    def __init__(self, config: MarketNodeConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or MarketNodeConfig()
        self.clock = clock or SystemClock()
        self.market = Market(Limits(max_subscriptions_per_node=self.config.max_subscriptions_per_node))
        self.sessions: dict[NodeId, Session] = {}
        self.registry = PackageRegistry(
            (self.config.data_dir or data_dir() / "market") / "packages",
            max_package_bytes=self.config.max_package_bytes,
            clock=self.clock,
        )
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.port: int = self.config.port
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        from market.hub.api import build_api
        from market.hub.console import console_page
        from market.hub.registry_api import RegistrySettings, build_registry_apps

        app = web.Application()
        app.router.add_get("/ws", self._handle_ws)
        app.router.add_get("/", console_page)
        app.add_subapp("/market/v1", build_api(self))
        token = self.config.upload_token.get_secret_value() if self.config.upload_token else None
        settings = RegistrySettings(upload_token=token or None, public_url=self.config.public_url)
        for prefix, registry_app in build_registry_apps(self.registry, settings).items():
            app.add_subapp(prefix, registry_app)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        # aiohttp's own limit is a backstop well above ours: frames between the two get a typed
        # error and the session lives on; only absurd frames cost the connection.
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="market-sweeper")
        log.info("market node listening on %s", self.url)

    async def close(self) -> None:
        if self._runner is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in list(self.sessions.values()):
            await session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"market node shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._runner.cleanup()
        self._runner = None
        self.registry.close()

    async def __aenter__(self) -> MarketNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/ws"

    def nodes(self) -> list[NodeInfo]:
        return [
            NodeInfo(node_id=s.node_id, name=s.name, connected_since=s.connected_since)
            for s in self.sessions.values()
        ]

    # -- sessions ------------------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=20.0, max_msg_size=self.config.max_frame_bytes * 4, compress=False
        )
        await ws.prepare(request)
        session = await self._authenticate(ws)
        if session is None:
            return ws
        task = asyncio.current_task()
        assert task is not None
        writer = asyncio.create_task(self._write_loop(session), name=f"ws-writer-{session.node_id}")
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        try:
            with correlated(f"session:{session.session_id}"):
                await self._read_loop(session)
        finally:
            await session.queue.put(None)
            if self.sessions.get(session.node_id) is session:
                del self.sessions[session.node_id]
                self._dispatch(self.market.node_left(session.node_id))
                log.info("node %s (%s) disconnected", session.node_id, session.name)
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _authenticate(self, ws: web.WebSocketResponse) -> Session | None:
        nonce = secrets.token_hex(32)
        limits = WireLimits(
            max_frame_bytes=self.config.max_frame_bytes,
            max_subscriptions=self.config.max_subscriptions_per_node,
            max_messages_per_second=self.config.max_messages_per_second,
        )
        await ws.send_str(encode(Challenge(nonce=nonce, limits=limits)))
        try:
            msg = await ws.receive(timeout=self.config.hello_timeout)
        except TimeoutError:
            await self._refuse(ws, None, "no hello within the handshake timeout")
            return None
        if msg.type is not WSMsgType.TEXT:
            await self._refuse(ws, None, "expected a hello text frame")
            return None
        try:
            hello = Hello.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._refuse(ws, None, f"malformed hello: {_first_error(exc)}")
            return None
        try:
            claimed = node_id(hello.node_id)
            signer = recover_signer(session_challenge_text(nonce), hello.signature)
        except (ValueError, SignatureError) as exc:
            await self._refuse(ws, hello.id, f"bad hello: {exc}")
            return None
        if signer != claimed:
            await self._refuse(
                ws, hello.id, f"challenge was signed by {signer}, not by the claimed {claimed}"
            )
            return None
        previous = self.sessions.get(claimed)
        if previous is not None:
            await previous.ws.close(code=CLOSE_REPLACED, message=b"replaced by a newer session")
        session = Session(
            node_id=claimed,
            name=hello.name,
            connected_since=self.clock.now(),
            ws=ws,
            queue=asyncio.Queue(self.config.send_queue_limit),
            tokens=float(self.config.rate_burst),
            last_refill=self.clock.monotonic(),
        )
        self.sessions[claimed] = session
        await ws.send_str(encode(Welcome(session_id=session.session_id, node_id=claimed)))
        log.info("node %s (%s) connected", claimed, hello.name)
        return session

    async def _refuse(self, ws: web.WebSocketResponse, corr: str | None, message: str) -> None:
        log.warning("refused a session: %s", message)
        await ws.send_str(encode(ErrorReply(corr=corr, code="unauthorized", message=message)))
        await ws.close(code=CLOSE_AUTH_FAILED, message=b"authentication failed")

    async def _read_loop(self, session: Session) -> None:
        async for msg in session.ws:
            if msg.type is WSMsgType.TEXT:
                self._on_text(session, msg.data)
            elif msg.type is WSMsgType.BINARY:
                self._on_binary(session, msg.data)
            elif msg.type is WSMsgType.ERROR:
                log.warning("session %s ended with %s", session.node_id, session.ws.exception())
                return

    async def _write_loop(self, session: Session) -> None:
        while (item := await session.queue.get()) is not None:
            try:
                if isinstance(item, str):
                    await session.ws.send_str(item)
                else:
                    await session.ws.send_bytes(item)
            except (ConnectionError, RuntimeError):
                return

    def _send(self, session: Session, frame: str | bytes) -> None:
        try:
            session.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A node that does not read its events would make us buffer without bound.
            log.warning("node %s is not reading; dropping its session", session.node_id)
            task = asyncio.create_task(session.ws.close(code=CLOSE_TOO_SLOW, message=b"send queue full"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _dispatch(self, effects: list[Deliver]) -> None:
        for effect in effects:
            target = self.sessions.get(effect.node)
            if target is not None:
                self._send(target, encode(effect.event))

    def _rate_ok(self, session: Session) -> bool:
        now = self.clock.monotonic()
        session.tokens = min(
            float(self.config.rate_burst),
            session.tokens + (now - session.last_refill) * self.config.max_messages_per_second,
        )
        session.last_refill = now
        if session.tokens < 1.0:
            return False
        session.tokens -= 1.0
        return True

    # -- text frames ---------------------------------------------------------------------------------

    def _on_text(self, session: Session, data: str) -> None:
        corr = _peek_id(data)
        try:
            if len(data.encode()) > self.config.max_frame_bytes:
                raise FrameTooLargeError(
                    f"frame of {len(data.encode())} bytes exceeds the limit of {self.config.max_frame_bytes}"
                )
            if not self._rate_ok(session):
                raise RateLimitedError(
                    f"more than {self.config.max_messages_per_second:g} messages per second; message dropped"
                )
            try:
                request = client_request_adapter.validate_json(data)
            except ValidationError as exc:
                raise BadRequestError(f"malformed message: {_first_error(exc)}") from exc
            with correlated(f"{session.session_id}:{request.id}"):
                result = self._handle(session, request)
            self._send(session, encode(Reply(corr=request.id, result=result)))
        except MarketError as exc:
            self._send(session, encode(ErrorReply(corr=corr, code=exc.code.value, message=str(exc))))
        except Exception:
            log.exception("internal error handling a message from %s", session.node_id)
            self._send(session, encode(ErrorReply(corr=corr, code="internal", message="internal error")))

    def _handle(self, session: Session, request: Any) -> dict[str, Any]:
        market, me, now, mono = self.market, session.node_id, self.clock.now(), self.clock.monotonic()
        match request:
            case SubscribeOffer() | SubscribeDemand():
                kind = (
                    SubscriptionKind.OFFER if isinstance(request, SubscribeOffer) else SubscriptionKind.DEMAND
                )
                sub_id, effects = market.subscribe(
                    me,
                    kind,
                    request.properties,
                    request.constraints,
                    request.expiration,
                    now,
                    mono,
                    request.subscription_id,
                )
                self._dispatch(effects)
                return {"subscriptionId": sub_id}
            case Unsubscribe():
                self._dispatch(market.unsubscribe(me, request.subscription_id))
            case CounterProposal():
                proposal_id, effects = market.counter_proposal(
                    me,
                    request.subscription_id,
                    request.prev_proposal_id,
                    request.properties,
                    request.constraints,
                    now,
                )
                self._dispatch(effects)
                return {"proposalId": proposal_id}
            case RejectProposal():
                self._dispatch(
                    market.reject_proposal(me, request.subscription_id, request.proposal_id, request.reason)
                )
            case CreateAgreement():
                agreement = market.create_agreement(me, request.proposal_id, request.valid_to, now)
                return {"agreement": agreement.to_wire()}
            case ConfirmAgreement():
                self._dispatch(market.confirm_agreement(me, request.agreement_id, request.signature))
            case ApproveAgreement():
                self._dispatch(
                    market.approve_agreement(me, request.agreement_id, request.signature, now, mono)
                )
            case RejectAgreement():
                self._dispatch(market.reject_agreement(me, request.agreement_id, request.reason, now))
            case CancelAgreement():
                self._dispatch(market.cancel_agreement(me, request.agreement_id, request.reason, now))
            case TerminateAgreement():
                self._dispatch(
                    market.terminate_agreement(
                        me, request.agreement_id, request.reason, request.signature, now
                    )
                )
            case RestoreAgreement():
                market.restore_agreement(me, request.agreement, mono)
            case Relay():
                target = self.sessions.get(NodeId(request.to.lower()))
                if target is None:
                    raise NodeNotConnectedError(f"node {request.to} is not connected to this market node")
                message = RelayMessage.model_validate({"from": me, "payload": request.payload})
                self._send(target, encode(message))
            case Ping():
                pass
        return {}

    # -- binary frames -------------------------------------------------------------------------------

    def _on_binary(self, session: Session, data: bytes) -> None:
        corr: str | None = None
        try:
            if len(data) > self.config.max_frame_bytes:
                raise FrameTooLargeError(
                    f"frame of {len(data)} bytes exceeds the limit of {self.config.max_frame_bytes}"
                )
            if not self._rate_ok(session):
                raise RateLimitedError("message rate limit exceeded; binary frame dropped")
            try:
                header, body = unpack_binary(data)
            except ValueError as exc:
                raise BadRequestError(f"malformed binary frame: {exc}") from exc
            corr = header.get("id") if isinstance(header.get("id"), str) else None
            to = header.get("to")
            if not isinstance(to, str):
                raise BadRequestError("binary frame header has no 'to' node id")
            target = self.sessions.get(NodeId(to.lower()))
            if target is None:
                raise NodeNotConnectedError(f"node {to} is not connected to this market node")
            out = {k: v for k, v in header.items() if k not in ("to", "from")}
            out["from"] = session.node_id
            self._send(target, pack_binary(out, body))
        except MarketError as exc:
            self._send(session, encode(ErrorReply(corr=corr, code=exc.code.value, message=str(exc))))

    # -- time ----------------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                self._dispatch(self.market.expire(self.clock.now()))
            except Exception:
                log.exception("expiry sweep failed")


def _peek_id(data: str) -> str | None:
    """The request id of a frame, if it has one, so even a malformed request gets a correlated error."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return str(raw["id"])
    return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"
