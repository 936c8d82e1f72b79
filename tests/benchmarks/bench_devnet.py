"""``golem devnet up`` and ``down`` wall time, cold (first start, identities created) and warm.

    .venv/bin/python tests/benchmarks/bench_devnet.py [--providers 2] [--rounds 3]

Each round starts a devnet in a fresh folder on free ports, waits until the providers' offers are
on the market (what ``up`` waits for), and takes it down again; the first round also creates the
keystores, later ones reuse the folder (warm: images, packages and identities exist). Prints the
times of every round and their medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
FREE_PORTS = ["--market-port", "0", "--requestor-port", "0", "--chain-port", "0"]


def timed(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([*GOLEM, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"golem {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ups: list[float] = []
    downs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-devnet-") as tmp:
        folder = Path(tmp) / "devnet"
        for n in range(args.rounds):
            up = timed("devnet", "up", "--dir", str(folder), "--providers", str(args.providers), *FREE_PORTS)
            down = timed("devnet", "down", "--dir", str(folder))
            kind = "cold" if n == 0 else "warm"
            print(f"round {n + 1} ({kind}): up {up:.2f} s, down {down:.2f} s", flush=True)
            ups.append(up)
            downs.append(down)
    warm_up = ups[1:] or ups
    warm_down = downs[1:] or downs
    print(
        f"providers {args.providers}: up cold {ups[0]:.2f} s, "
        f"warm median {statistics.median(warm_up):.2f} s; down median {statistics.median(warm_down):.2f} s"
    )


if __name__ == "__main__":
    main()
