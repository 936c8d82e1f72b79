"""The WASM blueprint on real processes: the module is built from its WAT source in the repo by
``python -m blueprints.wasm build``, served over HTTP, run by two providers' ``wasmtime`` runtimes
as a task-model job, and the merged count and sum equal a sieve computed here; every agreement
ends with an accepted invoice, paid on the local chain."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, run_script, wait_settled
from blueprints.scripts.wasm_tasks import local_primes
from payments.devchain import ChainInfo
from tests.e2e.blueprint_support import SCRIPTS, provider_id
from tests.e2e.conftest import assert_paid_on_chain

WASM_TASKS = SCRIPTS / "wasm_tasks.py"


@pytest.mark.timeout(240)
async def test_primes_counted_on_wasmtime_providers(
    tmp_path: Path, busybox: object, chain: ChainInfo
) -> None:
    image = busybox.archive  # type: ignore[attr-defined]
    served = image.parent  # the network's HTTP server serves the image's folder
    built = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "blueprints.wasm", "build", str(served), "primes"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    module = served / "primes.wasm"
    digest = hashlib.sha3_224(module.read_bytes()).hexdigest()
    assert built.stdout.startswith(f"{digest} {module}")

    async with local_network(tmp_path, image, providers=2, chain=chain) as net:
        url = net.image_url.rsplit("/", 1)[0] + "/primes.wasm"
        code, text = await run_script(
            net, WASM_TASKS, "--module-hash", digest, "--module-url", url,
            "--start", "0", "--stop", "3000000", "--tasks", "6",
        )  # fmt: skip
        assert code == 0, text + net.logs()
        assert "ERROR" not in text and "Traceback" not in text, text

        count, total = local_primes(0, 3_000_000)
        assert f"primes in [0, 3000000): {count}, their sum {total}" in text, text
        assert "check: equal to a local sieve" in text, text
        chunks = re.findall(
            r"^\[ *[\d.]+s\] \[(\d+), (\d+)\): (\d+) primes by (provider-\d)", text, re.MULTILINE
        )
        assert len(chunks) == 6, text
        # The chunks tile the range, and each one's count is right on its own.
        bounds = sorted((int(lo), int(hi), int(n)) for lo, hi, n, _ in chunks)
        assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]]
        assert all(n == local_primes(lo, hi)[0] for lo, hi, n in bounds), bounds

        received = await invoices(net)
        assert received and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        workers = {p for *_, p in chunks}
        assert {provider_id(net, p) for p in workers} <= {str(i["issuerId"]).lower() for i in received}
        assert f"({len(received)} invoice(s) accepted)" in text, text
        assert_paid_on_chain(net, await wait_settled(net, providers=2))
