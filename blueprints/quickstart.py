"""The main job: a fresh devnet runs the task-model blueprint end to end, and is paid on chain.

    python -m blueprints.quickstart [--providers 2] [--keep] [--dir DIR]

Builds the blueprints' payload image offline, starts a devnet (``golem devnet up``: a local chain
standing in for holesky with our test GLM token and batch contract, a market node, providers and
a requestor daemon funded from the token's faucet), pushes the image to the market node's package
registry, and runs the unchanged yapapi script ``blueprints/scripts/fractal.py``: a Mandelbrot image
rendered in tiles by the providers and merged into one PNG. It prints the script's progress, the
result, what the invoices cost and the ERC-20 transfers that paid them (with the providers'
verdict: each checks the transfer on chain and marks its invoice settled). Then it stops the
devnet, or with ``--keep`` leaves it running and says how to use and stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from blueprints import devnet_runner
from blueprints.localnet import documents, wait_settled
from blueprints.payloads import build
from market.core.config import data_dir
from market.hub.registry_client import push
from payments import devchain

FRACTAL = Path(__file__).with_name("scripts") / "fractal.py"


def say(text: str) -> None:
    print(text, flush=True)


async def run_fractal(env: dict[str, str], args: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(FRACTAL), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    async for line in proc.stdout:
        text = line.decode(errors="replace").rstrip()
        if text:
            say(f"  | {text}")
    return await proc.wait()


async def quickstart(folder: Path, providers: int, keep: bool, out: Path) -> int:
    started = time.perf_counter()
    say("building the payload image (busybox-static and the fractal renderer, offline) ...")
    image = build(folder / "images")
    say(f"  {image.archive.name}: sha3-224 {image.sha3_224}")

    say(f"starting a devnet: local chain, market node, {providers} provider(s), a funded requestor ...")
    net = devnet_runner.up(
        folder / "devnet",
        providers=providers,
        market_port=0,
        requestor_port=0,
        chain_port=0,
        say=lambda t: say(f"  {t}"),
    )
    code = 1
    try:
        chain = devchain.ChainInfo.read(folder / "devnet" / "chain")
        market = net.part("market")
        assert chain is not None and market is not None
        say("pushing the image to the market node's package registry ...")
        package = await push(market.url, image.archive)
        say(f"  {package['url']}")

        env = {**os.environ, **devnet_runner.environment(net, chain), "PYTHONUNBUFFERED": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        balance = devchain.token_balance(chain, net.requestor_id)
        say(f"running blueprints/scripts/fractal.py (yapapi 0.13.1, unchanged) as {net.requestor_id} ...")
        args = ["--image-hash", package["hash"], "--image-url", package["url"], "--out", str(out)]
        code = await run_fractal(env, args)
        if code != 0:
            say(f"the script failed with exit code {code}; logs in {folder / 'devnet'}/*.log")
            return code

        say("the bill:")
        for invoice in documents(folder / "devnet", "requestor", "requestor"):
            say(
                f"  invoice {invoice['invoiceId']} from {invoice['issuerId']}: {invoice['amount']} GLM "
                f"on {invoice['paymentPlatform']}, {invoice['status']} by the requestor"
            )
        say("waiting for the payments to be mined and checked by the providers ...")
        settled = await wait_settled(folder / "devnet", providers)
        for invoice in settled:
            say(f"  {invoice['issuerId']} checked the transfer: invoice {invoice['invoiceId']} SETTLED")
        for transfer in devchain.token_transfers(chain, sender=net.requestor_id):
            say(
                f"  paid {transfer.amount} tGLM to {transfer.receiver} "
                f"in tx {transfer.tx_hash} (block {transfer.block})"
            )
        left = devchain.token_balance(chain, net.requestor_id)
        paid: Decimal = balance - left
        say(f"result: {out} ({out.stat().st_size} bytes); cost {paid} tGLM, paid on chain")
        say(f"done in {time.perf_counter() - started:.1f} s")
        return 0
    finally:
        if keep:
            say(f"the devnet keeps running: source {folder / 'devnet' / devnet_runner.ENV_FILE} to use it")
            say(f"stop it with: golem devnet down --dir {folder / 'devnet'}")
        else:
            say("stopping the devnet (golem devnet down) ...")
            pids = [p.pid for p in net.parts]
            listening = devnet_runner.ports(net)
            devnet_runner.down(folder / "devnet", say=lambda t: None)
            still_open = [p for p in listening if devnet_runner.port_open(p)]
            if devnet_runner.wait_gone(pids) and not still_open:
                say("  stopped: none of its processes runs and none of its ports is open")
            else:
                say(f"  some parts did not stop (ports still open: {still_open}); see golem devnet status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the devnet running afterwards")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="state and logs [a temp folder, removed at exit; with --keep: $GOLEM_DATA_DIR/quickstart]",
    )
    parser.add_argument("--out", type=Path, default=Path("mandelbrot.png"), help="the PNG [%(default)s]")
    args = parser.parse_args()
    folder = args.dir or (data_dir() / "quickstart" if args.keep else None)
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            sys.exit(asyncio.run(quickstart(folder, args.providers, args.keep, args.out.resolve())))
        with tempfile.TemporaryDirectory(prefix="golem-quickstart-") as tmp:
            sys.exit(asyncio.run(quickstart(Path(tmp), args.providers, args.keep, args.out.resolve())))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
