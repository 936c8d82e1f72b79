"""The main job: a local network runs the yapapi hello-world end to end, with payment.

    python -m blueprints.quickstart [--providers 2] [--keep]

Builds the busybox payload image offline, starts a market node, providers and a requestor daemon on
loopback, runs the unchanged yapapi script ``blueprints/scripts/hello.py`` against them, and prints
what the provider computed, what it cost, and the payment. Payments use the **dummy** driver for
now (documents are issued, accepted and "paid" with no chain); the ERC-20 driver is the next step.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from blueprints.localnet import invoices, local_network, run_script
from exeunits.payloads.image import build_busybox_image

HELLO = Path(__file__).with_name("scripts") / "hello.py"


async def quickstart(root: Path, providers: int, keep: bool) -> int:
    def say(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    say("building the payload image (busybox, offline) ...")
    image = build_busybox_image(root / "images")
    say(f"  {image.archive.name}: sha3-224 {image.sha3_224}")
    say(f"starting a market node, {providers} provider(s) and a requestor daemon on loopback ...")
    async with local_network(root, image.archive, providers=providers) as net:
        say(f"  market {net.market_ws}, requestor API {net.requestor_url}, logs in {root}/*.log")
        say("running blueprints/scripts/hello.py (yapapi 0.13.1, unchanged) ...")
        code, output = await run_script(
            net, HELLO, "--image-hash", image.sha3_224, "--image-url", net.image_url
        )
        for line in output.strip().splitlines():
            say(f"  | {line}")
        if code != 0:
            say(f"the script failed with exit code {code}; logs:\n{net.logs()}")
            return code
        for invoice in await invoices(net):
            say(
                f"invoice {invoice['invoiceId']} from {invoice['issuerId']}: {invoice['amount']} GLM "
                f"on {invoice['paymentPlatform']}, {invoice['status']}"
            )
        say(f"done in {time.perf_counter() - started:.1f} s (payment: dummy driver, no chain)")
        if keep:
            say("the network keeps running; Ctrl-C stops it")
            await asyncio.Event().wait()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the network running afterwards")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where logs and state go [a temp folder, removed at exit]"
    )
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        sys.exit(asyncio.run(quickstart(args.dir, args.providers, args.keep)))
    with tempfile.TemporaryDirectory(prefix="golem-quickstart-") as tmp:
        try:
            sys.exit(asyncio.run(quickstart(Path(tmp), args.providers, args.keep)))
        except KeyboardInterrupt:
            sys.exit(130)


if __name__ == "__main__":
    main()
