"""Byte streams between two nodes over the market relay: ordered, flow-controlled, closable.

The relay carries messages, not connections. :class:`RelayStreams` turns them into streams: both
nodes hold a :class:`RelayStream` under the same id (the opening side picks the id and names it in
an application call, e.g. the VPN's ``net.connect``), and each side writes bytes, ends its own
direction (half-close, as TCP does), reads what the other side wrote, or resets the whole stream.

Wire form (``<name>`` is the registry's name, e.g. ``vpn``):

* **data**: binary frames on channel ``<name>:<stream id>:<offset>``, where ``offset`` is the position
  of the frame's first byte in its direction. The market node drops frames over a session's rate
  limit; the offset makes a lost frame visible, and the stream is reset rather than silently
  corrupted. A frame with an empty body ends its direction.
* **credit**: notification ``<name>.credit`` ``{"id", "consumed"}``: the reader has taken ``consumed``
  bytes in total. A writer never has more than ``window_bytes`` outstanding (sent but not yet
  consumed), so a reader buffers at most one window per stream however fast the writer is, and a
  reader that stops reading stops the writer (backpressure end to end, nothing grows without bound).
* **reset**: notification ``<name>.reset`` ``{"id", "reason"}``: both directions are over; reads and
  writes in progress on the other side fail with the reason.

Credits and resets are JSON notifications, data are binary frames: the relay may deliver the two
kinds in a different order, which is why the end of data is an (ordered) empty frame and not a
notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol

from market.client.client import BinaryMessage
from market.client.relay import RelayRouter
from market.core.errors import GolemError
from market.core.ids import NodeId
from market.protocol.errors import MarketError

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
"""The largest data frame; a write of more is split."""
WINDOW_BYTES = 1024 * 1024
"""Bytes a writer may have outstanding per stream; the reader buffers at most this much."""
MAX_REASON = 300
"""Longest reset reason carried on the wire."""


class StreamClosedError(GolemError):
    """The stream was reset (by either side, or because the relay failed); the message says why."""

    code = "closed"


class StreamLimitError(GolemError):
    """No more streams may be opened (to this peer, or on this node) until some close."""

    code = "limit_exceeded"


class Pacer(Protocol):
    """Spaces out frames so the node stays under the market node's per-session rate."""

    async def wait(self) -> None: ...


class RelayStream:
    """One side of a stream; made by :meth:`RelayStreams.open`. See the module docstring."""

    def __init__(self, owner: RelayStreams, peer: NodeId, stream_id: str) -> None:
        self.owner = owner
        self.peer = peer
        self.stream_id = stream_id
        # Reading: what the peer wrote, in order, not yet taken.
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self._consumed = 0
        self._credited = 0
        self._read_ended = False
        self._readable = asyncio.Event()
        # Writing: how far we are, and how far the peer has consumed.
        self._sent = 0
        self._peer_consumed = 0
        self._write_ended = False
        self._writable = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._reset_reason: str | None = None
        self._released = False

    def __repr__(self) -> str:
        return f"<RelayStream {self.stream_id[:8]} with {self.peer}>"

    @property
    def reset_reason(self) -> str | None:
        """Why the stream was reset, or None while it is not."""
        return self._reset_reason

    @property
    def bytes_sent(self) -> int:
        return self._sent

    @property
    def bytes_received(self) -> int:
        return self._received

    # -- reading -------------------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The next bytes the peer wrote (at most one frame's worth); ``b""`` once it ended its side.

        Raises :class:`StreamClosedError` once the stream is reset.
        """
        while True:
            if self._reset_reason is not None:
                raise StreamClosedError(self._reset_reason)
            if self._chunks:
                break
            if self._read_ended:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        self._consumed += len(chunk)
        # Credit in steps, not per frame: a notification costs a round trip to the market node.
        # A step below one window minus one frame keeps a writer that waits for credit from waiting
        # forever (see the window check in write()).
        if not self._read_ended and self._consumed - self._credited >= self.owner.credit_step:
            await self._send_credit()
        return chunk

    async def _send_credit(self) -> None:
        self._credited = self._consumed
        try:
            await self.owner.router.notify(
                self.peer, self.owner.credit_topic, {"id": self.stream_id, "consumed": self._consumed}
            )
        except (MarketError, ConnectionError) as exc:
            await self.reset(f"the relay failed: {exc}")
            raise StreamClosedError(self._reset_reason or "reset") from exc

    # -- writing -------------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send ``data``, waiting while the peer has a full window unread (backpressure).

        Raises :class:`StreamClosedError` if the stream is (or gets) reset, or was ended.
        """
        async with self._write_lock:
            if self._write_ended:
                raise StreamClosedError("this side of the stream has ended")
            view = memoryview(data)
            chunk_bytes = self.owner.chunk_bytes
            for start in range(0, len(view), chunk_bytes):
                chunk = bytes(view[start : start + chunk_bytes])
                while self._sent + len(chunk) - self._peer_consumed > self.owner.window_bytes:
                    self._check_open()
                    self._writable.clear()
                    await self._writable.wait()
                self._check_open()
                await self._send_frame(chunk)

    async def write_eof(self) -> None:
        """End this side: the peer reads ``b""`` after the last bytes; idempotent."""
        async with self._write_lock:
            if self._write_ended or self._reset_reason is not None:
                return
            self._write_ended = True
            await self._send_frame(b"")
        self._release_if_done()

    async def _send_frame(self, body: bytes) -> None:
        await self.owner.pace()
        self._check_open()
        channel = f"{self.owner.channel}{self.stream_id}:{self._sent}"
        try:
            await self.owner.router.client.send_bytes(self.peer, body, channel=channel)
        except (MarketError, ConnectionError) as exc:
            await self.reset(f"the relay failed: {exc}")
            raise StreamClosedError(self._reset_reason or "reset") from exc
        self._sent += len(body)

    def _check_open(self) -> None:
        if self._reset_reason is not None:
            raise StreamClosedError(self._reset_reason)

    # -- ending --------------------------------------------------------------------------------------

    async def reset(self, reason: str) -> None:
        """End both directions now and tell the peer (best effort); idempotent."""
        if self._reset_reason is not None:
            return
        self._mark_reset(reason)
        with contextlib.suppress(MarketError, ConnectionError):
            await self.owner.router.notify(
                self.peer, self.owner.reset_topic, {"id": self.stream_id, "reason": reason[:MAX_REASON]}
            )

    async def close(self, reason: str = "closed") -> None:
        """Let go of the stream: forgotten if both sides ended cleanly, reset with ``reason`` otherwise."""
        if self._write_ended and self._read_ended and self._reset_reason is None:
            self._release()
        else:
            await self.reset(reason)

    @property
    def finished(self) -> bool:
        """Both directions ended, or the stream was reset."""
        return self._reset_reason is not None or (self._write_ended and self._read_ended)

    def _mark_reset(self, reason: str) -> None:
        self._reset_reason = reason or "reset"
        self._chunks.clear()
        self._buffered = 0
        self._readable.set()
        self._writable.set()
        self._release()

    def _release_if_done(self) -> None:
        if self._write_ended and self._read_ended:
            self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.owner._forget(self)

    # -- from the relay ------------------------------------------------------------------------------

    def _on_data(self, offset: int, body: bytes) -> str | None:
        """Take one frame; the reason to reset the stream if the frame breaks the protocol."""
        if self._reset_reason is not None:
            return None
        if self._read_ended:
            return "data after the end of the stream"
        if offset != self._received:
            return f"data lost in the relay (a frame at {offset}, expected {self._received})"
        if not body:
            self._read_ended = True
            self._readable.set()
            self._release_if_done()
            return None
        if self._buffered + len(body) > self.owner.window_bytes:
            return f"the peer sent past its window of {self.owner.window_bytes} bytes"
        self._chunks.append(body)
        self._buffered += len(body)
        self._received += len(body)
        self._readable.set()
        return None

    def _on_credit(self, consumed: int) -> str | None:
        if consumed < self._peer_consumed or consumed > self._sent:
            return f"a credit for {consumed} bytes, with {self._sent} sent and {self._peer_consumed} credited"
        self._peer_consumed = consumed
        self._writable.set()
        return None


class RelayStreams:
    """A node's streams of one kind (``name``) over ``router``; registers its handlers on creation.

    ``pacer`` (e.g. :class:`exeunits.gftp.FramePacer`) spaces out data frames; without one frames
    go as fast as the socket takes them. At most ``max_streams`` are open at once and at most
    ``max_per_peer`` with any one node, so that memory stays bounded by one window per open stream.
    """

    def __init__(
        self,
        router: RelayRouter,
        name: str,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        window_bytes: int = WINDOW_BYTES,
        pacer: Pacer | None = None,
        max_streams: int = 256,
        max_per_peer: int = 64,
    ) -> None:
        if not 0 < chunk_bytes <= window_bytes // 2:
            raise ValueError("chunk_bytes must be positive and at most half of window_bytes")
        self.router = router
        self.name = name
        self.channel = f"{name}:"
        self.credit_topic = f"{name}.credit"
        self.reset_topic = f"{name}.reset"
        self.chunk_bytes = chunk_bytes
        self.window_bytes = window_bytes
        self.credit_step = max(chunk_bytes, (window_bytes - chunk_bytes) // 2)
        self.pacer = pacer
        self.max_streams = max_streams
        self.max_per_peer = max_per_peer
        self._streams: dict[tuple[NodeId, str], RelayStream] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        router.on_channel(self.channel, self._on_frame)
        router.subscribe(self.credit_topic, self._on_credit)
        router.subscribe(self.reset_topic, self._on_reset)

    def open(self, peer: NodeId, stream_id: str) -> RelayStream:
        """Start a stream with ``peer`` under ``stream_id`` (unique per peer); frames for it are
        buffered from now on, so open it before telling the peer the id."""
        key = (peer, stream_id)
        if key in self._streams:
            raise StreamLimitError(f"stream {stream_id} with {peer} is already open")
        if len(self._streams) >= self.max_streams:
            raise StreamLimitError(f"this node has {self.max_streams} streams open, the most it allows")
        if self.count(peer) >= self.max_per_peer:
            raise StreamLimitError(f"{peer} has {self.max_per_peer} streams open here, the most allowed")
        stream = RelayStream(self, peer, stream_id)
        self._streams[key] = stream
        return stream

    def count(self, peer: NodeId | None = None) -> int:
        """Open streams (with ``peer`` only, if given)."""
        return sum(1 for p, _ in self._streams if peer is None or p == peer)

    async def close(self) -> None:
        """Reset every open stream (the node is going away)."""
        for stream in list(self._streams.values()):
            await stream.reset("the node closed the stream")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def pace(self) -> None:
        if self.pacer is not None:
            await self.pacer.wait()

    def _forget(self, stream: RelayStream) -> None:
        key = (stream.peer, stream.stream_id)
        if self._streams.get(key) is stream:
            del self._streams[key]

    # -- handlers ------------------------------------------------------------------------------------

    async def _on_frame(self, message: BinaryMessage) -> None:
        stream_id, _, offset = message.channel.removeprefix(self.channel).rpartition(":")
        stream = self._streams.get((message.sender, stream_id))
        if stream is None or not offset.isdigit():
            log.debug(
                "dropping a %s frame on %r from %s: no such stream",
                self.name,
                message.channel,
                message.sender,
            )
            return
        problem = stream._on_data(int(offset), message.body)
        if problem is not None:
            # Resetting tells the peer over the relay; not on the (ordered, shared) frame reader.
            self._spawn(stream.reset(problem))

    async def _on_credit(self, sender: NodeId, data: dict[str, Any]) -> None:
        stream = self._stream_of(sender, data)
        consumed = data.get("consumed")
        if stream is None:
            return
        if not isinstance(consumed, int) or isinstance(consumed, bool):
            await stream.reset("a credit without a byte count")
            return
        problem = stream._on_credit(consumed)
        if problem is not None:
            await stream.reset(problem)

    async def _on_reset(self, sender: NodeId, data: dict[str, Any]) -> None:
        stream = self._stream_of(sender, data)
        if stream is not None:
            reason = str(data.get("reason") or "no reason given")[:MAX_REASON]
            stream._mark_reset(f"reset by the other side: {reason}")

    def _stream_of(self, sender: NodeId, data: dict[str, Any]) -> RelayStream | None:
        stream = self._streams.get((sender, str(data.get("id"))))
        if stream is None:
            log.debug("dropping a %s notification from %s: no such stream", self.name, sender)
        return stream

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
