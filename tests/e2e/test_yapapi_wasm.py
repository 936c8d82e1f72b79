"""A WASM job through a custom yapapi Payload demanding golem.runtime.name=wasmtime."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, run_script
from exeunits.payloads.wasm import build_module
from payments.devchain import ChainInfo

SCRIPT = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "wasm_hello.py"


@pytest.mark.timeout(240)
async def test_wasm_tasks(tmp_path: Path, busybox: object, chain: ChainInfo) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, chain=chain) as net:
        module = build_module("hello")
        served = image.parent / "hello.wasm"  # the network's HTTP server serves the image's folder
        served.write_bytes(module)
        url = net.image_url.rsplit("/", 1)[0] + "/hello.wasm"
        code, text = await run_script(
            net, SCRIPT, "--module-hash", hashlib.sha3_224(module).hexdigest(), "--module-url", url
        )
        assert code == 0, text + net.logs()
        assert "ERROR" not in text, text
        lines = re.findall(r"^(\d): hello from wasm \(provider-1\)$", text, re.MULTILINE)
        assert sorted(lines) == ["0", "1", "2"], text
        received = await invoices(net)
        assert len(received) == 1 and received[0]["status"] in ("ACCEPTED", "SETTLED"), received
