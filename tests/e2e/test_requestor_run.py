"""``golem requestor run SCRIPT``: with no daemon running, it starts one, runs the unchanged yapapi
script with the right environment, stops the daemon again and exits with the script's code."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from blueprints.localnet import GOLEM, local_network

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "hello.py"


@pytest.mark.timeout(240)
async def test_run_starts_a_daemon_for_the_script(tmp_path: Path, busybox: object) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, requestor=False) as net:
        # Not about payment: the providers and this requestor use the chain-less dummy platform.
        env = dict(
            os.environ,
            GOLEM_REQUESTOR_PORT="0",
            PYTHONUNBUFFERED="1",
            GOLEM_REQUESTOR_PAYMENT_PLATFORMS="dummy-holesky-tglm",
        )
        for name in ("YAGNA_APPKEY", "YAGNA_API_URL"):
            env.pop(name, None)
        data = tmp_path / "requestor"
        proc = await asyncio.create_subprocess_exec(
            *GOLEM, "requestor", "run", "--data-dir", str(data), "--market", net.market_ws,
            str(HELLO), "--image-hash", digest, "--image-url", net.image_url,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
        text = out.decode()
        assert proc.returncode == 0, text + net.logs()
        assert "starting one" in text
        assert re.search(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}$", text, re.MULTILINE), text
        assert (data / "run.appkey").stat().st_mode & 0o777 == 0o600
        # A script that fails passes its exit code through.
        failing = tmp_path / "fail.py"
        failing.write_text("import sys; sys.exit(7)\n")
        proc = await asyncio.create_subprocess_exec(
            *GOLEM, "requestor", "run", "--data-dir", str(data), "--market", net.market_ws, str(failing),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await asyncio.wait_for(proc.wait(), 120) == 7
