"""The requestor daemon's REST API as a test drives it: yapapi's calls, by hand, over HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import aiohttp

from market.core.clock import SystemClock, to_millis

PLATFORM = "dummy-glm"
HELLO: list[dict[str, Any]] = [
    {"deploy": {}},
    {"start": {}},
    {"run": {"entry_point": "main", "args": [], "capture": {"stdout": {"stream": {}}}}},
]
"""Deploy, start and run the hello WASI module (:func:`exeunits.payloads.wasm.build_module`)."""


class RequestorRest:
    """A requestor daemon's REST API, called as yapapi calls it (app key, JSON, status codes)."""

    def __init__(self, url: str, node_id: str, http: aiohttp.ClientSession, platform: str = PLATFORM) -> None:
        self.url = url
        self.node_id = node_id
        self.http = http
        self.platform = platform

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | tuple[int, ...] = (200, 201, 204),
        **params: Any,
    ) -> Any:
        data = None if body is None else json.dumps(body)
        async with self.http.request(
            method, f"{self.url}{path}", data=data, params={k: str(v) for k, v in params.items()}
        ) as response:
            text = await response.text()
            statuses = (expect,) if isinstance(expect, int) else expect
            assert response.status in statuses, f"{method} {path}: {response.status} {text}"
            return json.loads(text) if text else None

    async def agree(self, package: str, **counter_extra: Any) -> str:
        """Negotiate with a wasmtime provider (yapapi's steps 6-10, ``counter_extra`` added to the
        counter-proposal) and return the approved agreement's id."""
        expiration = to_millis(SystemClock().now() + timedelta(minutes=15))
        props = {
            "golem.srv.comp.expiration": expiration,
            "golem.srv.caps.multi-activity": True,
            "golem.node.debug.subnet": "public",
            f"golem.com.payment.platform.{self.platform}.address": self.node_id,
            "golem.com.payment.protocol.version": "3",
            "golem.srv.comp.task_package": package,
        }
        constraints = "(&(golem.node.debug.subnet=public)(golem.runtime.name=wasmtime))"
        m = "/market-api/v1"
        sub = await self.call("POST", f"{m}/demands", {"properties": props, "constraints": constraints})
        initial = await self._next_proposal(sub, "Initial")
        counter = dict(props, **{"golem.com.payment.chosen-platform": self.platform}, **counter_extra)
        await self.call(
            "POST",
            f"{m}/demands/{sub}/proposals/{initial['proposalId']}",
            {"properties": counter, "constraints": constraints},
        )
        draft = await self._next_proposal(sub, "Draft")
        valid_to = (SystemClock().now() + timedelta(hours=1)).isoformat()
        agreement_id: str = await self.call(
            "POST", f"{m}/agreements", {"proposalId": draft["proposalId"], "validTo": valid_to}
        )
        await self.call("POST", f"{m}/agreements/{agreement_id}/confirm")
        await self.call("POST", f"{m}/agreements/{agreement_id}/wait", timeout=10)
        await self.call("DELETE", f"{m}/demands/{sub}")
        return agreement_id

    async def _next_proposal(self, sub: str, state: str) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while True:
                events = await self.call("GET", f"/market-api/v1/demands/{sub}/events", timeout=2)
                for event in events:
                    if event["eventType"] == "ProposalEvent" and event["proposal"]["state"] == state:
                        proposal: dict[str, Any] = event["proposal"]
                        return proposal

    async def create_activity(self, agreement_id: str) -> str:
        activity_id: str = await self.call("POST", "/activity-api/v1/activity", agreement_id)
        return activity_id

    async def run(self, activity_id: str, script: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Execute a batch and wait for all its results."""
        base = f"/activity-api/v1/activity/{activity_id}"
        batch = await self.call("POST", f"{base}/exec", {"text": json.dumps(script)})
        async with asyncio.timeout(30):
            while True:
                results: list[dict[str, Any]] = await self.call("GET", f"{base}/exec/{batch}", timeout=5)
                if results and results[-1].get("isBatchFinished"):
                    return results

    async def state(self, activity_id: str) -> list[Any]:
        body = await self.call("GET", f"/activity-api/v1/activity/{activity_id}/state")
        state: list[Any] = body["state"]
        return state

    async def agreement(self, agreement_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", f"/market-api/v1/agreements/{agreement_id}")
        return body
