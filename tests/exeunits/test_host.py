"""The provider's Activity API over the relay: a requestor node drives a real exe unit through a
real market node, and nobody but the agreement's requestor can touch it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exeunits.host import ActivityHost, AgreementTerms, HostedActivity
from exeunits.package import PackageStore
from exeunits.payloads.wasm import build_module
from exeunits.runtime.base import ResourceLimits
from exeunits.runtime.wasm import WasmRuntimeFactory
from exeunits.transfer import TransferService
from market.client import MarketClient, RelayRouter, RelayRpcError
from tests.exeunits.conftest import FileServer
from tests.integration.conftest import ClientFactory, connect, market_node  # noqa: F401  (fixtures)


class Agreements:
    def __init__(self) -> None:
        self.known: dict[str, AgreementTerms] = {}

    def terms(self, agreement_id: str) -> AgreementTerms | None:
        return self.known.get(agreement_id)


@dataclass
class Pair:
    provider: MarketClient
    requestor: MarketClient
    host: ActivityHost
    calls: RelayRouter
    agreements: Agreements


@pytest.fixture
async def pair(connect: ClientFactory, tmp_path: Path, file_server: FileServer) -> AsyncIterator[Pair]:  # noqa: F811
    provider, requestor = await connect("provider"), await connect("requestor")
    module = build_module("hello")
    file_server.files["hello.wasm"] = module
    import hashlib

    agreements = Agreements()
    agreements.known["agr-1"] = AgreementTerms(
        "agr-1",
        requestor.node_id,
        "wasmtime",
        f"hash:sha3:{hashlib.sha3_224(module).hexdigest()}:{file_server.url}/hello.wasm",
        ResourceLimits(),
    )
    factory = WasmRuntimeFactory()
    await factory.start()
    async with RelayRouter(provider) as served, RelayRouter(requestor, call_timeout=10) as calls:
        host = ActivityHost(
            served,
            agreements,
            {"wasmtime": factory},
            PackageStore(tmp_path / "pkgs"),
            TransferService(),
            tmp_path / "acts",
        )
        host.register()
        yield Pair(provider, requestor, host, calls, agreements)
        await host.close()
    await factory.close()


RUN_HELLO = [
    {"deploy": {}},
    {"start": {}},
    {
        "run": {
            "entry_point": "main",
            "args": [],
            "capture": {"stdout": {"stream": {}}, "stderr": {"stream": {}}},
        }
    },
]


async def test_create_exec_stream_results_destroy(pair: Pair) -> None:
    to = pair.provider.node_id
    created = await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"})
    activity_id = created["activityId"]
    state = await pair.calls.call(to, "activity.state", {"activityId": activity_id})
    assert state == {"state": ["Initialized", None]}
    batch_id = (
        await pair.calls.call(
            to, "activity.exec", {"activityId": activity_id, "exeScript": json.dumps(RUN_HELLO)}
        )
    )["batchId"]
    # Pull the streamed events in order until the batch says it is finished.
    events: list[dict[str, object]] = []
    while True:
        page = await pair.calls.call(
            to,
            "activity.events",
            {"activityId": activity_id, "batchId": batch_id, "after": len(events), "timeout": 5},
        )
        events += page["events"]
        if page["finished"]:
            break
    kinds = [next(iter(e["kind"])) for e in events]  # type: ignore[call-overload]
    assert kinds[:2] == ["started", "finished"] and kinds[-1] == "finished" and "stdout" in kinds
    stdout = "".join(e["kind"]["stdout"] for e in events if "stdout" in e["kind"])  # type: ignore[index,operator]
    assert stdout == "hello from wasm\n"
    results = (
        await pair.calls.call(
            to, "activity.results", {"activityId": activity_id, "batchId": batch_id, "timeout": 5}
        )
    )["results"]
    assert [r["result"] for r in results] == ["Ok", "Ok", "Ok"] and results[-1]["isBatchFinished"]
    assert results[2]["stdout"] == "hello from wasm\n"
    usage = await pair.calls.call(to, "activity.usage", {"activityId": activity_id})
    assert usage["cpuSec"] >= 0 and usage["durationSec"] > 0
    assert (await pair.calls.call(to, "activity.state", {"activityId": activity_id}))["state"] == [
        "Ready",
        None,
    ]
    await pair.calls.call(to, "activity.destroy", {"activityId": activity_id})
    assert (await pair.calls.call(to, "activity.state", {"activityId": activity_id}))["state"][
        0
    ] == "Terminated"


async def test_only_the_requestor_may_act(pair: Pair, connect: ClientFactory) -> None:  # noqa: F811
    to = pair.provider.node_id
    stranger = await connect("stranger")
    async with RelayRouter(stranger, call_timeout=10) as outsider:
        with pytest.raises(RelayRpcError) as refused:
            await outsider.call(to, "activity.create", {"agreementId": "agr-1"})
        assert refused.value.code == "forbidden"
        activity_id = (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
        for method in ("activity.state", "activity.destroy", "activity.usage"):
            with pytest.raises(RelayRpcError) as again:
                await outsider.call(to, method, {"activityId": activity_id})
            assert again.value.code == "forbidden"
    assert pair.host.activities[activity_id].activity.state.value == "Initialized"


async def test_bad_input_changes_nothing(pair: Pair) -> None:
    to = pair.provider.node_id
    with pytest.raises(RelayRpcError) as unknown:
        await pair.calls.call(to, "activity.create", {"agreementId": "agr-404"})
    assert unknown.value.code == "not_found"
    activity_id = (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
    for script, fragment in (
        ("not json", "not JSON"),
        ('[{"explode": {}}]', "unknown command"),
        (42, "exeScript"),
    ):
        with pytest.raises(RelayRpcError) as bad:
            await pair.calls.call(to, "activity.exec", {"activityId": activity_id, "exeScript": script})
        assert bad.value.code == "bad_request" and fragment in str(bad.value)
    assert pair.host.activities[activity_id].activity.batches == {}
    with pytest.raises(RelayRpcError) as no_batch:
        await pair.calls.call(
            to, "activity.results", {"activityId": activity_id, "batchId": "nope", "timeout": 0}
        )
    assert no_batch.value.code == "not_found"
    batch_id = (
        await pair.calls.call(to, "activity.exec", {"activityId": activity_id, "exeScript": RUN_HELLO[:1]})
    )["batchId"]
    with pytest.raises(RelayRpcError) as too_far:
        await pair.calls.call(
            to,
            "activity.results",
            {"activityId": activity_id, "batchId": batch_id, "commandIndex": 5, "timeout": 0.1},
        )
    assert too_far.value.code == "bad_request" and "1 commands" in str(too_far.value)


async def test_agreement_end_destroys_its_activities(pair: Pair) -> None:
    activity_id = (await pair.calls.call(pair.provider.node_id, "activity.create", {"agreementId": "agr-1"}))[
        "activityId"
    ]
    workdir = pair.host.activities[activity_id].workdir
    assert workdir.exists()
    await pair.host.agreement_ended("agr-1")
    assert pair.host.activities[activity_id].activity.state.value == "Terminated"
    assert not workdir.exists()


async def test_a_batch_in_the_wrong_order_is_refused_whole(pair: Pair) -> None:
    to = pair.provider.node_id
    activity_id = (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
    for script, fragment in (
        (RUN_HELLO[2:], "command 0 (run) needs the activity Ready; it would be Initialized"),
        ([{"start": {}}], "command 0 (start) needs the activity Deployed"),
        ([{"deploy": {}}, RUN_HELLO[2]], "command 1 (run) needs the activity Ready; it would be Deployed"),
    ):
        with pytest.raises(RelayRpcError) as refused:
            await pair.calls.call(to, "activity.exec", {"activityId": activity_id, "exeScript": script})
        assert refused.value.code == "bad_request" and fragment in str(refused.value)
    hosted = pair.host.activities[activity_id]
    assert hosted.activity.batches == {} and hosted.activity.state.value == "Initialized"
    # Queued lifecycle commands count: deploy+start queued, then a run is accepted at once.
    first = await pair.calls.call(
        to, "activity.exec", {"activityId": activity_id, "exeScript": RUN_HELLO[:2]}
    )
    second = await pair.calls.call(
        to, "activity.exec", {"activityId": activity_id, "exeScript": RUN_HELLO[2:]}
    )
    for batch in (first, second):
        results = await pair.calls.call(
            to, "activity.results", {"activityId": activity_id, "batchId": batch["batchId"], "timeout": 10}
        )
        assert all(r["result"] == "Ok" for r in results["results"])


async def test_destroyed_activities_are_forgotten_after_a_grace(pair: Pair) -> None:
    to = pair.provider.node_id
    pair.host.destroyed_grace = 0.3
    seen: list[str] = []

    async def on_destroyed(hosted: HostedActivity) -> None:
        assert hosted.activity.state.value == "Terminated"
        seen.append(hosted.activity.activity_id)

    pair.host.on_destroyed(on_destroyed)
    created = [
        (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
        for _ in range(40)
    ]
    assert len(pair.host.activities) == 40
    for activity_id in created:
        await pair.calls.call(to, "activity.destroy", {"activityId": activity_id})
        await pair.calls.call(to, "activity.destroy", {"activityId": activity_id})  # idempotent
    assert seen == created  # each once, in order
    # Within the grace a late query still sees the activity, as Terminated.
    state = await pair.calls.call(to, "activity.state", {"activityId": created[-1]})
    assert state["state"][0] == "Terminated"
    with pytest.raises(RelayRpcError) as busy:
        await pair.calls.call(to, "activity.exec", {"activityId": created[-1], "exeScript": RUN_HELLO[:1]})
    assert busy.value.code == "conflict" and "Terminated" in str(busy.value)
    # Then it is dropped: memory is back to empty and every call answers not_found.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while pair.host.activities or pair.host._destroyed:
        assert loop.time() < deadline, f"{len(pair.host.activities)} activities still held"
        await asyncio.sleep(0.05)
    for method in ("activity.state", "activity.usage", "activity.destroy"):
        with pytest.raises(RelayRpcError) as gone:
            await pair.calls.call(to, method, {"activityId": created[0]})
        assert gone.value.code == "not_found"
    assert seen == created  # forgetting does not call back again


async def test_destroyed_activities_held_are_capped(pair: Pair) -> None:
    to = pair.provider.node_id
    pair.host.destroyed_grace = 60.0
    pair.host.max_destroyed = 5
    for _ in range(12):
        activity_id = (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
        await pair.calls.call(to, "activity.destroy", {"activityId": activity_id})
        assert len(pair.host.activities) <= 5 and len(pair.host._destroyed) <= 5
    live = (await pair.calls.call(to, "activity.create", {"agreementId": "agr-1"}))["activityId"]
    assert live in pair.host.activities and len(pair.host.activities) == 6  # the cap is on destroyed ones
