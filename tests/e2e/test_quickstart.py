"""The README's main job, as a user runs it: ``python -m blueprints.quickstart`` renders the fractal
on a fresh devnet, pays on the local chain, and takes the devnet down again."""

from __future__ import annotations

import asyncio
import re
import sys
import zlib
from pathlib import Path

import pytest


@pytest.mark.timeout(300)
async def test_quickstart_renders_pays_and_stops(tmp_path: Path, busybox: object) -> None:
    out = tmp_path / "mandelbrot.png"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "blueprints.quickstart", "--providers", "2", "--dir", str(tmp_path / "qs"),
        "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(proc.communicate(), 280)
    text = stdout.decode()
    assert proc.returncode == 0, text
    # The result: a PNG of the requested size with real image data.
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", text
    assert re.search(r"wrote .*mandelbrot\.png \(240x160", text), text
    assert int.from_bytes(out.read_bytes()[16:20], "big") == 240
    idat = out.read_bytes().split(b"IDAT", 1)[1]
    assert len(zlib.decompressobj().decompress(idat[:-4])) > 0
    # Its cost, paid on chain and checked by the providers.
    settled = re.findall(r"0x[0-9a-f]{40} checked the transfer: invoice \w+ SETTLED", text)
    paid = re.findall(r"paid [0-9.]+ tGLM to 0x[0-9a-f]{40} in tx 0x[0-9a-f]{64}", text)
    assert settled and len(paid) >= len(settled), text
    assert re.search(r"cost [0-9.]+ tGLM, paid on chain", text), text
    # And nothing is left running.
    assert "stopped: none of its processes runs and none of its ports is open" in text, text
