"""Bad input against a real requestor daemon process: every refusal is clear and changes nothing.

Real processes (a market node, a wasmtime provider, a requestor daemon, all ``golem`` commands) on
loopback; the test calls the requestor's REST API over HTTP as yapapi would, and plays a stranger
node on the market relay for the gftp part. After all the refusals, the lists are as before and
the daemon still serves normal requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from blueprints.localnet import Network, local_network
from exeunits.gftp import GftpError, RelayGftpResolver, make_url
from exeunits.payloads.wasm import build_module
from market.client import MarketClient, RelayRouter
from market.core.identity import Identity
from tests.daemons.rest import HELLO, RequestorRest

# One network for the module (starting processes is the slow part); the tests run in file order
# and leave the activity as the next one expects it.
pytestmark = [pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

API_PREFIXES = (
    ("GET", "/me"),
    ("GET", "/market-api/v1/demands"),
    ("GET", "/market-api/v1/agreements"),
    ("GET", "/activity-api/v1/activity?agreementId=x"),
    ("GET", "/payment-api/v1/allocations"),
    ("GET", "/payment-api/v1/debitNotes"),
    ("POST", "/gftp-api/v1/publish"),
)


@dataclass
class Setup:
    net: Network
    rest: RequestorRest
    agreement_id: str
    activity_id: str
    root: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    root = tmp_path_factory.mktemp("bad-input")
    payloads = root / "payloads"
    payloads.mkdir()
    module = payloads / "hello.wasm"
    module.write_bytes(build_module("hello"))
    async with local_network(root, module, providers=1) as net:
        package = f"hash:sha3:{hashlib.sha3_224(module.read_bytes()).hexdigest()}:{net.image_url}"
        headers = {"Authorization": f"Bearer {net.app_key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            me = await _get(http, f"{net.requestor_url}/me")
            rest = RequestorRest(net.requestor_url, me["identity"], http, platform=net.platform)
            agreement_id = await rest.agree(package)
            activity_id = await rest.create_activity(agreement_id)
            yield Setup(net, rest, agreement_id, activity_id, root)


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def snapshot(rest: RequestorRest, agreement_id: str) -> dict[str, Any]:
    """Everything a refused request could have changed (debit notes come on the provider's clock)."""
    return {
        "demands": await rest.call("GET", "/market-api/v1/demands"),
        "agreements": await rest.call("GET", "/market-api/v1/agreements"),
        "activities": await rest.call("GET", "/activity-api/v1/activity", agreementId=agreement_id),
        "allocations": await rest.call("GET", "/payment-api/v1/allocations"),
        "invoices": await rest.call("GET", "/payment-api/v1/invoices"),
    }


async def raw(
    method: str, url: str, *, data: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, data=data, headers=headers) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def test_app_key_is_required_on_every_api(setup: Setup) -> None:
    before = await snapshot(setup.rest, setup.agreement_id)
    base = setup.net.requestor_url
    for method, path in API_PREFIXES:
        for headers in (
            {},
            {"Authorization": "Bearer not-a-key"},
            {"Authorization": f"Basic {setup.net.app_key}"},
            {"Authorization": "Bearer "},
        ):
            status, body = await raw(method, f"{base}{path}", data="{}", headers=headers)
            assert status == 401, (method, path, headers, body)
            assert "app key" in body["message"], body
    assert await snapshot(setup.rest, setup.agreement_id) == before


async def test_malformed_json_is_400_with_a_message(setup: Setup) -> None:
    before = await snapshot(setup.rest, setup.agreement_id)
    headers = {"Authorization": f"Bearer {setup.net.app_key}", "Content-Type": "application/json"}
    activity = f"/activity-api/v1/activity/{setup.activity_id}"
    for path in (
        "/market-api/v1/demands",
        f"/market-api/v1/agreements/{setup.agreement_id}/terminate",
        "/activity-api/v1/activity",
        f"{activity}/exec",
        "/payment-api/v1/allocations",
        "/gftp-api/v1/publish",
        "/gftp-api/v1/receive",
    ):
        for body in ('{"properties": ', "not json at all"):
            status, answer = await raw("POST", f"{setup.net.requestor_url}{path}", data=body, headers=headers)
            assert status == 400, (path, body, answer)
            # Allocation errors are problem+json (`detail`), as in yagna; all others `message`.
            assert isinstance(answer, dict), (path, answer)
            assert answer.get("message") or answer.get("detail"), (path, answer)
    assert await snapshot(setup.rest, setup.agreement_id) == before
    assert (await setup.rest.agreement(setup.agreement_id))["state"] == "Approved"


async def test_unknown_ids_are_404(setup: Setup) -> None:
    before = await snapshot(setup.rest, setup.agreement_id)
    unknown = "0" * 32
    for method, path in (
        ("GET", f"/market-api/v1/agreements/{unknown}"),
        ("POST", f"/market-api/v1/agreements/{unknown}/confirm"),
        ("POST", f"/market-api/v1/agreements/{unknown}/terminate"),
        ("GET", f"/market-api/v1/demands/{unknown}/events"),
        ("DELETE", f"/market-api/v1/demands/{unknown}"),
        ("GET", f"/activity-api/v1/activity/{unknown}/state"),
        ("GET", f"/activity-api/v1/activity/{unknown}/usage"),
        ("DELETE", f"/activity-api/v1/activity/{unknown}"),
        ("POST", f"/activity-api/v1/activity/{unknown}/exec"),
        ("GET", f"/activity-api/v1/activity/{setup.activity_id}/exec/{unknown}"),
        ("GET", f"/payment-api/v1/allocations/{unknown}"),
        ("DELETE", f"/payment-api/v1/allocations/{unknown}"),
        ("GET", f"/payment-api/v1/debitNotes/{unknown}"),
        ("POST", f"/payment-api/v1/debitNotes/{unknown}/accept"),
        ("GET", f"/payment-api/v1/invoices/{unknown}"),
        ("POST", f"/payment-api/v1/invoices/{unknown}/accept"),
    ):
        body: Any = None
        if path.endswith("/exec"):
            body = {"text": json.dumps(HELLO)}
        elif path.endswith("/accept"):
            body = {"totalAmountAccepted": "1", "allocationId": unknown}
        elif path.endswith("/terminate"):
            body = {"message": "no such thing"}
        answer = await setup.rest.call(method, path, body, expect=404)
        assert answer and answer.get("message"), (method, path, answer)
    # Creating an activity on an unknown agreement is refused the same way.
    answer = await setup.rest.call("POST", "/activity-api/v1/activity", unknown, expect=404)
    assert "agreement" in answer["message"]
    assert await snapshot(setup.rest, setup.agreement_id) == before


async def test_invalid_exescripts_are_refused_and_change_nothing(setup: Setup) -> None:
    rest, activity_id = setup.rest, setup.activity_id
    before = await snapshot(rest, setup.agreement_id)
    assert await rest.state(activity_id) == ["Initialized", None]
    exec_path = f"/activity-api/v1/activity/{activity_id}/exec"
    for script, fragment in (
        ([{"explode": {}}], "unknown command 'explode'"),
        ([{"run": {"entry_point": 5, "args": []}}], "entry_point"),
        ([{"run": {"entry_point": "main", "args": "not-a-list"}}], "args"),
        ([{"deploy": {}, "start": {}}], "one key"),
        ({"deploy": {}}, "JSON array"),
        ([], "at least one command"),
        (HELLO[2:], "needs the activity Ready; it would be Initialized"),  # run before deploy
        ([HELLO[1], HELLO[0]], "needs the activity Deployed"),  # start before deploy
    ):
        answer = await rest.call("POST", exec_path, {"text": json.dumps(script)}, expect=400)
        assert fragment in answer["message"], (script, answer)
    for body in ({"text": "[{]"}, {"script": "[]"}, {"text": 42}, "just a string"):
        answer = await rest.call("POST", exec_path, body, expect=400)
        assert answer["message"], body
    # Nothing ran: the activity is still waiting for deploy.
    assert await rest.state(activity_id) == ["Initialized", None]
    assert await snapshot(rest, setup.agreement_id) == before
    # A good script still runs on the same activity.
    results = await rest.run(activity_id, HELLO)
    assert [r["result"] for r in results] == ["Ok", "Ok", "Ok"] and results[-1][
        "stdout"
    ] == "hello from wasm\n"
    assert await rest.state(activity_id) == ["Ready", None]


async def test_gftp_outside_what_was_published_is_refused(setup: Setup) -> None:
    rest, net, root = setup.rest, setup.net, setup.root
    gftp = "/gftp-api/v1"
    secret = root / "secret.txt"
    secret.write_text("never shared\n")
    shared = root / "shared.txt"
    shared.write_text("shared\n")
    [published] = await rest.call("POST", f"{gftp}/publish", {"files": [str(shared)]})

    # Local side: paths must be absolute and exist; one bad path publishes nothing.
    for files in (
        ["relative.txt"],
        [str(root / "missing.txt")],
        [str(shared), str(root / "missing.txt")],
        [str(root)],
    ):
        answer = await rest.call("POST", f"{gftp}/publish", {"files": files}, expect=400)
        assert answer["message"], files
    for output in ("relative.txt", str(root / "no-such-folder" / "out.txt"), str(root)):
        answer = await rest.call("POST", f"{gftp}/receive", {"output_file": output}, expect=400)
        assert answer["message"], output
    for body in ({"files": "not-a-list"}, {"output_file": 5}, {}):
        await rest.call("POST", f"{gftp}/publish", body, expect=400)
    unknown_slot = make_url(rest.node_id, "ab" * 16)
    answer = await rest.call("POST", f"{gftp}/upload", {"file": str(shared), "url": unknown_slot}, expect=404)
    assert "receive slot" in answer["message"]
    answer = await rest.call("POST", f"{gftp}/close", {"urls": [unknown_slot, "gftp://bogus"]})
    assert answer == ["error", "error"]

    # Relay side, as a node with no agreement: the published file is refused, and so is anything
    # that was never published (a guessed token, a path instead of a token).
    stranger = MarketClient(net.market_ws, Identity.generate(), "stranger", request_timeout=5.0)
    await stranger.connect(timeout=10.0)
    try:
        async with RelayRouter(stranger, call_timeout=10) as router:
            resolver = RelayGftpResolver(router, frame_timeout=5.0)
            for url, code in (
                (published["url"], "forbidden"),
                (make_url(rest.node_id, "cd" * 16), "not_found"),
                (f"gftp://{rest.node_id}/..%2F..%2Fsecret.txt", None),
                (f"gftp://{rest.node_id}/{secret}", None),
            ):
                with pytest.raises(GftpError) as refused:
                    await resolver.download(url, root / "stolen.bin")
                if code is not None:
                    assert refused.value.code == code, (url, refused.value)
                assert not (root / "stolen.bin").exists()
    finally:
        await stranger.close()

    # The agreement's provider may fetch what was published, and nothing else.
    base = f"/activity-api/v1/activity/{setup.activity_id}"
    if await rest.state(setup.activity_id) != ["Ready", None]:
        await rest.run(setup.activity_id, HELLO[:2])
    ok = await rest.run(
        setup.activity_id, [{"transfer": {"from": published["url"], "to": "container:/golem/input/x.txt"}}]
    )
    assert ok[-1]["result"] == "Ok", ok
    guessed = make_url(rest.node_id, "ef" * 16)
    failed = await rest.run(
        setup.activity_id, [{"transfer": {"from": guessed, "to": "container:/golem/input/y.txt"}}]
    )
    assert failed[-1]["result"] == "Error" and "no file is published" in (failed[-1]["message"] or ""), failed
    # The daemon still answers normal requests, and the activity is still usable.
    assert (await rest.call("GET", "/me"))["identity"] == rest.node_id
    assert (await rest.call("GET", f"{base}/state"))["state"] == ["Ready", None]
