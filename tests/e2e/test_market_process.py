"""The market node as a real process: ``golem market serve``, the demo against it, its REST API,
and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

import aiohttp

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]


async def test_serve_demo_rest_and_sigterm() -> None:
    env = dict(os.environ, GOLEM_LOG_LEVEL="WARNING")
    serve = await asyncio.create_subprocess_exec(
        *GOLEM, "market", "serve", "--port", "0", stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert serve.stdout is not None
        line = (await asyncio.wait_for(serve.stdout.readline(), 30)).decode()
        found = re.search(r"listening on (http://\S+)", line)
        assert found, line
        url = found.group(1)
        demo = await asyncio.create_subprocess_exec(
            *GOLEM,
            "market",
            "demo",
            "--market",
            url.replace("http://", "ws://") + "/ws",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await asyncio.wait_for(demo.communicate(), 60)
        text = out.decode()
        assert demo.returncode == 0, text
        assert "Approved, both signatures verified" in text and "Terminated by the Requestor" in text
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/market/v1/stats") as response:
                assert response.status == 200
                stats = await response.json()
            assert stats["agreements"]["total"]["Approved"] == 1
            assert stats["agreements"]["total"]["Terminated"] == 1
            assert stats["negotiationLatencyMs"]["count"] == 1
            async with http.get(f"{url}/market/v1/offers?constraint=(golem.runtime.name=vm") as response:
                assert response.status == 400
                assert "position" in json.loads(await response.text())["message"]
        serve.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.wait(), 15) == 0
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
