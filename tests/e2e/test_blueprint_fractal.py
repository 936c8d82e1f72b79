"""The fractal blueprint (task model) on real processes: tiles rendered by busybox awk in the
providers' containers merge into a PNG equal, byte for byte, to a local render; with a provider
SIGKILLed mid-tile, its tile is rendered by another provider and the image still completes. Every
surviving agreement ends with an accepted invoice, paid on the local chain."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from blueprints.fractal import decode_png, render_png
from blueprints.localnet import invoices, local_network, wait_settled
from market.hub.registry_client import push, registry_base
from payments.devchain import ChainInfo
from tests.e2e.blueprint_support import SCRIPTS, crash_provider, provider_id, run_watching
from tests.e2e.conftest import assert_paid_on_chain

FRACTAL = SCRIPTS / "fractal.py"
DONE = re.compile(r"^\[ *[\d.]+s\] tile (\d+) \(rows \d+-\d+\) done by (provider-\d) in", re.MULTILINE)


def tiles_done(text: str) -> dict[int, str]:
    return {int(n): provider for n, provider in DONE.findall(text)}


def counts_printed(text: str) -> dict[str, int]:
    found = re.findall(
        r"^  (provider-\d): (\d+) tile\(s\), (?:invoiced [\d.]+ GLM|no invoice)$", text, re.MULTILINE
    )
    return {p: int(n) for p, n in found if int(n)}


async def nothing(line: str) -> None:
    return None


@pytest.mark.timeout(240)
async def test_tiles_merge_into_the_local_render(
    tmp_path: Path, blueprints_image: object, chain: ChainInfo
) -> None:
    image = blueprints_image.archive  # type: ignore[attr-defined]
    out = tmp_path / "mandelbrot.png"
    async with local_network(tmp_path, image, providers=2, chain=chain) as net:
        # The image goes through the market node's registry, as `python -m blueprints.run` does it.
        pushed = await push(net.market_ws, image)
        code, text, seconds = await run_watching(
            net, FRACTAL, "--image-hash", pushed["hash"], "--registry", str(registry_base(net.market_ws)),
            "--size", "120x80", "--max-iter", "128", "--tiles", "6", "--out", str(out), "--check",
            on_line=nothing,
        )  # fmt: skip
        assert code == 0, text + net.logs()
        assert "ERROR" not in text and "Traceback" not in text, text
        print(f"fractal 120x80 in 6 tiles on 2 providers: {seconds:.1f} s wall")

        # The PNG decodes, and is the local render's bytes.
        png = out.read_bytes()
        assert png == render_png(120, 80, 6, 128)
        width, height, rgb = decode_png(png)
        assert (width, height, len(rgb)) == (120, 80, 120 * 80 * 3)
        assert "check: the image equals a local render byte for byte" in text

        done = tiles_done(text)
        assert sorted(done) == list(range(6)), text
        counts = counts_printed(text)
        assert sum(counts.values()) == 6 and set(counts) == set(done.values()), text
        cost = re.search(r"^cost: ([\d.]+) GLM \((\d+) invoice\(s\) accepted\)$", text, re.MULTILINE)
        assert cost is not None and float(cost.group(1)) > 0, text

        received = await invoices(net)
        # One invoice per agreement: a provider may have signed one and found no tile left to render.
        assert len(received) == int(cost.group(2)), (received, text)
        assert all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        assert {provider_id(net, p) for p in counts} <= {str(i["issuerId"]).lower() for i in received}
        assert_paid_on_chain(net, await wait_settled(net, providers=2))


@pytest.mark.timeout(300)
async def test_a_killed_provider_tile_is_rendered_elsewhere(
    tmp_path: Path, blueprints_image: object, chain: ChainInfo
) -> None:
    image, digest = blueprints_image.archive, blueprints_image.sha3_224  # type: ignore[attr-defined]
    out = tmp_path / "mandelbrot.png"
    # The middle bands hold most of the set: each takes seconds of awk. The kill comes a second
    # after such a tile started, so it lands while the provider renders it (the command already
    # accepted, the requestor polling for its results).
    heavy = {3, 4}
    killed: dict[str, object] = {}
    async with local_network(tmp_path, image, providers=3, chain=chain) as net:

        async def kill_during_a_heavy_tile(line: str) -> None:
            found = re.search(r"\] tile (\d+) \(rows [\d-]+\) started on (provider-\d)$", line)
            if found and "provider" not in killed and int(found.group(1)) in heavy:
                killed.update(provider=found.group(2), tile=int(found.group(1)))
                await asyncio.sleep(1.0)
                await crash_provider(net, found.group(2))

        code, text, seconds = await run_watching(
            net, FRACTAL, "--image-hash", digest, "--image-url", net.image_url,
            "--size", "240x160", "--max-iter", "256", "--tiles", "8", "--out", str(out),
            on_line=kill_during_a_heavy_tile,
        )  # fmt: skip
        assert code == 0, text + net.logs()
        assert "Traceback" not in text, text
        print(f"fractal 240x160 in 8 tiles, 3 providers, one SIGKILLed: {seconds:.1f} s wall")
        assert killed, f"no heavy tile started, so nothing was killed:\n{text}"
        victim, tile = killed["provider"], killed["tile"]

        # The tile the victim was rendering was rendered by another provider, and the image is whole.
        done = tiles_done(text)
        assert sorted(done) == list(range(8)), text
        assert done[tile] != victim, text  # type: ignore[index]
        assert f"{victim} failed" in text, text
        assert not re.search(rf"^  {victim}: .*invoiced", text, re.MULTILINE), text  # it died unpaid
        assert out.read_bytes() == render_png(240, 160, 8, 256)

        # Every provider still alive invoiced its agreement, and the requestor accepted and paid it.
        received = await invoices(net)
        assert received and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        issuers = {str(i["issuerId"]).lower() for i in received}
        assert provider_id(net, str(victim)) not in issuers
        survivors = set(done.values()) - {victim}
        assert survivors and {provider_id(net, str(p)) for p in survivors} <= issuers, (issuers, survivors)
        settled = await wait_settled(net, providers=3)
        assert_paid_on_chain(net, settled)
