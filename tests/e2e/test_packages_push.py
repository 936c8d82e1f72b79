"""``golem packages push`` against a market node running as its own process: the busybox payload goes
up, yapapi's image query names it, and it comes back byte for byte through two range requests (how a
provider resumes a cut download)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from blueprints.localnet import local_network

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]


@pytest.mark.timeout(120)
async def test_push_busybox_and_download_it_in_ranges(
    tmp_path: Path, busybox: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    image: Path = busybox.archive  # type: ignore[attr-defined]
    digest: str = busybox.sha3_224  # type: ignore[attr-defined]
    # The local network's market node keeps its registry in <root>/market; nothing goes elsewhere.
    monkeypatch.setenv("GOLEM_DATA_DIR", str(tmp_path / "data"))
    async with local_network(tmp_path, image, providers=0, requestor=False) as net:
        base = net.market_ws.removeprefix("ws://").removesuffix("/ws")
        base = f"http://{base}"
        push = await asyncio.create_subprocess_exec(
            *GOLEM,
            "packages",
            "push",
            str(image),
            "--market",
            net.market_ws,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(push.communicate(), 60)
        assert push.returncode == 0, err.decode() + net.logs()
        answer = json.loads(out)
        url = f"{base}/packages/{digest}"
        assert (answer["hash"], answer["url"], answer["size"]) == (digest, url, image.stat().st_size)
        assert answer["taskPackage"] == f"hash:sha3:{digest}:{url}"
        assert (tmp_path / "market" / "packages" / "blobs" / digest).is_file()
        assert not (tmp_path / "data" / "market").exists()

        original = image.read_bytes()
        half = len(original) // 2
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/image/info", params={"hash": digest, "count": "true"}) as r:
                assert r.status == 200
                assert await r.json() == {
                    "http": url,
                    "https": url.replace("http:", "https:"),
                    "sha3": digest,
                    "size": len(original),
                }
            async with http.head(url) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(original)
            async with http.get(url, headers={"Range": f"bytes=0-{half - 1}"}) as r:
                assert r.status == 206
                first = await r.read()
            async with http.get(url, headers={"Range": f"bytes={half}-"}) as r:
                assert r.status == 206
                assert r.headers["Content-Range"] == f"bytes {half}-{len(original) - 1}/{len(original)}"
                rest = await r.read()
            async with http.get(url, headers={"Range": f"bytes={len(original)}-"}) as r:
                assert r.status == 416

        assert first + rest == original
