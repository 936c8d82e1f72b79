"""The README's main job, as a user runs it: ``python -m blueprints.quickstart``."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest


@pytest.mark.timeout(240)
async def test_quickstart_runs_hello_world_with_payment(busybox: object) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "blueprints.quickstart", "--providers", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 200)
    text = out.decode()
    assert proc.returncode == 0, text
    assert re.search(r"\| \w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}", text), text
    assert re.search(
        r"invoice \w+ from 0x[0-9a-f]{40}: [0-9.]+ GLM on dummy-holesky-tglm, (ACCEPTED|SETTLED)", text
    )
