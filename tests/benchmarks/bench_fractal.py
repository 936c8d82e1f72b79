"""The fractal blueprint's wall time on a local network against the same work in one local process.

Baselines, measured in the same run:

* awk, 1 process: the renderer providers run (``blueprints/payloads/mandel.awk``, the host's
  busybox awk) rendering the whole image at once: the same work, not split;
* Python, 1 process: :func:`blueprints.fractal.render_png`, the same algorithm in CPython.

Then, for each provider count, a local network of real processes (market node, providers,
requestor daemon; the dummy payment driver, as payment is not what is measured) runs the unchanged
script ``blueprints/scripts/fractal.py``. Reported: the script's wall time from start to exit (it
includes yapapi's start, negotiation, image download and deploy, and the wait for invoices at the
end) and the time until the last tile was in (what the work itself took on the network). The PNG
is checked against the local render. On a machine with few cores the providers' containers share
them, so the split cannot beat ``cores`` times the single-process awk time.

    .venv/bin/python tests/benchmarks/bench_fractal.py [--size 240x160] [--max-iter 256]
        [--tiles 8] [--providers 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from blueprints.fractal import RENDERER, Tile, parse_size, render_png, render_tile  # noqa: E402
from blueprints.localnet import local_network, run_script  # noqa: E402
from blueprints.payloads import build  # noqa: E402

FRACTAL = ROOT / "blueprints" / "scripts" / "fractal.py"


def awk_once(width: int, height: int, max_iter: int) -> float | None:
    """Seconds for busybox awk to render the whole image in one process; None without busybox."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return None
    whole = Tile(0, 0, width, 0, height)
    started = time.perf_counter()
    done = subprocess.run(
        [busybox, "sh", "-c", whole.awk_command(width, height, max_iter, renderer=str(RENDERER))],
        capture_output=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.stdout != render_tile(width, height, whole, max_iter):
        raise SystemExit("busybox awk and the Python renderer disagree")
    return seconds


async def on_network(
    root: Path, providers: int, width: int, height: int, max_iter: int, tiles: int
) -> tuple[float, float, str]:
    image = build(root / "images")
    out = root / "mandelbrot.png"
    async with local_network(root, image.archive, providers=providers) as net:
        started = time.perf_counter()
        code, text = await run_script(
            net, FRACTAL, "--image-hash", image.sha3_224, "--image-url", net.image_url,
            "--size", f"{width}x{height}", "--max-iter", str(max_iter), "--tiles", str(tiles),
            "--out", str(out), "--max-workers", str(providers), timeout=3600,
        )  # fmt: skip
        total = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the fractal blueprint failed:\n{text[-3000:]}")
    if out.read_bytes() != render_png(width, height, tiles, max_iter):
        raise SystemExit("the network's PNG differs from the local render")
    rendered = re.search(r"tiles rendered in ([\d.]+) s", text)
    assert rendered is not None, text
    counts = " ".join(re.findall(r"^  (provider-\d+: \d+) tile", text, re.MULTILINE))
    return total, float(rendered.group(1)), counts


async def main(size: str, max_iter: int, tiles: int, provider_counts: list[int]) -> None:
    width, height = parse_size(size)
    print(f"Mandelbrot {width}x{height}, {max_iter} iterations, {tiles} tiles; {os.cpu_count()} CPU core(s)")
    awk = awk_once(width, height, max_iter)
    started = time.perf_counter()
    render_png(width, height, tiles, max_iter)
    python = time.perf_counter() - started
    print(f"  awk, 1 local process      {awk:7.1f} s" if awk is not None else "  awk: no busybox here")
    print(f"  Python, 1 local process   {python:7.1f} s")
    for providers in provider_counts:
        with tempfile.TemporaryDirectory() as tmp:
            total, rendered, counts = await on_network(Path(tmp), providers, width, height, max_iter, tiles)
        against = f", {total / awk:.2f}x the awk process" if awk else ""
        print(
            f"  network, {providers} providers     {total:7.1f} s wall{against};"
            f" tiles all in after {rendered:.1f} s ({counts})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="240x160")
    parser.add_argument("--max-iter", type=int, default=256)
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--providers", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    asyncio.run(main(args.size, args.max_iter, args.tiles, args.providers))
