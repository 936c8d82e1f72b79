"""yapapi 0.13.1's own image resolution against our market node's registry, end to end in-process.

A requestor script says ``await vm.repo(image_hash=H, repository_url=<market node>)``; yapapi asks
``/v1/image/info?hash=H&count=true`` and builds the demand's ``golem.srv.comp.task_package`` from the
answer. A provider then downloads and verifies that package; here it is our provider-side package
store doing so, so the whole chain (push, resolve, demand property, download, hash check) is real.
``repository_url`` is the knob yapapi offers (no environment variable selects the registry; see
``../shared/spec/yapapi-behaviour.md`` §3.4 for unchanged scripts).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yapapi.payload import vm
from yapapi.props.builder import DemandBuilder

from exeunits.package import PackageRef, PackageStore
from market.hub.server import MarketNode, MarketNodeConfig

PAYLOAD = b"a stand-in for a docker save archive\n" * 10_000
DIGEST = hashlib.sha3_224(PAYLOAD).hexdigest()
TAG = "golem/stand-in:1.0"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[MarketNode]:
    async with MarketNode(MarketNodeConfig(port=0, data_dir=tmp_path / "market")) as market_node:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{market_node.url}/packages", data=PAYLOAD, params={"hash": DIGEST, "tag": TAG}) as r,
        ):
            assert r.status == 201, await r.text()
        yield market_node


async def task_package_of(package: vm.Package) -> str:
    demand = DemandBuilder()
    await package.decorate_demand(demand)
    value = demand.properties["golem.srv.comp.task_package"]
    assert isinstance(value, str)
    return value


async def test_vm_repo_resolves_a_hash_to_this_node(node: MarketNode, tmp_path: Path) -> None:
    package = await vm.repo(image_hash=DIGEST, repository_url=node.url, min_mem_gib=0.5)

    expected = f"hash:sha3:{DIGEST}:{node.url}/packages/{DIGEST}"
    assert await package.resolve_url() == expected
    assert await task_package_of(package) == expected
    # What a provider does with the demand: download from the URL and check the hash.
    store = PackageStore(tmp_path / "provider-cache")
    fetched = await store.fetch(PackageRef.parse(expected))
    assert fetched.read_bytes() == PAYLOAD


async def test_vm_repo_resolves_a_tag(node: MarketNode) -> None:
    package = await vm.repo(image_tag=TAG, repository_url=node.url)

    assert await package.resolve_url() == f"hash:sha3:{DIGEST}:{node.url}/packages/{DIGEST}"


async def test_vm_repo_over_https_takes_the_https_url(node: MarketNode) -> None:
    package = await vm.repo(image_hash=DIGEST, repository_url=node.url, image_use_https=True)

    https_url = f"{node.url}/packages/{DIGEST}".replace("http://", "https://")
    assert await package.resolve_url() == f"hash:sha3:{DIGEST}:{https_url}"


async def test_vm_repo_with_our_url_passes_yapapis_head_check(node: MarketNode) -> None:
    url = f"{node.url}/packages/{DIGEST}"

    package = await vm.repo(image_hash=DIGEST, image_url=url)

    assert await package.resolve_url() == f"hash:sha3:{DIGEST}:{url}"


async def test_vm_repo_reports_an_unknown_hash(node: MarketNode) -> None:
    unknown = hashlib.sha3_224(b"never pushed").hexdigest()

    with pytest.raises(Exception, match="Failed to resolve image URL: 404") as raised:
        await vm.repo(image_hash=unknown, repository_url=node.url)

    assert unknown in str(raised.value)  # our error body names what was asked for
