"""The yapapi hello-world, unchanged, on a whole local network of real processes: a market node, a
provider running Docker, a requestor daemon; the provider's invoice is accepted and (dummy) paid."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.network import local_network

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "hello.py"


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> object:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except Exception as exc:
        pytest.skip(f"Docker engine not reachable: {exc}")
    from exeunits.payloads.image import build_busybox_image

    return build_busybox_image(tmp_path_factory.mktemp("images"))


@pytest.mark.timeout(240)
async def test_hello_world(tmp_path: Path, busybox: object) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    digest = busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image) as net:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HELLO),
            "--image-hash",
            digest,
            "--image-url",
            net.image_url,
            env=net.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
        text = out.decode()
        assert proc.returncode == 0, text + net.logs()
        # `date` ran in the container and its output came back through yapapi.
        assert re.search(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}$", text, re.MULTILINE), text
        assert "ERROR" not in text and "Unpaid agreements" not in text, text
        # The provider's invoice reached the requestor and was accepted (and paid by the dummy driver).
        headers = {"Authorization": f"Bearer {net.app_key}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"{net.requestor_url}/payment-api/v1/invoices") as response,
        ):
            invoices = await response.json()
        assert len(invoices) == 1, invoices
        assert invoices[0]["status"] in ("ACCEPTED", "SETTLED"), invoices
        assert float(invoices[0]["amount"]) > 0
