"""Request/response, notifications and binary channels between two nodes, over the market relay.

The market node relays opaque payloads and vouches for the sender. :class:`RelayRouter` gives those
payloads a shape the daemons share: a requestor daemon *calls* methods on a provider daemon
(``activity.exec``, ...) and awaits the result, either side sends one-way *notifications* (streamed
batch events, payment documents), and binary frames are dispatched by channel (file chunks).
Every handler learns the verified id of the node that sent the message, so authorisation ("is this
the requestor of that agreement?") is the handler's one-line check.

Wire form of a relayed JSON payload::

    {"rpc": 1, "kind": "request",  "id": "...", "method": "activity.exec", "params": {...}}
    {"rpc": 1, "kind": "response", "id": "...", "result": {...}}
    {"rpc": 1, "kind": "response", "id": "...", "error": {"code": "not_found", "message": "..."}}
    {"rpc": 1, "kind": "notify",   "topic": "activity.event", "data": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from market.client.client import BinaryMessage, MarketClient
from market.core.errors import GolemError
from market.core.ids import NodeId, new_id
from market.protocol.errors import MarketError

log = logging.getLogger(__name__)

RequestHandler = Callable[[NodeId, dict[str, Any]], Awaitable[dict[str, Any] | None]]
NotifyHandler = Callable[[NodeId, dict[str, Any]], Awaitable[None]]
BinaryHandler = Callable[[BinaryMessage], Awaitable[None]]


class RelayRpcError(GolemError):
    """The remote handler failed, or no answer came; ``code`` says which (a stable string)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def error_code(exc: BaseException) -> str:
    """The stable code a handler's exception travels as: its ``code`` attribute, else its class."""
    code = getattr(exc, "code", None)
    return str(getattr(code, "value", code)) if code is not None else type(exc).__name__


class RelayRouter:
    """Dispatches one node's relayed traffic; ``async with RelayRouter(client) as router``."""

    def __init__(self, client: MarketClient, *, call_timeout: float = 30.0) -> None:
        self.client = client
        self.call_timeout = call_timeout
        self._methods: dict[str, RequestHandler] = {}
        self._topics: dict[str, NotifyHandler] = {}
        self._channels: dict[str, BinaryHandler] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: list[asyncio.Task[None]] = []

    # -- registration --------------------------------------------------------------------------------

    def handle(self, method: str, handler: RequestHandler) -> None:
        self._methods[method] = handler

    def subscribe(self, topic: str, handler: NotifyHandler) -> None:
        self._topics[topic] = handler

    def on_channel(self, prefix: str, handler: BinaryHandler) -> None:
        """Binary frames whose channel starts with ``prefix`` go to ``handler``, in arrival order."""
        self._channels[prefix] = handler

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._readers:
            return
        self._readers = [
            asyncio.create_task(self._read_json(), name="relay-json"),
            asyncio.create_task(self._read_binary(), name="relay-binary"),
        ]

    async def close(self) -> None:
        for task in [*self._readers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._readers, *self._tasks, return_exceptions=True)
        self._readers = []
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RelayRpcError("closed", "relay router closed"))

    async def __aenter__(self) -> RelayRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -------------------------------------------------------------------------------------

    async def call(
        self, to: str, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Call ``method`` on node ``to`` and return its result; raises :class:`RelayRpcError`."""
        request_id = new_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        wait = self.call_timeout if timeout is None else timeout
        try:
            payload = {
                "rpc": 1,
                "kind": "request",
                "id": request_id,
                "method": method,
                "params": params or {},
            }
            try:
                await self.client.send(to, payload)
            except MarketError as exc:
                raise RelayRpcError(error_code(exc), str(exc)) from exc
            try:
                async with asyncio.timeout(wait):
                    return await future
            except TimeoutError:
                raise RelayRpcError("timeout", f"{method} on {to}: no answer within {wait:g} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, to: str, topic: str, data: dict[str, Any]) -> None:
        await self.client.send(to, {"rpc": 1, "kind": "notify", "topic": topic, "data": data})

    # -- receiving -----------------------------------------------------------------------------------

    async def _read_json(self) -> None:
        while True:
            message = await self.client.relay_messages.get()
            payload = message.payload
            if not isinstance(payload, dict) or payload.get("rpc") != 1:
                log.warning("ignoring a relayed message from %s that is not an RPC payload", message.sender)
                continue
            sender = NodeId(message.sender)
            kind = payload.get("kind")
            if kind == "response":
                self._on_response(payload)
            elif kind == "request":
                self._spawn(self._serve(sender, payload))
            elif kind == "notify":
                handler = self._topics.get(str(payload.get("topic")))
                data = payload.get("data")
                if handler is None or not isinstance(data, dict):
                    log.warning("no handler for notification %r from %s", payload.get("topic"), sender)
                    continue
                self._spawn(self._guard(handler(sender, data), f"notification {payload.get('topic')}"))

    async def _read_binary(self) -> None:
        while True:
            message = await self.client.binary_messages.get()
            handler = next((h for p, h in self._channels.items() if message.channel.startswith(p)), None)
            if handler is None:
                log.warning("no handler for binary channel %r from %s", message.channel, message.sender)
                continue
            # In order, on this task: chunk handlers rely on ordering and must be quick.
            await self._guard(handler(message), f"binary channel {message.channel}")

    def _on_response(self, payload: dict[str, Any]) -> None:
        future = self._pending.get(str(payload.get("id")))
        if future is None or future.done():
            return
        error = payload.get("error")
        if isinstance(error, dict):
            future.set_exception(
                RelayRpcError(str(error.get("code", "error")), str(error.get("message", "")))
            )
        else:
            result = payload.get("result")
            future.set_result(result if isinstance(result, dict) else {})

    async def _serve(self, sender: NodeId, payload: dict[str, Any]) -> None:
        method = str(payload.get("method"))
        params = payload.get("params")
        response: dict[str, Any] = {"rpc": 1, "kind": "response", "id": payload.get("id")}
        handler = self._methods.get(method)
        if handler is None:
            response["error"] = {"code": "not_found", "message": f"no method {method!r} on this node"}
        elif not isinstance(params, dict):
            response["error"] = {"code": "bad_request", "message": "params must be an object"}
        else:
            try:
                response["result"] = await handler(sender, params) or {}
            except GolemError as exc:
                response["error"] = {"code": error_code(exc), "message": str(exc)}
            except Exception:
                log.exception("relay method %s failed", method)
                response["error"] = {"code": "internal", "message": f"{method} failed on the remote node"}
        with contextlib.suppress(MarketError):
            await self.client.send(sender, response)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(work: Awaitable[None], what: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%s handler failed", what)
