"""Restarts in the middle of an agreement, and who may fetch a requestor's files.

* A provider daemon restarted on the same data dir hands its approved agreement back to the market
  session: the requestor creates a new activity on it, and the invoice counts the work of both runs.
* A requestor daemon restarted on the same data dir still answers for the activities it created
  (state, results, list) and destroys them on their provider.
* gftp: only providers with an approved agreement may fetch or upload a requestor's files.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from exeunits.gftp import GftpError, RelayGftpResolver
from market.client import MarketClient, RelayRouter
from market.core.identity import Identity
from market.hub.server import MarketNode, MarketNodeConfig
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon
from tests.daemons.conftest import HELLO, PLATFORM, RequestorRest, StartProvider, eventually

SUCCESS = {"message": "Successfully finished all work", "golem.requestor.code": "Success"}


async def test_provider_restarted_mid_agreement_serves_it_again(
    start_provider: StartProvider, requestor: RequestorRest, package: str, tmp_path: Path
) -> None:
    identity, data_dir = Identity.generate(), tmp_path / "provider"
    first = await start_provider(identity=identity, data_dir=data_dir)
    agreement_id = await requestor.agree(package)
    before = await requestor.create_activity(agreement_id)
    assert [r["result"] for r in await requestor.run(before, HELLO)] == ["Ok", "Ok", "Ok"]
    await first.close()  # its exe units stop; the agreement stays Approved on both sides

    # On a market node that never saw the agreement, the restarted provider re-publishes it.
    async with MarketNode(MarketNodeConfig(port=0)) as elsewhere:
        away = await start_provider(identity=identity, data_dir=data_dir, market_url=elsewhere.ws_url)
        assert [r.agreement_id for r in away.daemon.approved_agreements()] == [agreement_id]
        assert agreement_id in elsewhere.market.agreements
        await away.close()

    # Back on the requestor's market node: a new activity on the same agreement runs.
    again = await start_provider(identity=identity, data_dir=data_dir)
    after = await requestor.create_activity(agreement_id)
    results = await requestor.run(after, HELLO)
    assert results[-1]["stdout"] == "hello from wasm\n"
    # The activity of the first run is gone with its process: the requestor reports it Terminated.
    assert (await requestor.state(before))[0] == "Terminated"
    assert (await requestor.state(after))[0] == "Ready"

    await requestor.call("POST", f"/market-api/v1/agreements/{agreement_id}/terminate", SUCCESS)

    async def invoiced() -> bool:
        return bool(await requestor.call("GET", "/payment-api/v1/invoices"))

    await eventually(invoiced, what="the invoice")
    (invoice,) = await requestor.call("GET", "/payment-api/v1/invoices")
    assert sorted(invoice["activityIds"]) == sorted([before, after])  # both runs are billed
    assert (await again.status(f"/agreements/{agreement_id}"))["terminationCode"] == "Success"


async def test_requestor_restart_keeps_its_activities(
    market_node: MarketNode, start_provider: StartProvider, package: str, tmp_path: Path
) -> None:
    provider = await start_provider()
    config = RequestorConfig(
        port=0, market_url=market_node.ws_url, data_dir=tmp_path / "requestor", payment_platforms=PLATFORM
    )
    identity = Identity.generate()
    async with RequestorDaemon(config, identity) as daemon:
        _, key = daemon.app_keys.create("tests", daemon.node_id)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            rest = RequestorRest(daemon.url, daemon.node_id, http)
            agreement_id = await rest.agree(package)
            activity_id = await rest.create_activity(agreement_id)
            batch_id = await rest.call(
                "POST", f"/activity-api/v1/activity/{activity_id}/exec", {"text": json.dumps(HELLO)}
            )
            await rest.run(activity_id, HELLO[2:])

    async with RequestorDaemon(config, identity) as daemon:
        assert daemon.activities.activities == {}  # nothing in memory until asked
        async with aiohttp.ClientSession(headers=headers) as http:
            rest = RequestorRest(daemon.url, daemon.node_id, http)
            base = f"/activity-api/v1/activity/{activity_id}"
            assert await rest.state(activity_id) == ["Ready", None]
            results = await rest.call("GET", f"{base}/exec/{batch_id}", timeout=5)
            assert [r["result"] for r in results] == ["Ok", "Ok", "Ok"]
            assert await rest.call("GET", "/activity-api/v1/activity", agreementId=agreement_id) == [
                activity_id
            ]
            assert await rest.call("GET", f"{base}/agreement") == agreement_id
            await rest.call("DELETE", base)  # relayed to the provider
            hosted = provider.execution.host.activities.get(activity_id)
            assert hosted is None or hosted.activity.state.value == "Terminated"
            assert await rest.state(activity_id) == ["Terminated", None]
            await rest.call("DELETE", base)  # again: nothing to do, still 200
            record = daemon.activities.store.record(activity_id) if daemon.activities.store else None
            assert record is not None and record["state"] == "Terminated" and record["destroyed"]
            assert activity_id not in daemon.activities.activities  # memory holds live ones only
            missing = await rest.call("GET", "/activity-api/v1/activity/nope/state", expect=404)
            assert "no activity nope" in missing["message"]


async def test_files_are_shared_only_with_agreement_providers(
    market_node: MarketNode,
    start_provider: StartProvider,
    requestor: RequestorRest,
    package: str,
    tmp_path: Path,
) -> None:
    provider = await start_provider()
    source = tmp_path / "input.txt"
    source.write_text("for the provider only\n")
    [published] = await requestor.call("POST", "/gftp-api/v1/publish", {"files": [str(source)]})
    slot = await requestor.call("POST", "/gftp-api/v1/receive", {"output_file": str(tmp_path / "out.txt")})

    # A node with no agreement with this requestor is refused, clearly, and nothing is written.
    stranger = MarketClient(market_node.ws_url, Identity.generate(), "stranger", request_timeout=5.0)
    await stranger.connect(timeout=5.0)
    try:
        async with RelayRouter(stranger, call_timeout=10) as router:
            resolver = RelayGftpResolver(router, frame_timeout=5.0)
            with pytest.raises(GftpError) as refused:
                await resolver.download(published["url"], tmp_path / "stolen.txt")
            assert refused.value.code == "forbidden" and "may not read" in str(refused.value)
            with pytest.raises(GftpError) as refused_up:
                await resolver.upload(source, slot["url"])
            assert refused_up.value.code == "forbidden" and "may not upload" in str(refused_up.value)
    finally:
        await stranger.close()
    assert not (tmp_path / "stolen.txt").exists() and not (tmp_path / "out.txt").exists()

    # The provider of an approved agreement fetches and uploads through its exe unit.
    agreement_id = await requestor.agree(package)
    activity_id = await requestor.create_activity(agreement_id)
    script = [
        *HELLO[:2],
        {"transfer": {"from": published["url"], "to": "container:/golem/input/data.txt"}},
        {"transfer": {"from": "container:/golem/input/data.txt", "to": slot["url"]}},
    ]
    results = await requestor.run(activity_id, script)
    assert [r["result"] for r in results] == ["Ok"] * 4, results
    assert (tmp_path / "out.txt").read_text() == "for the provider only\n"

    # Once the agreement ends, that provider is refused too.
    await requestor.call("POST", f"/market-api/v1/agreements/{agreement_id}/terminate", {"message": "done"})

    async def ended() -> bool:
        return bool((await requestor.agreement(agreement_id))["state"] == "Terminated")

    await eventually(ended, what="the termination")
    with pytest.raises(GftpError) as after_end:
        await RelayGftpResolver(provider.execution.router, frame_timeout=5.0).download(
            published["url"], tmp_path / "late.txt"
        )
    assert after_end.value.code == "forbidden"
