"""Byte streams between two nodes through a real market node: order, half-close, flow control, resets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from market.client import MarketClient, RelayRouter
from market.client.streams import RelayStream, RelayStreams, StreamClosedError, StreamLimitError
from market.core.ids import new_id
from tests.integration.conftest import ClientFactory

WINDOW = 256 * 1024
CHUNK = 16 * 1024


async def _pair(
    connect: ClientFactory, **options: int
) -> tuple[MarketClient, MarketClient, RelayRouter, RelayRouter, RelayStreams, RelayStreams]:
    a, b = await connect("a"), await connect("b")
    ra, rb = RelayRouter(a), RelayRouter(b)
    sa = RelayStreams(ra, "t", chunk_bytes=CHUNK, window_bytes=WINDOW, **options)
    sb = RelayStreams(rb, "t", chunk_bytes=CHUNK, window_bytes=WINDOW, **options)
    await ra.start()
    await rb.start()
    return a, b, ra, rb, sa, sb


async def _read_all(stream: RelayStream) -> bytes:
    parts = []
    while chunk := await stream.read():
        parts.append(chunk)
    return b"".join(parts)


async def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_bytes_arrive_in_order_both_ways_and_half_close(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect)
    try:
        sid = new_id()
        left, right = sa.open(b.node_id, sid), sb.open(a.node_id, sid)
        up, down = os.urandom(3 * WINDOW + 123), os.urandom(WINDOW // 2 + 7)

        async def send(stream: RelayStream, data: bytes) -> None:
            await stream.write(data)
            await stream.write_eof()

        results = await asyncio.gather(send(left, up), _read_all(right), send(right, down), _read_all(left))
        assert results[1] == up and results[3] == down
        # Both sides ended cleanly: nothing is left registered, and the reads after the end say so.
        assert await right.read() == b"" and right.reset_reason is None
        await left.close()
        await right.close()
        assert sa.count() == 0 and sb.count() == 0
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_a_reader_that_does_not_read_stops_the_writer(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect)
    try:
        sid = new_id()
        writer, reader = sa.open(b.node_id, sid), sb.open(a.node_id, sid)
        data = os.urandom(4 * WINDOW)
        sending = asyncio.create_task(writer.write(data))
        # The writer gets at most one window ahead of what the reader consumed ...
        await _eventually(lambda: reader.bytes_received >= WINDOW - CHUNK)
        await asyncio.sleep(0.3)
        assert not sending.done()
        assert writer.bytes_sent <= WINDOW and reader.bytes_received <= WINDOW
        # ... and goes on as the reader reads.
        received = bytearray()
        while len(received) < len(data):
            received += await reader.read()
        await sending
        assert bytes(received) == data
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_reset_reaches_the_other_side_with_its_reason(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect)
    try:
        sid = new_id()
        left, right = sa.open(b.node_id, sid), sb.open(a.node_id, sid)
        pending_read = asyncio.create_task(right.read())
        await left.reset("the activity ended")
        with pytest.raises(StreamClosedError, match="the activity ended"):
            await asyncio.wait_for(pending_read, 5)
        with pytest.raises(StreamClosedError):
            await right.write(b"more")
        with pytest.raises(StreamClosedError):
            await left.read()
        assert sa.count() == 0 and sb.count() == 0
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_a_lost_frame_resets_instead_of_corrupting(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect)
    try:
        sid = new_id()
        left, right = sa.open(b.node_id, sid), sb.open(a.node_id, sid)
        await left.write(b"first")
        assert await right.read() == b"first"
        # A frame that claims a later offset: the one in between was lost on the way.
        await a.send_bytes(b.node_id, b"later", channel=f"t:{sid}:100")
        with pytest.raises(StreamClosedError, match="lost"):
            await asyncio.wait_for(right.read(), 5)
        # The writer hears about it too.
        await _eventually(lambda: left.reset_reason is not None)
        assert "lost" in str(left.reset_reason)
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_a_peer_that_ignores_its_window_is_cut_off(connect: ClientFactory) -> None:
    a, b, ra, rb, _, sb = await _pair(connect)
    try:
        sid = new_id()
        right = sb.open(a.node_id, sid)
        offset = 0
        # Raw frames past the window, never waiting for credit (what a misbehaving node would do).
        while offset <= WINDOW:
            await a.send_bytes(b.node_id, b"x" * CHUNK, channel=f"t:{sid}:{offset}")
            offset += CHUNK
        await _eventually(lambda: right.reset_reason is not None)
        assert "window" in str(right.reset_reason)
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_frames_from_a_third_node_do_not_enter_a_stream(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect)
    intruder = await connect("intruder")
    try:
        sid = new_id()
        left, right = sa.open(b.node_id, sid), sb.open(a.node_id, sid)
        # Same stream id and offset, wrong sender: dropped, not read, and no reset either.
        await intruder.send_bytes(b.node_id, b"forged", channel=f"t:{sid}:0")
        await left.write(b"genuine")
        assert await asyncio.wait_for(right.read(), 5) == b"genuine"
        assert right.reset_reason is None
    finally:
        await asyncio.gather(ra.close(), rb.close())


async def test_stream_limits(connect: ClientFactory) -> None:
    a, b, ra, rb, sa, sb = await _pair(connect, max_streams=3, max_per_peer=2)
    try:
        first = sa.open(b.node_id, new_id())
        sa.open(b.node_id, new_id())
        with pytest.raises(StreamLimitError, match="streams open"):
            sa.open(b.node_id, new_id())
        sa.open(a.node_id, new_id())  # another peer still may
        with pytest.raises(StreamLimitError):
            sa.open(a.node_id, new_id())
        sid = new_id()
        sb.open(a.node_id, sid)
        with pytest.raises(StreamLimitError, match="already open"):
            sb.open(a.node_id, sid)
        await first.reset("done")
        sa.open(b.node_id, new_id())  # a closed stream frees its place
    finally:
        await asyncio.gather(ra.close(), rb.close())
