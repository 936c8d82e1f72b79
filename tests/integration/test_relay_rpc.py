"""Calls, notifications and binary channels between two nodes through a real market node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from market.client import BinaryMessage, RelayRouter, RelayRpcError
from market.core.identity import Identity
from market.core.ids import NodeId
from market.protocol.errors import ConflictError
from tests.integration.conftest import ClientFactory


async def test_call_notify_and_binary(connect: ClientFactory) -> None:
    provider, requestor = await connect("p"), await connect("r")
    seen_senders: list[NodeId] = []
    notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    chunks: list[bytes] = []

    async def echo(sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        seen_senders.append(sender)
        return {"echo": params["text"].upper()}

    async def refuse(sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        raise ConflictError("activity is busy")

    async def crash(sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    async def slow(sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    async def on_note(sender: NodeId, data: dict[str, Any]) -> None:
        await notes.put({"from": sender, **data})

    async def on_chunk(message: BinaryMessage) -> None:
        assert message.sender == requestor.node_id
        chunks.append(message.body)

    async with RelayRouter(provider) as served, RelayRouter(requestor, call_timeout=5) as calling:
        served.handle("echo", echo)
        served.handle("refuse", refuse)
        served.handle("crash", crash)
        served.handle("slow", slow)
        served.on_channel("file:", on_chunk)
        calling.subscribe("note", on_note)

        assert await calling.call(provider.node_id, "echo", {"text": "hi"}) == {"echo": "HI"}
        assert seen_senders == [requestor.node_id]
        # Many calls in flight at once are answered independently.
        answers = await asyncio.gather(
            *(calling.call(provider.node_id, "echo", {"text": str(i)}) for i in range(20))
        )
        assert [a["echo"] for a in answers] == [str(i) for i in range(20)]

        with pytest.raises(RelayRpcError) as refused:
            await calling.call(provider.node_id, "refuse")
        assert refused.value.code == "conflict" and "busy" in str(refused.value)
        with pytest.raises(RelayRpcError) as crashed:
            await calling.call(provider.node_id, "crash")
        assert crashed.value.code == "internal" and "bug" not in str(crashed.value)
        with pytest.raises(RelayRpcError) as missing:
            await calling.call(provider.node_id, "nope")
        assert missing.value.code == "not_found"
        with pytest.raises(RelayRpcError) as timed_out:
            await calling.call(provider.node_id, "slow", timeout=0.2)
        assert timed_out.value.code == "timeout"
        with pytest.raises(RelayRpcError) as offline:
            await calling.call(Identity.generate().node_id, "echo", {"text": "x"})
        assert offline.value.code == "not_connected"

        await served.notify(requestor.node_id, "note", {"n": 1})
        assert await asyncio.wait_for(notes.get(), 5) == {"from": provider.node_id, "n": 1}

        for i in range(50):
            await requestor.send_bytes(provider.node_id, bytes([i]) * 1000, channel="file:abc")
        async with asyncio.timeout(5):
            while len(chunks) < 50:
                await asyncio.sleep(0.01)
        assert chunks == [bytes([i]) * 1000 for i in range(50)]  # in order
