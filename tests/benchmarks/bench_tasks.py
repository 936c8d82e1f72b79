"""Many one-second tasks over several providers: total time against the ideal.

Starts a local network of real processes (market node, N providers, requestor daemon) and runs the
unchanged yapapi script ``blueprints/scripts/tasks.py`` (each task uploads two files, works
``--seconds``, downloads its result). Ideal time = tasks * seconds / providers; the overhead per task
is (total - ideal) / (tasks / providers), i.e. what each provider's task slot lost per task.

    .venv/bin/python tests/benchmarks/bench_tasks.py [--tasks 100] [--providers 4] [--seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from blueprints.localnet import local_network, run_script  # noqa: E402
from exeunits.payloads.image import build_busybox_image  # noqa: E402

TASKS = ROOT / "blueprints" / "scripts" / "tasks.py"


async def main(tasks: int, providers: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = build_busybox_image(root / "images")
        async with local_network(root, image.archive, providers=providers) as net:
            start = time.perf_counter()
            code, text = await run_script(
                net, TASKS, "--image-hash", image.sha3_224, "--image-url", net.image_url,
                "--out", str(root / "out"), "--count", str(tasks), "--seconds", str(seconds), timeout=1800,
            )  # fmt: skip
            total = time.perf_counter() - start
            if code != 0:
                raise SystemExit(f"tasks failed:\n{text[-3000:]}")
    per_provider = Counter(re.findall(r"^done \d+ (provider-\d+)$", text, re.MULTILINE))
    ideal = tasks * seconds / providers
    print(f"{tasks} tasks of {seconds:g} s over {providers} providers (yapapi 0.13.1, loopback, Docker)")
    print(f"  total {total:.1f} s, ideal {ideal:.1f} s, ratio {total / ideal:.2f}")
    print(f"  overhead per task: {(total - ideal) / (tasks / providers):.2f} s")
    print(f"  tasks per provider: {dict(sorted(per_provider.items()))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.providers, args.seconds))
