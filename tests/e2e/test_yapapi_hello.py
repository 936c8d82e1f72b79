"""The yapapi hello-world, unchanged, on a whole local network of real processes: a market node, a
provider running Docker, a requestor daemon; the provider's invoice is accepted and paid in test GLM
on a local chain, and the provider, having checked the transfer on chain, marks it settled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, run_script, wait_settled
from payments.devchain import ChainInfo
from tests.e2e.conftest import assert_paid_on_chain

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "hello.py"


@pytest.mark.timeout(240)
async def test_hello_world(tmp_path: Path, busybox: object, chain: ChainInfo) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, chain=chain) as net:
        code, text = await run_script(net, HELLO, "--image-hash", digest, "--image-url", net.image_url)
        assert code == 0, text + net.logs()
        # `date` ran in the container and its output came back through yapapi.
        assert re.search(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}$", text, re.MULTILINE), text
        assert "ERROR" not in text and "Unpaid agreements" not in text, text
        # The provider's invoice reached the requestor and was accepted ...
        received = await invoices(net)
        assert len(received) == 1, received
        assert received[0]["status"] in ("ACCEPTED", "SETTLED"), received
        assert received[0]["paymentPlatform"] == "erc20-holesky-tglm", received
        assert float(str(received[0]["amount"])) > 0
        # ... then paid on chain, and the provider saw the transfer and settled it.
        assert_paid_on_chain(net, await wait_settled(net, providers=1))
