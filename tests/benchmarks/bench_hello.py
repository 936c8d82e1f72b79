"""Hello-world wall time: the unchanged yapapi script from start to exit, image cached.

Starts a local network of real processes once (market node, one provider, requestor daemon), then
runs ``blueprints/scripts/hello.py`` N times and prints each wall time (the first includes the
provider loading the image into Docker).

    .venv/bin/python tests/benchmarks/bench_hello.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from blueprints.localnet import local_network  # noqa: E402
from exeunits.payloads.image import build_busybox_image  # noqa: E402

HELLO = ROOT / "blueprints" / "scripts" / "hello.py"


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = build_busybox_image(root / "images")
        times: list[float] = []
        async with local_network(root, image.archive) as net:
            for _ in range(runs):
                start = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(HELLO),
                    "--image-hash",
                    image.sha3_224,
                    "--image-url",
                    net.image_url,
                    env=net.env(),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                out, _ = await proc.communicate()
                elapsed = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(f"hello failed:\n{out.decode()}")
                times.append(elapsed)
                print(f"  run {len(times)}: {elapsed:.2f} s")
    print(f"hello world, yapapi 0.13.1, 1 provider on loopback, {runs} runs")
    cached = statistics.median(times[1:] or times)
    print(f"  first (image load): {times[0]:.2f} s; cached: median {cached:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
