"""The requestor's Activity API, driven by yapapi's own client (ya-aioclient), against a provider's
activity host through a real market node: the wire shapes are the ones yapapi accepts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import ya_activity
from aiohttp import web

from exeunits.host import ActivityHost, AgreementTerms
from exeunits.package import PackageStore
from exeunits.payloads.wasm import build_module
from exeunits.runtime.base import ResourceLimits
from exeunits.runtime.wasm import WasmRuntimeFactory
from exeunits.transfer import TransferService
from market.client import RelayRouter
from market.core.ids import NodeId
from market.hub.openapi import render
from requestor.activities import RequestorActivities
from requestor.activity_api import COMMITTED_PATH, build_activity_api, openapi_document
from tests.exeunits.conftest import FileServer, file_server  # noqa: F401  (fixture)
from tests.integration.conftest import ClientFactory, connect, market_node  # noqa: F401  (fixtures)

VECTOR = ["golem.usage.cpu_sec", "golem.usage.duration_sec"]


class Directory:
    def __init__(self) -> None:
        self.providers: dict[str, NodeId] = {}

    def provider_of(self, agreement_id: str) -> NodeId | None:
        return self.providers.get(agreement_id)

    def usage_vector(self, agreement_id: str) -> list[str]:
        return VECTOR


class Terms:
    def __init__(self) -> None:
        self.known: dict[str, AgreementTerms] = {}

    def terms(self, agreement_id: str) -> AgreementTerms | None:
        return self.known.get(agreement_id)


@dataclass
class Setup:
    url: str
    control: ya_activity.RequestorControlApi
    state: ya_activity.RequestorStateApi


@pytest.fixture
async def setup(connect: ClientFactory, tmp_path: Path, file_server: FileServer) -> AsyncIterator[Setup]:  # noqa: F811
    provider, requestor = await connect("provider"), await connect("requestor")
    module = build_module("hello")
    file_server.files["hello.wasm"] = module
    terms, directory = Terms(), Directory()
    package = f"hash:sha3:{hashlib.sha3_224(module).hexdigest()}:{file_server.url}/hello.wasm"
    terms.known["agr-1"] = AgreementTerms("agr-1", requestor.node_id, "wasmtime", package, ResourceLimits())
    directory.providers["agr-1"] = provider.node_id
    directory.providers["agr-gone"] = provider.node_id  # the requestor thinks so; the provider does not
    factory = WasmRuntimeFactory()
    await factory.start()
    async with RelayRouter(provider) as served, RelayRouter(requestor) as calls:
        host = ActivityHost(
            served,
            terms,
            {"wasmtime": factory},
            PackageStore(tmp_path / "p"),
            TransferService(),
            tmp_path / "a",
        )
        host.register()
        app = web.Application()
        app.add_subapp("/activity-api/v1", build_activity_api(RequestorActivities(calls, directory)))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/activity-api/v1"
        client = ya_activity.ApiClient(ya_activity.Configuration(host=url))
        yield Setup(url, ya_activity.RequestorControlApi(client), ya_activity.RequestorStateApi(client))
        await client.close()
        await runner.cleanup()
        await host.close()
    await factory.close()


SCRIPT = [
    {"deploy": {}},
    {"start": {"args": []}},
    {
        "run": {
            "entry_point": "main",
            "args": [],
            "capture": {"stdout": {"stream": {}}, "stderr": {"stream": {}}},
        }
    },
]


async def test_yapapi_client_runs_a_batch(setup: Setup) -> None:
    activity_id = await setup.control.create_activity("agr-1")
    assert isinstance(activity_id, str) and len(activity_id) == 32
    batch_id = await setup.control.call_exec(
        activity_id, ya_activity.ExeScriptRequest(text=json.dumps(SCRIPT))
    )
    results = await setup.control.get_exec_batch_results(activity_id, batch_id, timeout=10)
    assert [r.result for r in results] == ["Ok", "Ok", "Ok"]
    assert results[-1].is_batch_finished and results[2].stdout == "hello from wasm\n"
    state = await setup.state.get_activity_state(activity_id)
    assert state.state == ["Ready", None]
    usage = await setup.state.get_activity_usage(activity_id)
    assert len(usage.current_usage) == 2 and usage.current_usage[1] > 0 and usage.timestamp > 0
    await setup.control.destroy_activity(activity_id)
    assert (await setup.state.get_activity_state(activity_id)).state[0] == "Terminated"


async def test_sse_stream_as_yapapi_reads_it(setup: Setup) -> None:
    activity_id = await setup.control.create_activity("agr-1")
    batch_id = await setup.control.call_exec(
        activity_id, ya_activity.ExeScriptRequest(text=json.dumps(SCRIPT))
    )
    events = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{setup.url}/activity/{activity_id}/exec/{batch_id}", headers={"Accept": "text/event-stream"}
        ) as response,
    ):
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        block: dict[str, str] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line:
                key, _, value = line.partition(": ")
                block[key] = value
                continue
            assert block["event"] == "runtime" and int(block["id"]) == len(events)
            event = json.loads(block["data"])
            events.append(event)
            block = {}
            if "finished" in event["kind"] and event["index"] == len(SCRIPT) - 1:
                break  # what yapapi does: it stops reading; the server keeps the stream open
    assert [next(iter(e["kind"])) for e in events][:2] == ["started", "finished"]
    assert "".join(e["kind"]["stdout"] for e in events if "stdout" in e["kind"]) == "hello from wasm\n"
    assert all("T" in e["timestamp"] and not e["timestamp"].endswith("Z") for e in events)  # naive UTC
    assert events[-1]["kind"]["finished"]["return_code"] == 0 and events[-1]["batch_id"] == batch_id


async def test_bad_input(setup: Setup) -> None:
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: bytes) -> tuple[int, dict[str, str]]:
            async with http.post(
                f"{setup.url}{path}", data=body, headers={"Content-Type": "application/json"}
            ) as r:
                return r.status, await r.json()

        assert (await post("/activity", b'"agr-404"'))[0] == 404
        status, body = await post("/activity", b"{not json")
        assert status == 400 and "not JSON" in body["message"]
        status, body = await post("/activity", b'"agr-gone"')
        assert status == 404 and "agr-gone" in body["message"]
        activity_id = await setup.control.create_activity("agr-1")
        status, body = await post(
            f"/activity/{activity_id}/exec", json.dumps({"text": '[{"explode": {}}]'}).encode()
        )
        assert status == 400 and "unknown command" in body["message"]
        status, body = await post(f"/activity/{activity_id}/exec", b'{"script": "[]"}')
        assert status == 400
        status, body = await post("/activity/nope/exec", json.dumps({"text": json.dumps(SCRIPT)}).encode())
        assert status == 404
        async with http.get(f"{setup.url}/activity/{activity_id}/exec/nope") as r:
            assert r.status == 404
        async with http.get(f"{setup.url}/activity/{activity_id}/state") as r:
            assert (await r.json())["state"] == ["Initialized", None]  # nothing ran


def test_openapi_document_is_current() -> None:
    assert COMMITTED_PATH.read_text() == render(openapi_document()), "run: python -m requestor.activity_api"
